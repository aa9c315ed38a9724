"""Face detection and dlib 68-point landmarks on one grey frame.

The detector is dlib's HOG frontal detector; when it returns several boxes the
highest-scoring one is used. Detection is the slowest step of preprocessing, and
its cost grows with the pixel count, so it runs in stages and stops at the first that
finds a face: (1) on a copy shrunk to a short side of ``DETECT_SHORT_SIDE`` px (the
faces of the ME datasets fill most of the frame, so they stay well above the
detector's ~80 px minimum), (2) at full resolution, (3) upsampled once (small faces).
The box is scaled back to the full frame; the shape predictor always runs at full
resolution, so the landmarks keep full precision.
"""

from __future__ import annotations

import numpy as np

import dlib

from data_pipelines.dlib_models import frontal_detector, shape_predictor
from data_pipelines.sample_errors import MultipleFacesError, NoFaceError

# Detection stages (image short side in px or None = full resolution, dlib upsample
# count), tried in order until a face is found; see the module docstring.
DETECT_SHORT_SIDE = 240
DETECT_STAGES: tuple[tuple[int | None, int], ...] = ((DETECT_SHORT_SIDE, 0), (None, 0), (None, 1))


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
    """All frontal faces as (box in full-frame px, score), best first, from the first
    stage of ``DETECT_STAGES`` that finds any; [] if no stage does."""
    import cv2

    img = as_gray_uint8(gray)
    det = frontal_detector()
    short = min(img.shape)
    for side, up in DETECT_STAGES:
        scale = 1.0
        work = img
        if side is not None:
            if short <= side:
                continue  # already small: the full-resolution stage covers it
            scale = side / short
            work = cv2.resize(
                img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA
            )
        # run() -> (rectangles, scores, sub-detector indices); adjust_threshold 0 is
        # dlib's default operating point.
        boxes, scores, _ = det.run(work, up, 0.0)
        if len(boxes):
            order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
            return [(_rescale(boxes[int(i)], 1.0 / scale), float(scores[int(i)])) for i in order]
    return []


def _rescale(b: dlib.rectangle, f: float) -> dlib.rectangle:
    if f == 1.0:
        return b
    return dlib.rectangle(
        int(round(b.left() * f)), int(round(b.top() * f)), int(round(b.right() * f)), int(round(b.bottom() * f))
    )


def detect_face(gray: np.ndarray) -> dlib.rectangle | None:
    """The highest-scoring frontal face box, or None when there is no face."""
    faces = detect_faces(gray)
    return faces[0][0] if faces else None


def landmarks68(
    gray: np.ndarray, box: dlib.rectangle | None = None, *, exactly_one: bool = False, what: str = "image"
) -> np.ndarray:
    """dlib 68 landmarks as (68, 2) float32 (x, y) in the image's pixel frame.

    ``box=None`` detects the face first: no face raises ``NoFaceError``; several
    faces raise ``MultipleFacesError`` when ``exactly_one`` is set and otherwise the
    highest-scoring box is used. ``what`` names the image in errors.
    """
    img = as_gray_uint8(gray, what)
    if box is None:
        faces = detect_faces(img)
        if not faces:
            raise NoFaceError(f"{what}: no face found by the dlib frontal detector (stages {DETECT_STAGES})")
        if exactly_one and len(faces) > 1:
            desc = "; ".join(f"{_box_str(b)} score {s:.2f}" for b, s in faces)
            raise MultipleFacesError(f"{what}: {len(faces)} faces found where one is required ({desc})")
        box = faces[0][0]
    shape = shape_predictor()(img, box)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def _box_str(b: dlib.rectangle) -> str:
    return f"[l{b.left()} t{b.top()} r{b.right()} b{b.bottom()}]"
