"""Shared pytest setup: repo root on sys.path, shared-data fixture."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fedpsyau_jax.shared_data import shared_data_root  # noqa: E402


@pytest.fixture(scope="session")
def shared_root() -> Path:
    root = shared_data_root(required=False)
    if root is None:
        pytest.skip("shared data folder not found (set FEDPSYAU_SHARED_DATA)")
    return root
