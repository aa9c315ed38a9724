#!/usr/bin/env bash
# Builds the documentation site into docs/_build/html (git-ignored) with warnings as
# errors; the tutorial notebooks in docs/tutorials are executed on every build (a cell
# error fails it). Installs the docs extra into .venv when it is missing (run
# scripts/setup.sh first for .venv itself). Every build re-reads all pages (-E), so the
# notebooks run every time. Extra arguments go to sphinx-build,
# e.g. `-D nb_execution_mode=off` to skip executing them (CI: the test suite runs them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "build_docs.sh: no .venv; run 'bash scripts/setup.sh' first" >&2
  exit 1
fi
if ! "$PY" -c "import sphinx, myst_nb, furo" 2>/dev/null; then
  echo "build_docs.sh: installing the docs extra (Sphinx, MyST-NB, furo) into .venv" >&2
  "$PY" -m pip install -q -e ".[docs]" >&2
fi
# The notebook kernel and autodoc import this checkout, whichever copy .venv has installed.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
rm -rf docs/api/_autosummary docs/_autosummary
start=$(date +%s)
"$PY" -m sphinx -E -W --keep-going -b html -j 1 docs docs/_build/html "$@"
echo "build_docs.sh: site in docs/_build/html/index.html ($(( $(date +%s) - start )) s)"
