"""The package's version, read from the installed distribution's metadata.

pyproject.toml's ``[project] version`` is the one place the version is written;
``fedpsyau --version``, ``fedpsyau_jax.__version__`` and model cards read it here.
"""

from importlib import metadata

DISTRIBUTION = "fedpsyau-jax"


def package_version() -> str:
    """``"0.2.0"`` etc.; ``"0+unknown"`` for a source tree that was never installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"
