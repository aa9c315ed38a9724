"""JAX's persistent compilation cache for the command line and scripts.

Compiling the full network costs minutes on a busy 2-core CPU (one jitted train step,
one vmapped init, one eval step per run), and every resumed LOSO run, every federated
chunk and every point of a sweep compiled them again. With the cache a second process
with the same shapes loads the executables instead. Location: ``$JAX_COMPILATION_CACHE_DIR``
if set, else ``$FEDPSYAU_CACHE_DIR/xla``, else ``~/.cache/fedpsyau_jax/xla``;
``FEDPSYAU_XLA_CACHE=off`` disables it. Entries are keyed by the compiled program and
the compiler version, so a stale entry is never used for a different program.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> str:
    """``$FEDPSYAU_CACHE_DIR/xla``, else ``~/.cache/fedpsyau_jax/xla`` (imports no jax:
    the test suite reads it before jax is configured)."""
    base = os.environ.get("FEDPSYAU_CACHE_DIR") or str(Path.home() / ".cache" / "fedpsyau_jax")
    return str(Path(base) / "xla")


def enable_compilation_cache() -> str | None:
    """Turn the cache on (call before the first compile); returns its folder or None."""
    if os.environ.get("FEDPSYAU_XLA_CACHE", "").lower() in ("off", "0", "false", "no"):
        return None
    path = os.environ.get("JAX_COMPILATION_CACHE_DIR") or default_cache_dir()
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home: run without the cache
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return path
