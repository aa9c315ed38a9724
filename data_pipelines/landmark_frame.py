"""Are a dataset's landmarks in the frame of its flows? A measurement without labels.

The ROI windows are cut from the flow at landmarks that may have been detected on
another image of the face (the MEGC2019 composite: on the apex crops). Faces move at
the brows, eyes and mouth, so the mean motion image of a dataset shows where its faces
sit in the flow frame. ``frame_maps`` registers each dataset's motion image onto a
reference dataset's (per-axis scale and shift, coarse-to-fine grid search on
normalised cross-correlation) and turns that into the per-axis map of its mean
landmarks onto the reference's registered ones: the numbers
``megc2019_composite.FLOW_FRAME`` holds (``experiments/au_branch/landmark_flow_frame.py`` prints
them and draws the AU check).
"""

from __future__ import annotations

import numpy as np

from data_pipelines.megc2019_composite import CROP_SIZE

SIDE = 28


def motion_image(flow28: np.ndarray) -> np.ndarray:
    """(28, 28) mean over samples of |u - median u| + |v - median v| plus the strain
    channel, each normalised by its own mean over the image: where faces move."""
    f = np.asarray(flow28, np.float64)
    dev = np.abs(f[..., :2] - np.median(f[..., :2], axis=(1, 2), keepdims=True)).sum(-1)
    strain = f[..., 2]
    return (dev / dev.mean((1, 2), keepdims=True)).mean(0) + (strain / strain.mean((1, 2), keepdims=True)).mean(0)


def _warp(img: np.ndarray, sx: float, sy: float, tx: float, ty: float) -> np.ndarray:
    """``img`` sampled at (sx x + tx, sy y + ty) for every pixel (x, y) of the reference."""
    import cv2

    m = np.array([[sx, 0.0, tx], [0.0, sy, ty]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(img.astype(np.float32), m, (SIDE, SIDE), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a[2:-2, 2:-2].ravel(), b[2:-2, 2:-2].ravel()  # the border is replicated, not seen
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def register(img: np.ndarray, ref: np.ndarray) -> tuple[tuple[float, float, float, float], float]:
    """Per-axis (sx, sy, tx, ty) maximising the NCC of ``img`` warped onto ``ref``."""
    best, score = (1.0, 1.0, 0.0, 0.0), _ncc(img, ref)
    for ds, dt, n in ((0.05, 1.0, 6), (0.02, 0.4, 3), (0.01, 0.2, 2)):
        centre = best
        for sx in centre[0] + ds * np.arange(-n, n + 1):
            for sy in centre[1] + ds * np.arange(-n, n + 1):
                for tx in centre[2] + dt * np.arange(-n, n + 1):
                    for ty in centre[3] + dt * np.arange(-n, n + 1):
                        c = _ncc(_warp(img, sx, sy, tx, ty), ref)
                        if c > score:
                            best, score = (float(sx), float(sy), float(tx), float(ty)), c
    return best, score


def frame_maps(samples, reference: str = "casme2") -> dict[str, dict]:
    """Per dataset other than ``reference``: the registration, its NCC before and after,
    and the landmark map (a_x, b_x, a_y, b_y) in the 128-px frame (``samples`` with
    their landmarks as detected)."""
    ds = np.asarray(samples.dataset).astype(str)
    lm = np.asarray(samples.landmarks, np.float64) * SIDE / CROP_SIZE
    ref = motion_image(samples.flow28[ds == reference])
    ref_lm = lm[ds == reference].mean(0)
    out = {}
    for d in sorted(set(ds) - {reference}):
        img = motion_image(samples.flow28[ds == d])
        (sx, sy, tx, ty), score = register(img, ref)
        target = np.stack([sx * ref_lm[:, 0] + tx, sy * ref_lm[:, 1] + ty], 1)
        src = lm[ds == d].mean(0)
        ax, bx = np.polyfit(src[:, 0], target[:, 0], 1)
        ay, by = np.polyfit(src[:, 1], target[:, 1], 1)
        k = CROP_SIZE / SIDE
        out[d] = {
            "registration": (sx, sy, tx, ty),
            "ncc_identity": _ncc(img, ref),
            "ncc_registered": score,
            "map128": (float(ax), float(bx * k), float(ay), float(by * k)),
            "max_shift_px28": float(np.abs(np.stack([ax * src[:, 0] + bx, ay * src[:, 1] + by], 1) - src).max()),
        }
    return out
