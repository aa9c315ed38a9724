"""Preprocessing speed on the real clip fixture (tests/fixtures/faces/single_face.mp4).

    .venv/bin/python benchmarks/preprocess_speed.py [--pairs 40] [--default-pairs 8]

Prints, per stage: face detection + 68 landmarks per frame; TV-L1 flow pairs per
second on 128x128 grey crops (pipeline parameters and OpenCV's defaults); and the
whole path per onset→apex pair (face, landmarks on both frames, alignment, crops,
TV-L1, strain, encoding, flow28, 65 keypoints, 65 ROI patches). Frames are decoded
once beforehand (decoding is reported separately). Load averages are printed
because the numbers depend on what else runs on the cores.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from data_pipelines import face_landmarks, optical_flow
from data_pipelines.video_io import read_video_gray
from data_pipelines.video_pipeline import clip_to_sample

CLIP = ROOT / "tests" / "fixtures" / "faces" / "single_face.mp4"
PATCH, HALF = 5, 2


def roi_patches_np(flow: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """numpy twin of fedpsyau_jax.network.roi_patches.cut_patches (row = y, windows shifted inside)."""
    h, w, _ = flow.shape
    xy = np.round(landmarks).astype(np.int32)
    c0 = np.clip(xy[:, 0] - HALF, 0, w - PATCH)
    r0 = np.clip(xy[:, 1] - HALF, 0, h - PATCH)
    off = np.arange(PATCH)
    return flow[r0[:, None, None] + off[None, :, None], c0[:, None, None] + off[None, None, :]]


def timed(fn, n: int) -> float:
    """Seconds per call, best of 3 rounds of n calls (least disturbed by other load)."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, (time.perf_counter() - t) / n)
    return best


# Settings compared by --sweep (deltas from OpenCV's defaults).
SWEEP: dict[str, dict] = {
    "OpenCV default": {},
    "nscales3 step.5 (defaults otherwise)": {"nscales": 3, "scaleStep": 0.5},
    "default pyramid, warps3 in10 out2 eps.05": {"warps": 3, "innnerIterations": 10,
                                                 "outerIterations": 2, "epsilon": 0.05},
    "pipeline": {k: v for k, v in optical_flow.TVL1_PARAMS.items()
                 if optical_flow.OPENCV_DEFAULT_TVL1.get(k) != v},
    "pipeline, warps2": {**optical_flow.TVL1_PARAMS, "warps": 2},
    "pipeline, nscales4": {**optical_flow.TVL1_PARAMS, "nscales": 4},
    "pipeline, in15 out3 eps.02": {**optical_flow.TVL1_PARAMS, "innnerIterations": 15,
                                   "outerIterations": 3, "epsilon": 0.02},
}


def sweep(onset: np.ndarray, apex: np.ndarray) -> None:
    smp = clip_to_sample(onset, apex)
    a, b, lm = smp["onset_crop"], smp["apex_crop"], smp["landmarks"]
    ref = optical_flow.tvl1_flow(a, b, optical_flow.OPENCV_DEFAULT_TVL1)

    def roi_mag(f, sl):
        mag = np.hypot(f[..., 0], f[..., 1])[..., None]
        return float(roi_patches_np(mag, lm[sl]).mean())
    print("sweep (frame 0 -> 35, aligned 128x128 crops):")
    for label, delta in SWEEP.items():
        p = {**optical_flow.OPENCV_DEFAULT_TVL1, **delta}
        n = 2 if label == "OpenCV default" or "nscales" not in delta else 10
        s = timed(lambda i: optical_flow.tvl1_flow(a, b, p), n)
        f = optical_flow.tvl1_flow(a, b, p)
        epe = float(np.hypot(*(f - ref).transpose(2, 0, 1)).mean())
        ratio = roi_mag(f, slice(32, 52)) / roi_mag(f, slice(10, 22))
        print(f"  {label:44s} {s * 1e3:7.1f} ms  EPE vs default {epe:.2f} px  mouth/eye {ratio:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=40, help="onset→apex pairs per round (tuned)")
    ap.add_argument("--default-pairs", type=int, default=6, help="pairs per round at OpenCV defaults")
    ap.add_argument("--sweep", action="store_true",
                    help="also compare TV-L1 settings: time, end-point error vs OpenCV defaults, "
                         "mouth/eye ROI flow ratio")
    ap.add_argument("--check-jax", action="store_true",
                    help="check the numpy ROI cut against fedpsyau_jax.network.roi_patches once")
    args = ap.parse_args()
    import cv2
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"cv2 {cv2.__version__} threads {cv2.getNumThreads()}, load avg {os.getloadavg()}")

    t = time.perf_counter()
    frames = read_video_gray(CLIP)
    print(f"decode: {len(frames)} frames in {time.perf_counter() - t:.3f} s")
    keys = sorted(frames)
    onset = frames[0]
    apexes = [frames[k] for k in range(20, 60)]   # the smile of the clip

    def face(i):
        img = frames[keys[i % len(keys)]]
        box = face_landmarks.detect_face(img)
        face_landmarks.landmarks68(img, box)
    face(0)  # loads the models
    s = timed(face, len(keys))
    print(f"face detection + 68 landmarks: {s * 1e3:.1f} ms/frame ({640}x{360})")

    base = clip_to_sample(onset, apexes[15])
    crops = [clip_to_sample(onset, a)["apex_crop"] for a in apexes[:8]]
    a0 = base["onset_crop"]
    for label, params, n in (("pipeline", optical_flow.TVL1_PARAMS, args.pairs),
                             ("OpenCV default", optical_flow.OPENCV_DEFAULT_TVL1, args.default_pairs)):
        s = timed(lambda i: optical_flow.tvl1_flow(a0, crops[i % len(crops)], params), n)
        print(f"TV-L1 128x128 ({label}): {s * 1e3:.1f} ms/pair = {1 / s:.1f} pairs/s")
    print(f"  pipeline params: {optical_flow.TVL1_PARAMS}")

    def whole(params):
        def go(i):
            smp = clip_to_sample(onset, apexes[i % len(apexes)], tvl1_params=params)
            roi_patches_np(smp["flow128"], smp["landmarks"])
        return go
    for label, params, n in (("pipeline", None, args.pairs),
                             ("OpenCV default", optical_flow.OPENCV_DEFAULT_TVL1, args.default_pairs)):
        s = timed(whole(params), n)
        print(f"whole path face+align+flow+ROI ({label} TV-L1): {s * 1e3:.1f} ms/pair = {1 / s:.1f} pairs/s")

    if args.sweep:
        sweep(onset, frames[35])

    if args.check_jax:
        from fedpsyau_jax.network.roi_patches import cut_patches
        ref = np.asarray(cut_patches(base["flow128"], base["landmarks"]))
        np.testing.assert_array_equal(ref, roi_patches_np(base["flow128"], base["landmarks"]))
        print("numpy ROI cut == fedpsyau_jax.network.roi_patches.cut_patches")
    print(f"load avg after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
