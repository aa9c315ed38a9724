"""dlib's frontal face detector and 68-point shape predictor, loaded once per process.

The 68-point model ships in the ``face_recognition_models`` package. We locate its
file with ``importlib.util.find_spec`` instead of importing the package, because its
``__init__`` imports ``pkg_resources``, which current setuptools no longer provides.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

SHAPE_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


class DlibModelMissing(FileNotFoundError):
    """The dlib model file (or dlib itself) is not installed."""


def shape_predictor_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibModelMissing(
            "package face_recognition_models is not installed; it provides "
            f"{SHAPE_PREDICTOR_FILE} (pip install face-recognition-models==0.3.0)"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "models" / SHAPE_PREDICTOR_FILE
        if p.is_file():
            return p
    raise DlibModelMissing(
        f"{SHAPE_PREDICTOR_FILE} not found in face_recognition_models ({list(spec.submodule_search_locations)})"
    )


def _dlib():
    try:
        import dlib
    except ImportError as e:
        raise DlibModelMissing("dlib is not installed (pip install dlib-bin)") from e
    return dlib


@functools.lru_cache(maxsize=1)
def shape_predictor():
    """The cached ``dlib.shape_predictor`` for the 68-point model."""
    return _dlib().shape_predictor(str(shape_predictor_path()))


@functools.lru_cache(maxsize=1)
def frontal_detector():
    """The cached ``dlib.get_frontal_face_detector()`` (HOG)."""
    return _dlib().get_frontal_face_detector()
