"""The tutorial notebook(s) in docs/tutorials run without a cell error.

The docs build executes them with a Jupyter kernel (MyST-NB, ``scripts/build_docs.sh``);
here their code cells run in order in one fresh Python process, so that CI catches a
broken tutorial without the docs extra. ``FEDPSYAU_TUTORIAL_QUICK=1`` selects the
notebook's own reduced sizes (fewer subjects, epochs and rounds; every step still runs):
the full variant takes several minutes of CPU, most of it compiling.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def code_cells(path: Path) -> list[str]:
    """The code of every ``{code-cell}`` block of a MyST notebook, in order."""
    return CELL.findall(path.read_text(encoding="utf-8"))


def test_notebooks_found_and_parsed():
    assert NOTEBOOKS, "no tutorial notebooks in docs/tutorials"
    for nb in NOTEBOOKS:
        cells = code_cells(nb)
        assert len(cells) >= 3, nb
        for c in cells:
            compile(c, str(nb), "exec")  # a syntax error names the notebook


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(notebook, tmp_path):
    script = tmp_path / f"{notebook.stem}.py"
    script.write_text("\n\n".join(f"# --- cell {i}\n{c}" for i, c in enumerate(code_cells(notebook))))
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "FEDPSYAU_TUTORIAL_QUICK": os.environ.get("FEDPSYAU_TUTORIAL_QUICK", "1"),
        # this checkout's package, whichever copy the interpreter has installed
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    r = subprocess.run(
        [sys.executable, str(script)], cwd=notebook.parent, env=env, capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, f"{notebook.name} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    assert "quick variant" in r.stdout
