"""Onset→apex TV-L1 optical flow, optical strain and the network's flow encoding.

Channels of the encoded flow are u, v, strain. Encoding is per sample and per channel
min-max to [0, 1] — the STSTNet/HTNet convention of the published 28x28 flow images —
so ``flow28`` is min-max scaled *at* 28x28 (area-resize the raw u, v, strain first,
then scale), exactly like those images, rather than being a shrunk copy of flow128.
"""

from __future__ import annotations

import functools
import json
from typing import Sequence

import cv2
import numpy as np

# OpenCV's own defaults of cv::optflow::DualTVL1OpticalFlow (checked on
# opencv-contrib 5.0.0 with the getters), kept for comparison in the benchmark.
OPENCV_DEFAULT_TVL1: dict[str, float | int | bool] = {
    "tau": 0.25,
    "lambda_": 0.15,
    "theta": 0.3,
    "nscales": 5,
    "warps": 5,
    "epsilon": 0.01,
    "innnerIterations": 30,
    "outerIterations": 10,
    "scaleStep": 0.8,
    "gamma": 0.0,
    "medianFiltering": 5,
    "useInitialFlow": False,
}

# Parameters used by the pipeline (keys spelled as cv2's keyword arguments, including
# OpenCV's "innnerIterations" typo). Tuned on 128x128 face crops for speed; see
# benchmarks/PREPROCESS.md for the measurements behind each choice:
#  * nscales 3 with scaleStep 0.5 still spans 128→32 px (the same coarsest level as the
#    default 5 levels at 0.8 would reach only 52 px), so 5-6 px mouth motion is caught;
#  * fewer warps/iterations and a looser epsilon: a 128-px crop converges quickly.
TVL1_PARAMS: dict[str, float | int | bool] = {
    **OPENCV_DEFAULT_TVL1,
    "nscales": 3,
    "scaleStep": 0.5,
    "warps": 3,
    "innnerIterations": 10,
    "outerIterations": 2,
    "epsilon": 0.05,
}

CHANNELS = ("u", "v", "strain")
FLOW28_SIZE = 28


@functools.lru_cache(maxsize=8)
def _tvl1(params_json: str):
    return cv2.optflow.DualTVL1OpticalFlow_create(**json.loads(params_json))  # type: ignore[attr-defined]  # contrib module, not in cv2's stubs


def tvl1_flow(prev: np.ndarray, nxt: np.ndarray, params: dict | None = None) -> np.ndarray:
    """TV-L1 flow from ``prev`` to ``nxt`` (same-size 2-D uint8) → (H, W, 2) float32 (u, v) in px."""
    a, b = np.asarray(prev), np.asarray(nxt)
    if a.ndim != 2 or a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(
            f"tvl1_flow expects two equal-size 2-D uint8 images, got {a.dtype}{a.shape} and {b.dtype}{b.shape}"
        )
    p = TVL1_PARAMS if params is None else params
    flow = _tvl1(json.dumps(p, sort_keys=True)).calc(a, b, None)
    return np.asarray(flow, np.float32)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Strain magnitude sqrt(exx² + eyy² + 2 exy²) of (H, W, 2) flow, central differences.

    exx = du/dx, eyy = dv/dy, exy = (du/dy + dv/dx)/2; x is the column axis.
    ``np.gradient`` is central in the interior and one-sided on the border rows/cols.
    """
    f = np.asarray(flow, np.float64)
    if f.ndim != 3 or f.shape[2] != 2 or min(f.shape[:2]) < 2:
        raise ValueError(f"optical_strain expects (H>=2, W>=2, 2) flow, got {f.shape}")
    u, v = f[..., 0], f[..., 1]
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    exy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx**2 + dv_dy**2 + 2.0 * exy**2).astype(np.float32)


def minmax_encode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel min-max of (H, W, C) to [0, 1] → (encoded float32, constant (C,) bool).

    A constant channel carries no information and would divide by zero: it is encoded
    as all 0 and flagged, so the caller can report it instead of hiding it.
    """
    a = np.asarray(x, np.float64)
    if a.ndim != 3:
        raise ValueError(f"minmax_encode expects (H, W, C), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("minmax_encode: input contains NaN/inf")
    lo, hi = a.min(axis=(0, 1)), a.max(axis=(0, 1))
    rng = hi - lo
    # "Constant" relative to the channel's magnitude, so float noise does not count.
    constant = rng <= 1e-9 * np.maximum(1.0, np.abs(hi))
    out = (a - lo) / np.where(constant, 1.0, rng)
    out[..., constant] = 0.0
    return np.clip(out, 0.0, 1.0).astype(np.float32), constant


def flow_features(flow_raw: np.ndarray) -> dict[str, np.ndarray]:
    """From raw (H, W, 2) flow: flow128 and flow28 (encoded u, v, strain), the raw strain,
    and which channels were constant (at either size)."""
    f = np.asarray(flow_raw, np.float32)
    strain = optical_strain(f)
    raw3 = np.dstack([f, strain])
    enc, const_full = minmax_encode(raw3)
    small = cv2.resize(raw3, (FLOW28_SIZE, FLOW28_SIZE), interpolation=cv2.INTER_AREA)
    enc28, const_small = minmax_encode(small)
    return {"flow128": enc, "flow28": enc28, "strain_raw": strain, "constant_channels": const_full | const_small}


def average_flows(flows: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of equal-shape raw flows (the apex window: onset→apex-1, apex, apex+1)."""
    if not flows:
        raise ValueError("average_flows needs at least one flow")
    shapes = {np.shape(f) for f in flows}
    if len(shapes) != 1:
        raise ValueError(f"average_flows: flows differ in shape {sorted(shapes)}")
    return np.mean(np.stack(flows), axis=0).astype(np.float32)
