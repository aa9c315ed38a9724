"""The model input's face crop, landmark mapping into it, and apex→onset alignment.

Coordinates: landmarks are (x, y) with pixel centres at integers (dlib's convention).
The crop box is a continuous rectangle [left, left+side) x [top, top+height) in that
frame (a square unless ``height`` is given); crop pixel k (of ``size``) has its centre
at left + (k + 0.5) * side / size, so a frame point x maps to
k = (x - left) * size / side - 0.5 (rows likewise with ``height``). The same formula is
used for the image warp and for the landmarks, so they agree to sub-pixel precision.

Two crop rules (``CROP_RULES``, chosen by ``PipelineParams.crop``):

- ``"eyes"``: the project's square box sized by the inner-eye-corner distance
  (``crop_box``), used to preprocess datasets from their videos.
- ``"composite"``: the face placed as in the released MEGC2019 composite flows
  (``composite_box``). Those flows were cut from tighter, non-square face boxes and
  resized to squares: in them the inner eye corners are about 39 px apart (of 128) against
  27 px in the ``"eyes"`` box, and the face is squashed vertically (eye-to-mouth height
  0.60-0.64 of the outer-eye width against 0.71-0.87 in real faces). A model trained on
  those flows reads faces laid out that way, so its inputs are cut to match
  (benchmarks/input_domain.md has the measurements).

Why warp + area resize instead of slicing: one ``cv2.warpAffine`` does the crop, the
edge-replication padding where the box leaves the frame, and (for the apex frame) the
similarity alignment, at native resolution; the following ``INTER_AREA`` resize to
128 px then averages instead of aliasing, which matters because TV-L1 picks up
aliasing as spurious motion.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from data_pipelines.sample_errors import UnusableSampleError
from fedpsyau_jax.core.keypoints import DLIB_INNER_EYE_LEFT, DLIB_INNER_EYE_RIGHT

CROP_SIZE = 128
# Box extent in units of g = half the inner-eye-corner distance. 6.5g below
# the eye line (not the reference's 5g) keeps dlib's chin, which AU17 needs.
ROWS_ABOVE = 3.0
ROWS_BELOW = 6.5
COLS_HALF = 4.75
# dlib-68 points that barely move with expressions: nose bridge and base, and the
# four eye corners. Aligning on them removes head drift but not the expression.
ALIGN_POINTS: tuple[int, ...] = (27, 28, 29, 30, 31, 35, 36, 39, 42, 45)
CROP_RULES = ("eyes", "composite")
# Where the ALIGN_POINTS sit in the 128-px frame of the released MEGC2019 composite
# flows: the mean over its 442 samples of the dlib points found on the apex crops
# (SAMM's moved into its flows' frame, data_pipelines.megc2019_composite.FLOW_FRAME).
# A summary statistic of the release, printed by
# `python benchmarks/input_domain.py --print-layout`.
COMPOSITE_LAYOUT: dict[int, tuple[float, float]] = {
    27: (62.77, 32.21),
    28: (62.93, 42.76),
    29: (63.04, 53.10),
    30: (63.22, 63.87),
    31: (48.35, 71.53),
    35: (77.58, 71.69),
    36: (17.73, 34.40),
    39: (43.19, 35.54),
    42: (82.04, 35.42),
    45: (107.37, 34.10),
}
COMPOSITE_LAYOUT_SIZE = 128


@dataclasses.dataclass(frozen=True)
class CropBox:
    """A crop box in frame coordinates (see module docstring): ``side`` wide and
    ``height`` tall (``height`` None: a square)."""

    left: float
    top: float
    side: float
    height: float | None = None

    @property
    def rows(self) -> float:
        """The box's height in frame px."""
        return self.side if self.height is None else self.height

    def as_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)


def crop_box(points68: np.ndarray, what: str = "face") -> CropBox:
    """The crop box from dlib-68 landmarks: rows [cy-3g, cy+6.5g), cols [cx-4.75g, cx+4.75g)."""
    pts = _check_points(points68, 68, what)
    a, b = pts[DLIB_INNER_EYE_LEFT].astype(np.float64), pts[DLIB_INNER_EYE_RIGHT].astype(np.float64)
    g = 0.5 * float(np.hypot(*(b - a)))
    if not g >= 2.0:  # also catches NaN
        # A data problem (the predictor collapsed), not a bug: reported per sample.
        raise UnusableSampleError(
            f"{what}: inner eye corners (dlib 39, 42) are {2 * g:.2f} px apart; "
            "landmarks are degenerate, cannot size the crop"
        )
    cx, cy = (a + b) / 2.0
    side_rows, side_cols = (ROWS_ABOVE + ROWS_BELOW) * g, 2 * COLS_HALF * g
    assert math.isclose(side_rows, side_cols), "the crop box is square"
    return CropBox(left=cx - COLS_HALF * g, top=cy - ROWS_ABOVE * g, side=side_rows)


def composite_box(points68: np.ndarray, what: str = "face") -> CropBox:
    """The crop box that puts the face where the released MEGC2019 composite flows have it.

    Per axis, the least-squares scale and offset taking the ``ALIGN_POINTS`` of
    ``points68`` (frame px) onto ``COMPOSITE_LAYOUT``; the box is the frame rectangle
    that this map sends onto the 128-px crop. Scaled per axis, not as a similarity,
    because the release's crops are squashed vertically (module docstring); fitted on
    the eye corners and the nose, which expressions barely move.
    """
    pts = _check_points(points68, 68, what).astype(np.float64)
    idx = list(COMPOSITE_LAYOUT)
    src = pts[idx]
    dst = np.array([COMPOSITE_LAYOUT[i] for i in idx], np.float64)
    scale, offset = [], []
    for ax in range(2):
        a = np.stack([src[:, ax], np.ones(len(idx))], axis=1)
        sol = np.linalg.lstsq(a, dst[:, ax], rcond=None)[0]
        scale.append(float(sol[0]))
        offset.append(float(sol[1]))
    if not (min(scale) > 0 and np.isfinite(offset).all()):  # also catches NaN
        raise UnusableSampleError(
            f"{what}: eye corners and nose (dlib {idx}) are degenerate "
            f"(fitted scales {scale[0]:.3g}, {scale[1]:.3g}); cannot place the face as in the composite"
        )
    # crop px k = (x - left) * size / w - 0.5 = scale * x + offset  →  w = size / scale, left = -(offset + 0.5) / scale
    width, height = COMPOSITE_LAYOUT_SIZE / scale[0], COMPOSITE_LAYOUT_SIZE / scale[1]
    if not min(width, height) >= 8.0:
        raise UnusableSampleError(f"{what}: face too small to crop ({width:.1f} x {height:.1f} px)")
    return CropBox(left=-(offset[0] + 0.5) / scale[0], top=-(offset[1] + 0.5) / scale[1], side=width, height=height)


def face_box(points68: np.ndarray, rule: str = "eyes", what: str = "face") -> CropBox:
    """The crop box of the crop ``rule`` (``CROP_RULES``)."""
    if rule == "eyes":
        return crop_box(points68, what)
    if rule == "composite":
        return composite_box(points68, what)
    raise ValueError(f"crop rule {rule!r}: choose from {', '.join(CROP_RULES)}")


def crop_matrix(box: CropBox, out_size: int) -> np.ndarray:
    """(2, 3) affine map from frame coordinates to a crop of ``out_size`` pixels."""
    sx, sy = out_size / box.side, out_size / box.rows
    return np.array([[sx, 0.0, -box.left * sx - 0.5], [0.0, sy, -box.top * sy - 0.5]], np.float64)


def crop_face(
    gray: np.ndarray, box: CropBox, *, transform: np.ndarray | None = None, size: int = CROP_SIZE
) -> np.ndarray:
    """Crop ``box`` out of ``gray`` as a (size, size) uint8 image.

    ``transform`` (2x3, optional) first maps this frame into the reference frame the box
    was defined in (e.g. apex → onset alignment). Outside the frame, edge pixels are
    replicated. Shrinking is done with area averaging at the end.
    """
    img = np.asarray(gray)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"crop_face expects a 2-D uint8 grey image, got {img.dtype} {img.shape}")
    native = max(size, int(round(max(box.side, box.rows))))
    m = crop_matrix(box, native)
    if transform is not None:
        m = compose(m, transform)
    out = cv2.warpAffine(img, m, (native, native), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if native != size:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return out


def map_points(
    points: np.ndarray, box: CropBox, *, size: int = CROP_SIZE, transform: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Points (K, 2) in frame coordinates → crop coordinates clamped to [0, size-1].

    Returns (points, n_clamped) where n_clamped counts points that lay outside the
    crop before clamping.
    """
    pts = np.asarray(points, np.float64)
    if transform is not None:
        pts = apply_transform(pts, transform)
    out = apply_transform(pts, crop_matrix(box, size))
    outside = np.any((out < 0.0) | (out > size - 1), axis=1)
    return np.clip(out, 0.0, size - 1).astype(np.float32), int(outside.sum())


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection)
    mapping ``src`` (K, 2) onto ``dst`` (K, 2), as a (2, 3) matrix (Umeyama 1991).

    Closed form rather than cv2.estimateAffinePartial2D so the result is exact least
    squares over all points and free of RANSAC's sampling.
    """
    s, d = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if s.shape != d.shape or s.ndim != 2 or s.shape[1] != 2 or len(s) < 2:
        raise ValueError(f"similarity_transform needs two (K>=2, 2) point sets, got {s.shape} and {d.shape}")
    ms, md = s.mean(0), d.mean(0)
    sc, dc = s - ms, d - md
    var_s = (sc**2).sum() / len(s)
    if var_s <= 1e-12:
        raise ValueError("similarity_transform: source points are all identical")
    cov = dc.T @ sc / len(s)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1.0
    r = u @ e @ vt
    scale = float((sig * np.diag(e)).sum() / var_s)
    t = md - scale * r @ ms
    return np.hstack([scale * r, t[:, None]])


def alignment_transform(moving68: np.ndarray, fixed68: np.ndarray) -> np.ndarray:
    """Similarity (2, 3) taking the ``moving`` face onto the ``fixed`` face on eyes and nose."""
    mv = _check_points(moving68, 68, "moving face")
    fx = _check_points(fixed68, 68, "fixed face")
    idx = list(ALIGN_POINTS)
    return similarity_transform(mv[idx], fx[idx])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 affine ``outer ∘ inner`` (apply inner first)."""
    o, i = np.vstack([outer, [0, 0, 1]]), np.vstack([inner, [0, 0, 1]])
    return (o @ i)[:2]


def apply_transform(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    return pts @ np.asarray(m, np.float64)[:, :2].T + np.asarray(m, np.float64)[:, 2]


def _check_points(points: np.ndarray, k: int, what: str) -> np.ndarray:
    pts = np.asarray(points)
    if pts.shape != (k, 2):
        raise ValueError(f"{what}: expected ({k}, 2) landmarks, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"{what}: landmarks contain NaN/inf")
    return pts
