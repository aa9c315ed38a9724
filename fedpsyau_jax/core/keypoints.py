"""The 65 facial keypoints, derived from dlib's 68-point layout.

The paper drops ten outer jaw points and adds seven midpoints; the reference code
never lists them, so this module is the project's explicit definition. Token index T
(0..64) is the order used everywhere downstream (ROI patches, SSE tokens, groups).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NUM_KEYPOINTS = 65
NUM_DLIB_POINTS = 68

# Each token is the mean of one or two dlib-68 indices (0-based).
_TOKENS: Sequence[tuple[int, ...]] = (
    [(i,) for i in range(17, 27)]  # T 0-9: eyebrows
    + [(i,) for i in range(36, 48)]  # T 10-21: eyes
    + [(21, 22)]  # T 22: glabella
    + [(i,) for i in range(27, 31)]  # T 23-26: nose bridge
    + [(i,) for i in range(31, 36)]  # T 27-31: lower nose
    + [(i,) for i in range(48, 68)]  # T 32-51: mouth
    + [(i,) for i in range(5, 12)]  # T 52-58: chin
    + [(41, 48), (2, 31), (3, 48), (46, 54), (14, 35), (13, 54)]  # T 59-64: cheeks
)
assert len(_TOKENS) == NUM_KEYPOINTS

# (65, 68) averaging matrix: keypoints65 = MIX @ dlib68. A matrix (not index code)
# so the same mapping works for numpy and jax arrays and for batches.
DLIB68_TO_65 = np.zeros((NUM_KEYPOINTS, NUM_DLIB_POINTS), np.float32)
for _t, _src in enumerate(_TOKENS):
    DLIB68_TO_65[_t, list(_src)] = 1.0 / len(_src)

REGION_SLICES: dict[str, slice] = {
    "eyebrows": slice(0, 10),
    "eyes": slice(10, 22),
    "glabella": slice(22, 23),
    "nose_bridge": slice(23, 27),
    "lower_nose": slice(27, 32),
    "mouth": slice(32, 52),
    "chin": slice(52, 59),
    "cheeks": slice(59, 65),
}

# dlib-68 indices of the inner eye corners, used by the input crop rule.
DLIB_INNER_EYE_LEFT = 39
DLIB_INNER_EYE_RIGHT = 42


def dlib68_to_65(points68: np.ndarray) -> np.ndarray:
    """Map dlib-68 points (..., 68, 2) to the 65 keypoints (..., 65, 2), same dtype."""
    pts = np.asarray(points68)
    if pts.shape[-2:] != (NUM_DLIB_POINTS, 2):
        raise ValueError(f"expected (..., 68, 2) dlib points, got shape {pts.shape}")
    return np.einsum("kd,...dc->...kc", DLIB68_TO_65, pts.astype(np.float32))


# dlib-68 left↔right mirror pairs (a point mirrored across the face's vertical axis;
# points on the axis map to themselves).
_DLIB_MIRROR_PAIRS = (
    [(i, 16 - i) for i in range(8)]  # jaw 0..7 ↔ 16..9
    + [(17 + i, 26 - i) for i in range(5)]  # eyebrows
    + [(31, 35), (32, 34)]  # lower nose
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    + [(60, 64), (61, 63), (65, 67)]  # inner lips
)
DLIB68_MIRROR = np.arange(NUM_DLIB_POINTS)
for _a, _b in _DLIB_MIRROR_PAIRS:
    DLIB68_MIRROR[_a], DLIB68_MIRROR[_b] = _b, _a


def _mirror_tokens() -> np.ndarray:
    """Token permutation P with token P[k] of a mirrored face = mirror of token k."""
    by_sources = {frozenset(src): t for t, src in enumerate(_TOKENS)}
    perm = np.array([by_sources[frozenset(int(DLIB68_MIRROR[i]) for i in src)] for src in _TOKENS])
    assert sorted(perm.tolist()) == list(range(NUM_KEYPOINTS))
    return perm


# MIRROR_65[k]: the token that holds point k's mirror image. After a horizontal flip
# of the image and the landmark coordinates, ``flipped[MIRROR_65]`` puts every token
# back on the facial point it names (token 0, the right brow's outer end, again).
MIRROR_65 = _mirror_tokens()
