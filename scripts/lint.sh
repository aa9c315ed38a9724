#!/usr/bin/env bash
# Lint, format check and type check of the library packages (settings: pyproject.toml,
# [tool.ruff] and [tool.mypy]). Installs the dev extra into .venv when it is missing.
# Exit status: non-zero when any of the three fails (all three always run).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if ! "$PY" -c "import ruff, mypy" 2>/dev/null; then
  echo "lint.sh: installing the dev extra (ruff, mypy, build) into .venv" >&2
  "$PY" -m pip install -q -e ".[dev]" >&2 || exit 1
fi
PKGS=(fedpsyau_jax data_pipelines)
rc=0
echo "lint: ruff check ${PKGS[*]}"
"$PY" -m ruff check "${PKGS[@]}" || rc=1
echo "lint: ruff format --check ${PKGS[*]}"
"$PY" -m ruff format --check --output-format concise "${PKGS[@]}" || rc=1
echo "lint: mypy (files from pyproject.toml)"
"$PY" -m mypy || rc=1
exit "$rc"
