"""The CLI's persistent compilation cache: where it goes, and that it can be switched off."""
import os

from fedpsyau_jax.compile_cache import enable_compilation_cache


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FEDPSYAU_XLA_CACHE", "off")
    assert enable_compilation_cache() is None
    monkeypatch.delenv("FEDPSYAU_XLA_CACHE")
    keep = os.environ.get("JAX_COMPILATION_CACHE_DIR")     # the suite's own cache (conftest)
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("FEDPSYAU_CACHE_DIR", str(tmp_path / "c"))
    try:
        assert enable_compilation_cache() == str(tmp_path / "c" / "xla")
        assert (tmp_path / "c" / "xla").is_dir()
    finally:
        if keep:
            monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", keep)
            assert enable_compilation_cache() == keep
