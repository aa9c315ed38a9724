#!/usr/bin/env bash
# Creates .venv in the repository root and installs fedpsyau-jax with its pinned
# dependencies (editable, with the data and test extras). Idempotent: a stamp holding
# the hash of pyproject.toml skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)'; then
  echo "setup.sh: need Python 3.11 or 3.12, found $("$PY" --version 2>&1)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.fedpsyau-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setup.sh: installing pinned dependencies into .venv (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade "pip>=24" >&2
  .venv/bin/python -m pip install -q -e ".[all]" >&2
  echo "$want" > "$stamp"
fi
