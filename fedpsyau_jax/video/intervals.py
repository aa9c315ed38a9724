"""Intervals (onset, apex, offset, kind) from the spotting signal.

Two time scales, both sized from the frame rate:

* micro: k = ``MICRO_K_S`` x fps (0.2 s; a micro-expression lasts at most 0.5 s, so
  its onset→apex→offset fits in [t-k, t+k] around the apex and the second difference
  peaks there);
* macro: k = ``MACRO_K_S`` x fps (1 s; macro-expressions last 0.5–4 s).

On each scale a frame is a candidate apex when its score is the largest within
``NMS_FACTOR`` x k frames either side (the second difference has side lobes at
apex ± k) and above the threshold

    T = median(score) + c * 1.4826 * MAD(score),   and at least ``MIN_SCORE`` px

computed per video over its face frames (a robust z-score: the median and MAD are
those of the motion-free background, whatever the number of events). ``c`` is
``THRESHOLD_C`` (micro) / ``THRESHOLD_C_MACRO``, chosen on the synthetic tuning set
(seed 1, ``benchmarks/spotting_synthetic.py --tune``), never on the benchmark seed
or on any evaluation set.

Onset and offset of a candidate come from the displacement X of the regions that
peak at its apex: m(s) = mean |X(s) - X(apex)|; walking outward from the apex, the
onset (offset) is the first frame where m reaches ``EDGE_FRACTION`` of its largest
value within the search window (0.5 s micro, 2 s macro) on that side, i.e. where the
face is back at (most of) its rest position.

Then: intervals shorter than ``MIN_S`` or longer than ``MAX_S`` are dropped, so is
a mouth-dominated candidate amid rhythmic mouth motion (talking, ``talking_frames``),
overlapping intervals are merged into the one with the higher score relative to its
threshold, and each interval's kind is "micro" when it lasts at most 0.5 s
(offset - onset + 1 frames) and "macro" otherwise.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fedpsyau_jax.video.spotting_signal import (
    REGIONS,
    TOP_REGIONS,
    blink_mask,
    displacement,
    head_compensated,
    second_difference,
)

MICRO_K_S = 0.2
MACRO_K_S = 1.0
NMS_FACTOR = 1.5
THRESHOLD_C = 5.0
THRESHOLD_C_MACRO = 6.0
MIN_SCORE = 0.15  # px in the 96-px spotting crop
EDGE_FRACTION = 0.8
MICRO_MAX_S = 0.5
MIN_S = 0.1
MAX_S = 4.0
# Talking (fixed a priori, checked on the synthetic tuning seed): a candidate whose
# strongest region is a mouth/chin region is dropped when at least TALK_MIN_PEAKS
# mouth-dominated local maxima of the micro-scale score (above TALK_PEAK_FRACTION of
# its threshold, maxima within ±0.1 s) fall within ±TALK_WINDOW_S of it: speech moves
# the mouth rhythmically (3–5 syllables/s), an expression moves it once.
TALK_WINDOW_S = 1.0
TALK_MIN_PEAKS = 5
TALK_PEAK_FRACTION = 0.5
MOUTH_REGIONS = ("mouth_l", "mouth_r", "lip_upper", "lip_lower", "chin")


@dataclasses.dataclass(frozen=True)
class SpotParams:
    threshold_c: float = THRESHOLD_C
    threshold_c_macro: float = THRESHOLD_C_MACRO
    min_score: float = MIN_SCORE
    edge_fraction: float = EDGE_FRACTION
    suppress_talking: bool = True

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Interval:
    """One spotted expression; frames are 0-based positions in the stream, inclusive."""

    onset: int
    apex: int
    offset: int
    kind: str
    score: float  # peak score / threshold (> 1)
    scale: str  # "micro" or "macro": the time scale that spotted it

    def length(self) -> int:
        return self.offset - self.onset + 1


def scale_frames(fps: float, seconds: float) -> int:
    return max(1, int(round(seconds * fps)))


def robust_threshold(score: np.ndarray, face: np.ndarray, c: float, floor: float) -> float:
    s = score[face] if face.any() else score
    if len(s) == 0:
        return float("inf")
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med)))
    return max(med + c * 1.4826 * mad, floor)


def peaks(score: np.ndarray, threshold: float, radius: int) -> list[int]:
    """Frames above ``threshold`` that are the (first) maximum within ± ``radius``."""
    out = []
    n = len(score)
    for t in np.nonzero(score > threshold)[0]:
        lo, hi = max(0, int(t) - radius), min(n, int(t) + radius + 1)
        w = score[lo:hi]
        if score[t] >= w.max() and t == lo + int(np.argmax(w)):
            out.append(int(t))
    return out


def edges(x: np.ndarray, apex: int, regions: np.ndarray, window: int, fraction: float) -> tuple[int, int]:
    """(onset, offset) around ``apex`` from the displacement X (T, R, 2) of ``regions``."""
    ref = x[apex, regions]
    n = len(x)

    def side(step: int) -> int:
        idx = []
        s = apex + step
        while 0 <= s < n and abs(s - apex) <= window and not np.isnan(x[s, 0, 0]):
            idx.append(s)
            s += step
        if not idx:
            return apex
        m = np.array([np.linalg.norm(x[i, regions] - ref, axis=-1).mean() for i in idx])
        target = fraction * m.max()
        return idx[int(np.argmax(m >= target))]

    return side(-1), side(+1)


def spot_intervals(
    region_flow: np.ndarray, face: np.ndarray, fps: float, params: SpotParams | None = None
) -> tuple[list[Interval], dict]:
    """Intervals of one video from its box flows (T, R+3, 2) and face mask (T,).

    Returns (intervals sorted by onset, details) where details holds the per-frame
    ``score_micro``/``score_macro`` arrays and the two thresholds (for frames.csv and
    the plot).
    """
    p = params or SpotParams()
    face = np.asarray(face, bool)
    f = np.nan_to_num(head_compensated(region_flow)) * blink_mask(np.nan_to_num(region_flow))[..., None]
    x = displacement(f, face)
    cands: list[Interval] = []
    details: dict = {}
    for scale, k_s, c, window_s in (
        ("micro", MICRO_K_S, p.threshold_c, 0.5),
        ("macro", MACRO_K_S, p.threshold_c_macro, 2.0),
    ):
        k = scale_frames(fps, k_s)
        per = second_difference(x, k)
        order = np.argsort(per, axis=1)[:, -TOP_REGIONS:]
        score = np.take_along_axis(per, order, 1).mean(1) * face
        thr = robust_threshold(score, face, c, p.min_score)
        details[f"score_{scale}"] = score
        details[f"threshold_{scale}"] = thr
        details[f"_order_{scale}"] = order
        for t in peaks(score, thr, int(round(NMS_FACTOR * k))):
            on, off = edges(x, t, order[t], scale_frames(fps, window_s), p.edge_fraction)
            cands.append(Interval(on, t, off, "", float(score[t] / thr), scale))
    kept = [iv for iv in cands if MIN_S * fps <= iv.length() <= MAX_S * fps + 1]
    details["suppressed_talking"] = []
    if p.suppress_talking:
        talk = talking_frames(details["score_micro"], details["_order_micro"], details["threshold_micro"], fps)
        mouth = _mouth_dominated(details)
        dropped = [iv for iv in kept if mouth(iv) and talk[iv.apex]]
        details["suppressed_talking"] = [(iv.onset, iv.apex, iv.offset) for iv in dropped]
        kept = [iv for iv in kept if iv not in dropped]
    merged = merge_overlaps(kept)
    for iv in merged:
        iv.kind = "micro" if iv.length() <= MICRO_MAX_S * fps + 1 else "macro"
    return merged, details


_MOUTH = np.array([n in MOUTH_REGIONS for n in REGIONS])


def _mouth_dominated(details: dict):
    def f(iv: Interval) -> bool:
        return bool(_MOUTH[details[f"_order_{iv.scale}"][iv.apex, -1]])

    return f


def talking_frames(score: np.ndarray, order: np.ndarray, threshold: float, fps: float) -> np.ndarray:
    """(T,) bool: frames with at least ``TALK_MIN_PEAKS`` mouth-dominated local maxima
    of the micro-scale ``score`` (above ``TALK_PEAK_FRACTION`` x threshold) within
    ± ``TALK_WINDOW_S``."""
    r = max(1, int(round(0.1 * fps)))
    pk = [t for t in peaks(score, TALK_PEAK_FRACTION * threshold, r) if _MOUTH[order[t, -1]]]
    marks = np.zeros(len(score))
    marks[pk] = 1.0
    w = int(round(TALK_WINDOW_S * fps))
    counts = np.convolve(marks, np.ones(2 * w + 1), mode="same")
    return counts >= TALK_MIN_PEAKS


def merge_overlaps(intervals: list[Interval]) -> list[Interval]:
    """Greedy: the highest-scoring interval wins every interval that overlaps it."""
    out: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: -i.score):
        if all(iv.offset < o.onset or iv.onset > o.offset for o in out):
            out.append(iv)
    return sorted(out, key=lambda i: i.onset)
