"""The ``fedpsyau`` command line: one module per verb, each a thin layer over the library.

``main`` (in ``cli.main``) dispatches to ``train``, ``evaluate``, ``predict``,
``federate``, ``data`` and ``preprocess``; only ``predict`` and ``preprocess`` import
the video pipeline (OpenCV, dlib).
"""

from fedpsyau_jax.cli.main import main

__all__ = ["main"]
