"""Sphinx configuration of the fedpsyau-jax documentation site.

Build: ``bash scripts/build_docs.sh`` (warnings are errors; output in docs/_build/html).
Pages are MyST Markdown; tutorials in ``tutorials/`` are MyST notebooks that MyST-NB
executes on every build (a cell error fails the build).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout being documented, even if another copy is installed
sys.path.insert(1, str(ROOT / "scripts"))  # scripts documented on the protocols page

from fedpsyau_jax.version import package_version  # noqa: E402

project = "fedpsyau-jax"
author = "The fedpsyau-jax contributors"
copyright = "2026, the fedpsyau-jax contributors"
release = version = package_version()

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute", "**/.ipynb_checkpoints"]
root_doc = "index"

# MyST: ```{directive}``` fences, $math$, definition lists, heading anchors for links.
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# MyST-NB: execute every notebook on every build; any cell error fails the build.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 1800
nb_merge_streams = True

# API reference from docstrings (the docstrings are plain text, not numpy/google style).
autosummary_generate = True
autodoc_default_options = {"members": False, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_mock_imports = []

html_theme = "furo"
html_title = f"fedpsyau-jax {release}"
html_static_path = ["_static"]
html_theme_options = {"source_directory": "docs/"}
nitpicky = False
