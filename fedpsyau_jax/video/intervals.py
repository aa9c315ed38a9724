"""Intervals (onset, apex, offset, kind) from the spotting signal.

Two time scales, both sized from the frame rate:

* micro: k = ``MICRO_K_S`` x fps (0.2 s; a micro-expression lasts at most 0.5 s, so
  its onset→apex→offset fits in [t-k, t+k] around the apex and the second difference
  peaks there);
* macro: k = ``MACRO_K_S`` x fps (1 s; macro-expressions last 0.5–4 s).

On each scale a frame is a candidate apex when its score is the largest within
``NMS_FACTOR`` x k frames either side (the second difference has side lobes at
apex ± k) and above the threshold

    T = median(noise) + c * 1.4826 * MAD(noise),   and at least ``MIN_SCORE`` px

a robust z-score against the video's own noise floor, where *noise* is the score on
frames where nothing moves:

* the quiet frames at that scale, when there are at least ``MIN_QUIET_S`` seconds of
  them: every frame of [t - k, t + k] is still, its per-frame motion
  (``frame_motion``) at most ``STILL_FACTOR`` times the lower quartile of the face
  frames' motion (``still_frames``);
* otherwise (a short clip, or one that is mostly expression: at the macro scale a
  quiet window is 2 s long) the micro scale's quiet-frame scores: a resting face
  jitters around its rest position rather than drifting, so the second difference of
  that jitter does not grow with k (``noise_scores``); failing that, every face frame.

Per-frame motion is sparse even when much of a clip is expression (a held smile
barely moves), while the score is not (a second difference at scale k spreads every
event over 2k frames): the old statistics over every face frame (``noise_floor="all"``)
rose with the share of expression (3x at the macro scale on the real smile clip with
1 s of still face on each side against 3 s). ``c`` is ``THRESHOLD_C`` (micro) / ``THRESHOLD_C_MACRO``, chosen for the best mean F1
on the two tuning sets, the synthetic seed 1 (``benchmarks/spotting_synthetic.py``)
and the design half of the real-footage set (``experiments/real_spotting/
real_spotting.py --tune``), never on the synthetic report seed or the real held-out half.

A micro-scale candidate whose face has not come back at apex ± k (``return_ratio``
above ``MAX_RETURN``) is dropped: it is the onset or offset step of a longer, held
expression, which the macro scale spots whole.

Onset and offset of a candidate come from the displacement X of the regions that
peak at its apex: m(s) = mean |X(s) - X(apex)|; walking outward from the apex, the
onset (offset) is the first frame where m reaches ``EDGE_FRACTION`` of its largest
value within the search window (0.5 s micro, 2 s macro) on that side, i.e. where the
face is back at (most of) its rest position.

Then: intervals shorter than ``MIN_S`` or longer than ``MAX_S`` are dropped, so is
a mouth-dominated candidate amid talking (``talking_frames``: the jaw opening and
closing again and again; a smile or any single expression moves it out and back once),
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
THRESHOLD_C_MACRO = 8.0
MIN_SCORE = 0.15  # px in the 96-px spotting crop
EDGE_FRACTION = 0.8
MICRO_MAX_S = 0.5
MIN_S = 0.1
MAX_S = 4.0
# Talking: speech opens and closes the jaw 3-5 times a second; an expression moves the
# mouth out and back once. A candidate whose strongest region is a mouth/chin region is
# dropped when the jaw (the vertical displacement of the lower lip and chin boxes) swings
# at least TALK_MIN_SWINGS times, each swing a reversal of at least TALK_SWING_PX, within
# ±TALK_WINDOW_S of its apex. Fixed from one synthetic tuning video (seed 1) and the real
# smile clip: talking gave 12-14 swings of 0.5-1.5 px in 1.5 s, expressions at most 3
# spread over several seconds, and noise in still frames none at 0.5 px.
TALK_WINDOW_S = 1.0
TALK_MIN_SWINGS = 4
TALK_SWING_PX = 0.5
JAW_REGIONS = ("lip_lower", "chin")
# A micro-scale peak whose face has not come back at apex ± k (return_ratio above this)
# is the onset or offset of a longer, held expression, not a micro-expression: the
# macro scale spots that expression whole. 0.5: halfway between a pure out-and-back
# movement (0) and a pure step (1), fixed a priori.
MAX_RETURN = 0.5
# Still frames: per-frame motion at most STILL_FACTOR x its lower quartile; quiet at
# scale k: still within ±k; at least MIN_QUIET_S s of quiet frames. Fixed a priori.
STILL_FACTOR = 3.0
MIN_QUIET_S = 1.0
MOUTH_REGIONS = ("mouth_l", "mouth_r", "lip_upper", "lip_lower", "chin")


@dataclasses.dataclass(frozen=True)
class SpotParams:
    threshold_c: float = THRESHOLD_C
    threshold_c_macro: float = THRESHOLD_C_MACRO
    min_score: float = MIN_SCORE
    edge_fraction: float = EDGE_FRACTION
    suppress_talking: bool = True
    noise_floor: str = "quiet"  # quiet: thresholds from the quiet frames' scores | all: from every face frame's
    max_return: float | None = MAX_RETURN  # micro candidates that do not come back are steps; None keeps them

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
    """median + c · 1.4826 · MAD of ``score`` over the frames of ``face`` (T,) bool (all
    frames when none), and at least ``floor``."""
    s = score[face] if face.any() else score
    if len(s) == 0:
        return float("inf")
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med)))
    return max(med + c * 1.4826 * mad, floor)


def frame_motion(flows: np.ndarray) -> np.ndarray:
    """(T,) the mean of the ``TOP_REGIONS`` largest region flow magnitudes of each frame
    (head-compensated per-frame flows (T, R, 2)): how much the face moves at t."""
    mag = np.linalg.norm(flows, axis=-1)
    return np.sort(mag, axis=1)[:, -TOP_REGIONS:].mean(1)


def still_frames(motion: np.ndarray, face: np.ndarray) -> np.ndarray:
    """(T,) bool: face frames moving at most ``STILL_FACTOR`` times the lower quartile
    of the face frames' motion. The lower quartile is the noise of the camera and of a
    resting face as long as a quarter of the frames rest, however much of the rest of
    the clip is expression; a median would be the jitter of a held expression."""
    if not face.any():
        return face.copy()
    return face & (motion <= STILL_FACTOR * float(np.quantile(motion[face], 0.25)))


def quiet_frames(motion: np.ndarray, face: np.ndarray, k: int) -> np.ndarray:
    """(T,) bool: frames whose whole window [t - k, t + k] is still (``still_frames``)."""
    # outside the video counts as still: the score there shrinks its offset to the frames
    # available (``second_difference``), so the ends are not penalised
    still = np.pad(still_frames(motion, face).astype(float), k, constant_values=1.0)
    counts = np.convolve(still, np.ones(2 * k + 1), mode="valid")
    return face & (counts >= 2 * k + 1 - 1e-9)


def noise_scores(score, motion, face, k: int, fps: float, shorter=None) -> tuple[np.ndarray, str]:
    """The scores a threshold at scale k is set from, and where they come from: the
    scores of the quiet frames when there are at least ``MIN_QUIET_S`` seconds of them;
    else ``shorter`` (the noise scores of the shorter scale, when it had quiet frames:
    a resting face jitters around its rest position, so the second difference of that
    jitter does not grow with k); else every face frame's."""
    quiet = quiet_frames(motion, face, k)
    if quiet.sum() >= MIN_QUIET_S * fps:
        return score[quiet], "quiet frames"
    if shorter is not None and shorter[1] == "quiet frames":
        return shorter[0], "quiet frames of the shorter scale"
    return score[face], "all face frames"


def return_ratio(x: np.ndarray, t: int, regions: np.ndarray, k: int) -> float:
    """How far the face has *not* come back over [t - k, t + k] at ``regions``:
    mean |X(t+k) - X(t-k)| / mean |2 X(t) - X(t-k) - X(t+k)| (offsets shrunk to the
    frames of the face segment, as in ``second_difference``). About 0 for a movement
    that goes out and returns within the window (a micro-expression), about 1 for a
    step (the start or end of a longer expression, held in between)."""
    valid = ~np.isnan(x[:, 0, 0])
    kk = k
    while kk > 0 and not (t - kk >= 0 and t + kk < len(x) and valid[t - kk : t + kk + 1].all()):
        kk -= 1
    if kk == 0:
        return 0.0
    a, b, c = x[t - kk, regions], x[t, regions], x[t + kk, regions]
    peak = np.linalg.norm(2 * b - a - c, axis=-1).mean()
    return float(np.linalg.norm(c - a, axis=-1).mean() / max(peak, 1e-9))


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
    motion = frame_motion(f)
    cands: list[Interval] = []
    details: dict = {}
    noise_scale = None  # the micro scale's noise scores, for a macro scale without quiet frames
    for scale, k_s, c, window_s in (
        ("micro", MICRO_K_S, p.threshold_c, 0.5),
        ("macro", MACRO_K_S, p.threshold_c_macro, 2.0),
    ):
        k = scale_frames(fps, k_s)
        per = second_difference(x, k)
        order = np.argsort(per, axis=1)[:, -TOP_REGIONS:]
        score = np.take_along_axis(per, order, 1).mean(1) * face
        noise, source = score[face], "all face frames"
        if p.noise_floor == "quiet":
            noise, source = noise_scores(score, motion, face, k, fps, noise_scale)
            noise_scale = noise_scale or (noise, source)
        thr = robust_threshold(noise, np.ones(len(noise), bool), c, p.min_score)
        details[f"noise_{scale}"] = source
        details[f"score_{scale}"] = score
        details[f"threshold_{scale}"] = thr
        details[f"_order_{scale}"] = order
        for t in peaks(score, thr, int(round(NMS_FACTOR * k))):
            if scale == "micro" and p.max_return is not None and return_ratio(x, t, order[t], k) > p.max_return:
                details.setdefault("dropped_steps", []).append(t)
                continue
            on, off = edges(x, t, order[t], scale_frames(fps, window_s), p.edge_fraction)
            cands.append(Interval(on, t, off, "", float(score[t] / thr), scale))
    kept = [iv for iv in cands if MIN_S * fps <= iv.length() <= MAX_S * fps + 1]
    details["suppressed_talking"] = []
    if p.suppress_talking:
        talk = talking_frames(x, fps)
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


def jaw_swings(y: np.ndarray, amplitude: float) -> list[int]:
    """Frames where a swing of the signal ``y`` (T,) completes: ``y`` has moved at least
    ``amplitude`` back from its last extreme (a zigzag with hysteresis; NaN restarts it)."""
    out: list[int] = []
    ext, direction = None, 0  # the running extreme; +1 rising, -1 falling, 0 not yet known
    for t, v in enumerate(np.asarray(y, float)):
        if np.isnan(v):
            ext, direction = None, 0
        elif ext is None:
            ext = v
        elif direction >= 0 and ext - v >= amplitude or direction <= 0 and v - ext >= amplitude:
            direction = 1 if v > ext else -1  # a reversal (or the first move) completes
            out.append(t)
            ext = v
        elif direction == 1 and v > ext or direction == -1 and v < ext:
            ext = v  # the swing goes on
    return out


def talking_frames(x: np.ndarray, fps: float) -> np.ndarray:
    """(T,) bool: frames with at least ``TALK_MIN_SWINGS`` jaw swings of at least
    ``TALK_SWING_PX`` within ± ``TALK_WINDOW_S``, from the displacement X (T, R, 2)."""
    jaw = [list(REGIONS).index(n) for n in JAW_REGIONS]
    y = x[:, jaw, 1].mean(axis=1)
    marks = np.zeros(len(x))
    marks[jaw_swings(y, TALK_SWING_PX)] = 1.0
    w = int(round(TALK_WINDOW_S * fps))
    counts = np.convolve(marks, np.ones(2 * w + 1), mode="same")
    return counts >= TALK_MIN_SWINGS


def merge_overlaps(intervals: list[Interval]) -> list[Interval]:
    """Greedy: the highest-scoring interval wins every interval that overlaps it."""
    out: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: -i.score):
        if all(iv.offset < o.onset or iv.onset > o.offset for o in out):
            out.append(iv)
    return sorted(out, key=lambda i: i.onset)
