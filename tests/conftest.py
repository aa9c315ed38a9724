"""Shared pytest setup: repo root on sys.path, JAX compile cache, shared-data fixture."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Many test files compile the same network; a persistent compilation cache lets the
# second file reuse the first one's executable instead of paying ~20 s again.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from fedpsyau_jax.shared_data import shared_data_root  # noqa: E402


@pytest.fixture(scope="session")
def shared_root() -> Path:
    root = shared_data_root(required=False)
    if root is None:
        pytest.skip("shared data folder not found (set FEDPSYAU_SHARED_DATA)")
    return root
