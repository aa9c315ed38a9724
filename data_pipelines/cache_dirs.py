"""Where preprocessed samples are cached: ``$FEDPSYAU_CACHE`` or ``~/.cache/fedpsyau``.

A leaf module (no project imports) so that the dataset registry and every loader can
use it without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "FEDPSYAU_CACHE"


def default_cache_dir() -> Path:
    """``$FEDPSYAU_CACHE`` or ``~/.cache/fedpsyau``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fedpsyau"
