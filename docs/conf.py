"""Sphinx configuration of the fedpsyau-jax documentation site.

Build: ``bash scripts/build_docs.sh`` (warnings are errors; output in docs/_build/html).
Pages are MyST Markdown; tutorials in ``tutorials/`` are MyST notebooks that MyST-NB
executes on every build (a cell error fails the build).
"""

# The checkout is installed in editable mode (scripts/setup.sh), so the package
# imported here is the one being documented.
from fedpsyau_jax.version import package_version

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
templates_path = ["_templates"]  # class pages: the class and its docstring, not every inherited method
smartquotes = False  # keep "--config" and quotes in docstrings as written
autodoc_default_options = {"members": False, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_mock_imports = []


# The project's docstrings are written as plain text for people reading the source
# (indented examples and lists without reST's blank lines). A docstring that is not
# clean reStructuredText is shown verbatim: its first paragraph as text (the summary
# autosummary shows), the rest as a literal block — no source file is reformatted for
# the site, and -W still catches real problems in the pages themselves.
def _rst_problems(app, text: str) -> str:
    import io

    from docutils.core import publish_doctree

    stream = io.StringIO()
    publish_doctree(
        text, settings_overrides={"env": app.env, "warning_stream": stream, "report_level": 2, "halt_level": 5}
    )
    return stream.getvalue()


def _plain_docstrings(app, what, name, obj, options, lines):
    if not lines or not _rst_problems(app, "\n".join(lines)):
        return
    blank = lines.index("") if "" in lines else len(lines)
    head, rest = lines[:blank], lines[blank + 1 :]
    if _rst_problems(app, "\n".join(head)):
        head = [ln.replace("*", "\\*") for ln in head]
        if _rst_problems(app, "\n".join(head)):
            head, rest = [], lines
    body = ["::", ""] + ["    " + ln for ln in rest] if any(ln.strip() for ln in rest) else []
    lines[:] = head + ([""] if head and body else []) + body


def setup(app):
    app.connect("autodoc-process-docstring", _plain_docstrings)


html_theme = "furo"
html_title = f"fedpsyau-jax {release}"
html_static_path = ["_static"]
html_theme_options = {"source_directory": "docs/"}
nitpicky = False
