#!/usr/bin/env bash
# Creates .venv in the repository root and installs fedpsyau-jax with its pinned
# dependencies (editable, with the data, test, flower and privacy extras), and headless
# Chromium for the test suite when it is missing (at the end). Idempotent:
# a stamp holding the hash of pyproject.toml and the interpreter skips the install when
# nothing changed. Python 3.12 or 3.13 is required (jax 0.12 has no 3.11 wheels);
# $PYTHON picks one explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."

usable() {  # prints the interpreter's path when it runs and is 3.12 or 3.13
  "$1" -c 'import sys; assert (3, 12) <= sys.version_info[:2] < (3, 14); print(sys.executable)' 2>/dev/null
}

find_python() {
  local c
  # An explicit choice, then the usual names. pyenv shims for versions that are
  # installed but not selected exist on PATH yet fail when run: usable() skips them.
  for c in ${PYTHON:-} python3.12 python3.13 python3; do
    usable "$c" && return 0
  done
  # Installed but unselected pyenv / uv / system versions.
  for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[23]*/bin/python3 \
           "$HOME"/.local/share/uv/python/cpython-3.1[23]*/bin/python3 \
           /usr/bin/python3.1[23] /usr/local/bin/python3.1[23]; do
    [ -x "$c" ] && usable "$c" && return 0
  done
  return 1
}

if [ -x .venv/bin/python ] && usable .venv/bin/python >/dev/null; then
  PY_PATH=.venv/bin/python
else
  if ! PY_PATH="$(find_python)"; then
    echo "setup.sh: need Python 3.12 or 3.13 (jax 0.12 has no wheels for older versions)." >&2
    echo "setup.sh: install one (e.g. 'apt-get install python3.12-venv', 'pyenv install 3.12'," >&2
    echo "          or 'uv python install 3.12') and rerun, or set PYTHON=/path/to/python3.12" >&2
    exit 1
  fi
  rm -rf .venv  # an old venv on an unsupported Python (e.g. 3.11) cannot be upgraded in place
  "$PY_PATH" -m venv .venv
fi
stamp=.venv/.fedpsyau-installed
want="$(cat pyproject.toml <(.venv/bin/python --version) | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setup.sh: installing pinned dependencies into .venv with $(.venv/bin/python --version) (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade "pip>=24" >&2
  .venv/bin/python -m pip install -q -e ".[all]" >&2
  echo "$want" > "$stamp"
fi

# One system package, for the test suite only: headless Chromium, in which
# tests/test_report_browser.py opens the report.html that `fedpsyau analyse` writes.
# Installed with apt-get (as root, or through sudo when it needs no password) only when
# no Chromium or Chrome is on PATH; where that cannot be done, a note says what to run
# and setup goes on (training and the library do not need a browser).
have_browser() {
  local c
  for c in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$c" >/dev/null 2>&1 && return 0
  done
  return 1
}
if ! have_browser; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$as_root" ] || sudo -n true 2>/dev/null; }; then
    echo "setup.sh: installing chromium with apt-get (headless browser for tests/test_report_browser.py)" >&2
    if ! { $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
           $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
             chromium fonts-liberation >&2; }; then
      echo "setup.sh: warning: apt-get could not install chromium; tests/test_report_browser.py will fail" >&2
    fi
  else
    echo "setup.sh: note: no chromium on PATH; tests/test_report_browser.py needs it" >&2
    echo "setup.sh:       (Debian/Ubuntu: 'sudo apt-get install chromium'; or any Chromium/Chrome on PATH)" >&2
  fi
fi
