"""A frame-difference baseline spotter (for comparison in the benchmark only).

No face tracking, no flow: the face box of the first frame (dlib), grey crops at
64 px, and per frame the mean absolute difference between frame t and the mean of
frames t-k and t+k (k = 0.2 s; the feature-difference idea of Moilanen et al. 2014
with raw pixels as the feature). Peaks, the robust threshold (its c chosen on the same
synthetic tuning seed) and merging are those of ``intervals``; an interval is the
fixed window apex ± k (no displacement-based edges, no talking rule).
"""

from __future__ import annotations

import numpy as np

from data_pipelines import face_crop, face_landmarks
from fedpsyau_jax.video import intervals as iv_mod
from fedpsyau_jax.video.frame_stream import VideoInfo, iter_frames

SIZE = 64
THRESHOLD_C = 0.25


def frame_difference_signal(info: VideoInfo) -> tuple[np.ndarray, np.ndarray]:
    """(score (T,), face (T,)) of the whole video."""
    crops: list[np.ndarray | None] = []
    box: face_crop.CropBox | None = None
    for _, _, img in iter_frames(info):
        if box is None:
            faces = face_landmarks.detect_faces(img)
            if faces:
                lm = face_landmarks.landmarks68(img, faces[0][0])
                box = face_crop.crop_box(lm)
            else:
                crops.append(None)
                continue
        crops.append(face_crop.crop_face(img, box, size=SIZE).astype(np.float32))
    k = iv_mod.scale_frames(info.fps, iv_mod.MICRO_K_S)
    n = len(crops)
    score = np.zeros(n)
    face = np.array([c is not None for c in crops])
    for t in range(n):
        lo, hi = max(0, t - k), min(n - 1, t + k)
        cur, before, after = crops[t], crops[lo], crops[hi]
        if cur is None or before is None or after is None:
            continue
        score[t] = np.abs(cur - 0.5 * (before + after)).mean()
    return score, face


def intervals_from_signal(
    score: np.ndarray, face: np.ndarray, fps: float, threshold_c: float = THRESHOLD_C
) -> list[iv_mod.Interval]:
    """Peaks above the robust threshold → [apex - k, apex + k], merged, kind by length."""
    k = iv_mod.scale_frames(fps, iv_mod.MICRO_K_S)
    thr = iv_mod.robust_threshold(score, face, threshold_c, 1e-6)
    out = []
    for t in iv_mod.peaks(score, thr, int(round(iv_mod.NMS_FACTOR * k))):
        on, off = max(0, t - k), min(len(score) - 1, t + k)
        out.append(iv_mod.Interval(on, t, off, "", float(score[t] / thr), "micro"))
    merged = iv_mod.merge_overlaps(out)
    for iv in merged:
        iv.kind = "micro" if iv.length() <= iv_mod.MICRO_MAX_S * fps + 1 else "macro"
    return merged


def spot_frame_difference(info: VideoInfo, threshold_c: float = THRESHOLD_C) -> list[iv_mod.Interval]:
    score, face = frame_difference_signal(info)
    return intervals_from_signal(score, face, info.fps, threshold_c)
