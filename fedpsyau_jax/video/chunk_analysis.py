"""Per-chunk spotting features (face track + region flows), cached by input content.

A chunk's result depends only on its own decoded frames (with a few frames of context
on each side), never on earlier chunks: each chunk starts a fresh ``FaceTracker`` and
takes its first face as the alignment reference. So a chunk's cache key is a hash of
its frame bytes and the parameters, and a re-run or a run resumed after a crash loads
finished chunks instead of recomputing them (decoding still happens; tracking and flow,
the expensive part, do not).

Landmarks are smoothed over time *within* each run of face frames with a centred
Gaussian (sigma ``SMOOTH_SIGMA`` frames): alignment jitter is the main noise of the
signal, and the context frames make the smoothing the same across chunk edges.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import zipfile
from pathlib import Path

import numpy as np

from fedpsyau_jax.core.atomic_files import save_npz_atomic
from fedpsyau_jax.video.face_track import FaceTracker, TrackParams
from fedpsyau_jax.video.frame_stream import Chunk
from fedpsyau_jax.video.spotting_signal import REGIONS, RegionFlow, SignalParams

SMOOTH_SIGMA = 1.5
CONTEXT = 5  # frames of context each side: 1 for the flow + 4 for smoothing
FEATURE_VERSION = 1
N_BOXES = len(REGIONS) + 3


@dataclasses.dataclass
class ChunkFeatures:
    """Arrays for the chunk's own frames (T = stop - start):
    face (T,) bool, landmarks (T, 68, 2) float32 (NaN without a face), region_flow
    (T, R+3, 2) float32 (NaN where there is no flow into the frame), detected (T,)
    bool (the detector ran), seconds {"track": s, "flow": s} spent computing."""

    face: np.ndarray
    landmarks: np.ndarray
    region_flow: np.ndarray
    detected: np.ndarray
    seconds: dict


def features_key(chunk: Chunk, track: TrackParams, signal: SignalParams) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(
        json.dumps(
            {
                "v": FEATURE_VERSION,
                "track": track.as_dict(),
                "signal": signal.as_dict(),
                "sigma": SMOOTH_SIGMA,
                "before": chunk.before,
                "n": len(chunk.frames),
            },
            sort_keys=True,
        ).encode()
    )
    for f in chunk.frames:
        h.update(np.ascontiguousarray(f).data)
    return h.hexdigest()


def gaussian_smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    """Centred Gaussian filter along axis 0 (kernel radius round(4 sigma), edges
    repeated: what ``scipy.ndimage.gaussian_filter1d(mode="nearest")`` computes, in
    numpy so the package needs no SciPy)."""
    r = int(4.0 * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    pad = np.concatenate([np.repeat(a[:1], r, 0), a, np.repeat(a[-1:], r, 0)], 0).astype(np.float64)
    out = np.zeros(a.shape, np.float64)
    for i, wi in enumerate(w):
        out += wi * pad[i : i + len(a)]
    return out.astype(a.dtype)


def smooth_landmarks(lms: np.ndarray, face: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """Centred Gaussian smoothing over time within runs of face frames (edges: nearest)."""
    out = lms.copy()
    t, n = 0, len(face)
    while t < n:
        if not face[t]:
            t += 1
            continue
        e = t
        while e < n and face[e]:
            e += 1
        if e - t > 1 and sigma > 0:
            out[t:e] = gaussian_smooth(lms[t:e], sigma)
        t = e
    return out


def compute_features(chunk: Chunk, track: TrackParams, signal: SignalParams) -> ChunkFeatures:
    tracker = FaceTracker(track)
    n = len(chunk.frames)
    lms = np.full((n, 68, 2), np.nan, np.float32)
    face = np.zeros(n, bool)
    det = np.zeros(n, bool)
    t0 = time.perf_counter()
    for i, img in enumerate(chunk.frames):
        lm = tracker.update(img)
        det[i] = tracker.detected
        if lm is not None:
            lms[i], face[i] = lm, True
    t1 = time.perf_counter()
    sm = smooth_landmarks(lms, face)
    rf = RegionFlow(signal)
    flows = np.full((n, N_BOXES, 2), np.nan, np.float32)
    for i, img in enumerate(chunk.frames):
        r = rf.step(img, sm[i] if face[i] else None)
        if r is not None:
            flows[i] = r
    t2 = time.perf_counter()
    own = slice(chunk.before, chunk.before + chunk.stop - chunk.start)
    return ChunkFeatures(face[own], sm[own], flows[own], det[own], {"track": t1 - t0, "flow": t2 - t1})


def cached_features(
    chunk: Chunk, cache_dir: Path | None, track: TrackParams, signal: SignalParams
) -> tuple[ChunkFeatures, bool]:
    """(features, loaded from cache)."""
    path = None
    if cache_dir is not None:
        key = features_key(chunk, track, signal)
        path = Path(cache_dir) / f"chunk{chunk.index:05d}-{key[:24]}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    return ChunkFeatures(
                        z["face"], z["landmarks"], z["region_flow"], z["detected"], {"track": 0.0, "flow": 0.0}
                    ), True
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                pass  # unreadable: recompute, overwrite
    feats = compute_features(chunk, track, signal)
    if path is not None:
        save_npz_atomic(
            path,
            {
                "face": feats.face,
                "landmarks": feats.landmarks,
                "region_flow": feats.region_flow,
                "detected": feats.detected,
            },
        )
    return feats, False
