"""Where the shared real data lives: ``$FEDPSYAU_SHARED_DATA`` or ``../shared/data``.

The default is resolved against the current directory first and then against the
repository root, so both ``pytest`` from the checkout and the CLI from elsewhere in
it find the data; a missing folder gives a clear error (or a pytest skip upstream).
"""

from __future__ import annotations

import os
from pathlib import Path

from fedpsyau_jax.core.errors import InputFileError

ENV_VAR = "FEDPSYAU_SHARED_DATA"
_REPO_ROOT = Path(__file__).resolve().parent.parent


class SharedDataMissing(InputFileError):
    """The shared data folder (or a file in it) is not there (a FileNotFoundError and
    a ``UserError``: the CLI prints it as one line)."""


def shared_data_root(required: bool = True) -> Path | None:
    env = os.environ.get(ENV_VAR)
    candidates = [Path(env)] if env else [Path.cwd() / ".." / "shared" / "data", _REPO_ROOT / ".." / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    if required:
        raise SharedDataMissing(
            f"shared data folder not found (looked in {', '.join(str(c) for c in candidates)}); "
            f"set {ENV_VAR} to the folder that holds megc2019_htnet/, annotations/, faces/"
        )
    return None


def shared_path(*parts: str) -> Path:
    """A path below the shared data root; raises SharedDataMissing if absent."""
    root = shared_data_root()
    assert root is not None  # required=True raises instead of returning None
    p = root.joinpath(*parts)
    if not p.exists():
        raise SharedDataMissing(f"{p} does not exist (shared data root from ${ENV_VAR} or ../shared/data)")
    return p
