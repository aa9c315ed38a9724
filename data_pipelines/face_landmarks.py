"""Face detection and dlib 68-point landmarks on one grey frame (SPEC §1 step 1).

The detector is dlib's HOG frontal detector; when it returns several boxes SPEC §1
takes the highest-scoring one. We first run it without upsampling (about 4x faster,
and enough for the 640x480-class frames of CASME II/SAMM/CAS(ME)^3 where the face is
large) and only upsample once when nothing was found at the native scale.
"""
from __future__ import annotations

import numpy as np

import dlib

from data_pipelines.sample_errors import MultipleFacesError, NoFaceError

# TEMPORARY private loaders until data_pipelines.dlib_models exists (colleague D1).
import functools
import importlib.util
from pathlib import Path


@functools.lru_cache(maxsize=1)
def frontal_detector():
    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=1)
def shape_predictor():
    spec = importlib.util.find_spec("face_recognition_models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    return dlib.shape_predictor(str(path))


# Upsampling steps tried in order until a face is found (see module docstring).
UPSAMPLE_STEPS: tuple[int, ...] = (0, 1)


def as_gray_uint8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """A C-contiguous 2-D uint8 view/copy of ``image`` (grey, or BGR/BGRA converted)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"{what}: expected a uint8 image, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] in (3, 4):
        import cv2
        code = cv2.COLOR_BGR2GRAY if img.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        img = cv2.cvtColor(img, code)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim != 2:
        raise ValueError(f"{what}: expected an (H, W) grey or (H, W, 3) image, got shape {img.shape}")
    if min(img.shape) < 16:
        raise ValueError(f"{what}: image of shape {img.shape} is too small to hold a face")
    return np.ascontiguousarray(img)


def detect_faces(gray: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
    """All frontal faces as (box, score), best first, at the first upsampling step
    of ``UPSAMPLE_STEPS`` that finds any; [] if none is found at any step."""
    img = as_gray_uint8(gray)
    det = frontal_detector()
    for up in UPSAMPLE_STEPS:
        # run() -> (rectangles, scores, sub-detector indices); adjust_threshold 0 is
        # dlib's default operating point.
        boxes, scores, _ = det.run(img, up, 0.0)
        if len(boxes):
            order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
            return [(boxes[int(i)], float(scores[int(i)])) for i in order]
    return []


def detect_face(gray: np.ndarray) -> dlib.rectangle | None:
    """The highest-scoring frontal face box, or None when there is no face."""
    faces = detect_faces(gray)
    return faces[0][0] if faces else None


def landmarks68(gray: np.ndarray, box: dlib.rectangle | None = None, *,
                exactly_one: bool = False, what: str = "image") -> np.ndarray:
    """dlib 68 landmarks as (68, 2) float32 (x, y) in the image's pixel frame.

    ``box=None`` detects the face first: no face raises ``NoFaceError``; several
    faces raise ``MultipleFacesError`` when ``exactly_one`` is set and otherwise the
    highest-scoring box is used (SPEC §1). ``what`` names the image in errors.
    """
    img = as_gray_uint8(gray, what)
    if box is None:
        faces = detect_faces(img)
        if not faces:
            raise NoFaceError(f"{what}: no face found by the dlib frontal detector "
                              f"(upsample {', '.join(map(str, UPSAMPLE_STEPS))})")
        if exactly_one and len(faces) > 1:
            desc = "; ".join(f"{_box_str(b)} score {s:.2f}" for b, s in faces)
            raise MultipleFacesError(f"{what}: {len(faces)} faces found where one is required ({desc})")
        box = faces[0][0]
    shape = shape_predictor()(img, box)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def _box_str(b: dlib.rectangle) -> str:
    return f"[l{b.left()} t{b.top()} r{b.right()} b{b.bottom()}]"
