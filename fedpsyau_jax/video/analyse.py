"""``analyse_video``: a long recording → timeline of spotted, recognised expressions.

    from fedpsyau_jax import analyse_video
    timeline = analyse_video("session.mp4", "out/", checkpoint="runs/demo")

Flow (one file per step): ``frame_stream`` (chunks of decoded frames, bounded memory)
→ ``chunk_analysis`` (face track + region flows per chunk, cached by frame content)
→ ``intervals`` (spotting signal → onset/apex/offset, micro/macro) → ``recognise``
(model input of each interval, built as in training → model) → ``timeline_outputs`` (json, csv, png,
html). Frames without a face become gaps; problems of the input (no face, lost face,
variable frame rate, rotation metadata, truncation, very large frames) are listed in
``timeline["problems"]`` as one line each and logged as warnings, and every output is
still written.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from fedpsyau_jax.core.errors import InputDataError, check_output_dir
from fedpsyau_jax.video import chunk_analysis, frame_stream, intervals as iv_mod, timeline_outputs
from fedpsyau_jax.video.face_track import TrackParams
from fedpsyau_jax.video.spotting_signal import SignalParams

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AnalyseParams:
    track: TrackParams = TrackParams()
    signal: SignalParams = SignalParams()
    spot: iv_mod.SpotParams = iv_mod.SpotParams()
    chunk_frames: int = 300
    max_chunk_bytes: int = 256 << 20


def spotting_pass(
    info: frame_stream.VideoInfo, params: AnalyseParams, cache_dir: Path | None, show_progress: bool = True
) -> dict:
    """Face track + region flows of the whole stream → per-frame arrays and timings."""
    from fedpsyau_jax.training.run_logging import progress

    length = frame_stream.chunk_length(info, params.chunk_frames, params.max_chunk_bytes)
    numbers, times, face, flows, detected = [], [], [], [], []
    secs = {"decode": 0.0, "track": 0.0, "flow": 0.0}
    cached = 0
    # None: unknown frame count (tqdm then counts without a total)
    bar = progress(info.frame_count or None, "spotting", enabled=show_progress)
    t_dec = time.perf_counter()
    try:
        for chunk in frame_stream.iter_chunks(info, length, chunk_analysis.CONTEXT):
            secs["decode"] += time.perf_counter() - t_dec
            feats, hit = chunk_analysis.cached_features(chunk, cache_dir, params.track, params.signal)
            cached += hit
            own = slice(chunk.before, chunk.before + chunk.stop - chunk.start)
            numbers += chunk.numbers[own]
            times += chunk.times[own]
            face.append(feats.face)
            flows.append(feats.region_flow)
            detected.append(feats.detected)
            secs["track"] += feats.seconds["track"]
            secs["flow"] += feats.seconds["flow"]
            bar.update(chunk.stop - chunk.start)
            t_dec = time.perf_counter()
    finally:
        bar.close()
    return {
        "numbers": np.asarray(numbers),
        "times": np.asarray(times, np.float64),
        "face": np.concatenate(face) if face else np.zeros(0, bool),
        "region_flow": np.concatenate(flows) if flows else np.zeros((0, chunk_analysis.N_BOXES, 2), np.float32),
        "detected": np.concatenate(detected) if detected else np.zeros(0, bool),
        "seconds": secs,
        "chunks_cached": cached,
        "chunk_frames": length,
    }


def face_gaps(face: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) positions of runs without a face."""
    out, start = [], None
    for i, f in enumerate(face):
        if not f and start is None:
            start = i
        elif f and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(face) - 1))
    return out


def input_problems(
    info: frame_stream.VideoInfo, face: np.ndarray, times: np.ndarray, gaps: list[tuple[int, int]], numbers: np.ndarray
) -> list[str]:
    name = info.path
    out = []
    if len(face) and not face.any():
        out.append(f"{name}: no face found in any of the {len(face)} frames (dlib frontal detector)")
    elif gaps:
        n = sum(b - a + 1 for a, b in gaps)
        a, b = gaps[0]
        out.append(
            f"{name}: no face in {n} of {len(face)} frames, {len(gaps)} stretch(es) "
            f"(first: frames {numbers[a]}–{numbers[b]}); they are reported as gaps"
        )
    if info.rotation:
        out.append(
            f"{name}: the container asks for a {info.rotation}° rotation; frames were "
            "analysed upright (rotated by the decoder)"
        )
    if info.width * info.height > frame_stream.LARGE_PIXELS:
        out.append(
            f"{name}: very large frames ({info.width}x{info.height}); analysed in chunks of "
            f"{frame_stream.chunk_length(info, 300, 256 << 20)} frames to bound memory"
        )
    if len(times) > 2 and not info.is_folder:
        d = np.diff(times)
        nominal = 1.0 / info.fps
        off = np.abs(d - nominal) > 0.5 * nominal
        if off.mean() > 0.01:
            out.append(
                f"{name}: variable frame rate (frame intervals {1000 * d.min():.1f}–{1000 * d.max():.1f} ms, "
                f"nominal {1000 * nominal:.1f} ms); timestamps come from the container, windows "
                f"are sized from {info.fps:.2f} fps"
            )
    return out


def analyse_video(
    video,
    out_dir,
    checkpoint=None,
    *,
    fps: float | None = None,
    params: AnalyseParams | None = None,
    cache_dir=None,
    show_progress: bool = True,
    write_outputs: bool = True,
) -> dict:
    """Spot micro- and macro-expressions in ``video`` (a video file or a folder of
    numbered frames) and, with ``checkpoint`` (an exported model or a run directory),
    recognise each; writes timeline.json/.csv, frames.csv, timeline.png and
    report.html to ``out_dir`` and returns the timeline dict.

    ``cache_dir`` (default ``out_dir/cache``) holds one file per finished chunk, keyed
    by its frames' content and the parameters: a re-run or a resumed run reuses them.
    A video shorter than one spotting window raises ``InputDataError`` (after writing
    frames.csv). ``fps`` overrides the container's frame rate (needed for folders).
    """
    p = params or AnalyseParams()
    out = Path(out_dir)
    check_output_dir(out, what="--out")
    info = frame_stream.probe(video, fps)
    recogniser = None
    if checkpoint is not None:
        from fedpsyau_jax.video.recognise import Recogniser

        recogniser = Recogniser(checkpoint)  # a bad checkpoint fails before any work
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    t0 = time.perf_counter()
    sp = spotting_pass(info, p, cache, show_progress)
    t_spot = time.perf_counter() - t0
    numbers, times, face = sp["numbers"], sp["times"], sp["face"]
    n = len(face)
    gaps = face_gaps(face)
    problems = input_problems(info, face, times, gaps, numbers)
    for line in problems:
        log.warning("%s", line)

    k = iv_mod.scale_frames(info.fps, iv_mod.MICRO_K_S)
    if n < 2 * k + 1:
        zeros = np.zeros(n)
        timeline_outputs.write_frames_csv(out, numbers, times, face, zeros, zeros, -np.ones(n, int))
        raise InputDataError(
            f"{info.path}: {n} frame(s), shorter than one spotting window "
            f"({2 * k + 1} frames = {(2 * k + 1) / info.fps:.2f} s at {info.fps:.2f} fps)"
        )

    intervals, details = iv_mod.spot_intervals(sp["region_flow"], face, info.fps, p.spot)
    timing = {
        **{k_: round(v_, 3) for k_, v_ in sp["seconds"].items()},
        "spotting_pass": round(t_spot, 3),
        "chunks_cached": sp["chunks_cached"],
    }

    def build(rec: list[dict], t_rec: float | None) -> tuple[dict, dict, np.ndarray]:
        timeline, thumbs, interval_of = _timeline(
            info, checkpoint, numbers, times, gaps, problems, intervals, rec, details, p
        )
        timeline["timing_s"] = {**timing, "recognition": None if t_rec is None else round(t_rec, 3)}
        return timeline, thumbs, interval_of

    def write(timeline: dict, thumbs: dict, interval_of: np.ndarray) -> None:
        if not write_outputs:
            return
        timeline_outputs.write_timeline_json(out, timeline)
        timeline_outputs.write_timeline_csv(out, timeline)
        timeline_outputs.write_frames_csv(
            out, numbers, times, face, details["score_micro"], details["score_macro"], interval_of
        )
        png = timeline_outputs.plot_timeline(
            timeline, times, details["score_micro"], details["score_macro"], out / "timeline.png"
        )
        timeline_outputs.write_report_html(out, timeline, png, thumbs)

    if recogniser is None or not intervals:
        result = build([{} for _ in intervals], 0.0 if recogniser is not None else None)
        write(*result)
        return result[0]
    # The spotting result is written first, so that it survives a failure or an
    # interruption of recognition; the recognised timeline then replaces it.
    write(*build([{} for _ in intervals], None))
    from fedpsyau_jax.training.run_logging import progress
    from fedpsyau_jax.video.recognise import recognise

    t1 = time.perf_counter()
    bar = progress(len(intervals), "recognising", enabled=show_progress)
    try:
        rec = recognise(info, intervals, recogniser, progress=bar)
    finally:
        bar.close()
    result = build(rec, time.perf_counter() - t1)
    write(*result)
    return result[0]


def _timeline(
    info, checkpoint, numbers, times, gaps, problems, intervals, rec, details, p: AnalyseParams
) -> tuple[dict, dict, np.ndarray]:
    """(timeline dict, {interval index: apex crop}, per-frame interval index or -1)."""
    n = len(numbers)

    def ts(pos: int) -> float:
        return round(float(times[pos]), 4)

    items, thumbs = [], {}
    interval_of = -np.ones(n, int)
    for i, (v, r) in enumerate(zip(intervals, rec)):
        probs = r.get("emotion_prob")
        item = {
            "onset": int(numbers[v.onset]),
            "apex": int(numbers[v.apex]),
            "offset": int(numbers[v.offset]),
            "onset_s": ts(v.onset),
            "apex_s": ts(v.apex),
            "offset_s": ts(v.offset),
            "kind": v.kind,
            "emotion": r.get("emotion"),
            "emotion_prob": None if probs is None else probs[r["emotion"]],
            "emotion_prob_all": probs,
            "au_prob": r.get("au_prob"),
            "score": round(v.score, 4),
            "scale": v.scale,
        }
        if "recognition_error" in r:
            item["recognition_error"] = r["recognition_error"]
        if "input_check" in r:
            item["input_check"] = r["input_check"]
        if "apex_crop" in r:
            thumbs[i] = r["apex_crop"]
        items.append(item)
        interval_of[v.onset : v.offset + 1] = i
    timeline = {
        "video": str(info.path),
        "fps": info.fps,
        "frames": n,
        "width": info.width,
        "height": info.height,
        "rotation": info.rotation,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "intervals": items,
        "gaps": [
            {
                "start": int(numbers[a]),
                "end": int(numbers[b]),
                "start_s": ts(a),
                "end_s": ts(b),
                "reason": "no face found",
            }
            for a, b in gaps
        ],
        "suppressed": [
            {
                "onset": int(numbers[a]),
                "apex": int(numbers[b]),
                "offset": int(numbers[c]),
                "reason": "mouth-dominated, amid rhythmic mouth motion (talking)",
            }
            for a, b, c in details.get("suppressed_talking", [])
        ],
        "thresholds": {"micro": details["threshold_micro"], "macro": details["threshold_macro"]},
        "problems": problems,
        "params": {
            "track": p.track.as_dict(),
            "signal": p.signal.as_dict(),
            "spot": p.spot.as_dict(),
            "micro_k_s": iv_mod.MICRO_K_S,
            "macro_k_s": iv_mod.MACRO_K_S,
        },
    }
    return timeline, thumbs, interval_of


def spot_only(video, fps: float | None = None, params: AnalyseParams | None = None) -> list[iv_mod.Interval]:
    """Intervals of a video from the spotting pass alone (no cache, no outputs, no
    progress bar); ``predict`` uses it to tell a multi-expression clip."""
    p = params or AnalyseParams()
    info = frame_stream.probe(video, fps)
    sp = spotting_pass(info, p, None, show_progress=False)
    if len(sp["face"]) < 2 * iv_mod.scale_frames(info.fps, iv_mod.MICRO_K_S) + 1:
        return []
    return iv_mod.spot_intervals(sp["region_flow"], sp["face"], info.fps, p.spot)[0]
