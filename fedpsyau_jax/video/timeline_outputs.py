"""Writing an analysis: timeline.json, timeline.csv, frames.csv, timeline.png, report.html.

All files are written atomically (a killed run never leaves half a file). The HTML
report is self-contained: the plot and the apex thumbnails are embedded as base64 PNG.

timeline.csv starts with the columns of a MEGC spotting submission (``vid``,
``pred_onset``, ``pred_offset``, ``type`` with "me"/"mae"), then apex, emotion,
probability and score, so that a spotting evaluation script reads it unchanged.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

import numpy as np

from fedpsyau_jax.core.atomic_files import _atomic, write_json_atomic

MEGC_TYPE = {"micro": "me", "macro": "mae"}
EMOTION_COLOURS = [
    "tab:red",
    "tab:green",
    "tab:blue",
    "tab:orange",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
]


def write_timeline_json(out: Path, timeline: dict) -> Path:
    write_json_atomic(out / "timeline.json", timeline)
    return out / "timeline.json"


def write_timeline_csv(out: Path, timeline: dict) -> Path:
    path = out / "timeline.csv"
    vid = Path(timeline["video"]).stem
    with _atomic(path, "w") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(
            [
                "vid",
                "pred_onset",
                "pred_offset",
                "type",
                "apex",
                "kind",
                "onset_s",
                "offset_s",
                "emotion",
                "emotion_prob",
                "score",
            ]
        )
        for iv in timeline["intervals"]:
            w.writerow(
                [
                    vid,
                    iv["onset"],
                    iv["offset"],
                    MEGC_TYPE[iv["kind"]],
                    iv["apex"],
                    iv["kind"],
                    f"{iv['onset_s']:.3f}",
                    f"{iv['offset_s']:.3f}",
                    iv.get("emotion") or "",
                    "" if iv.get("emotion_prob") is None else f"{iv['emotion_prob']:.4f}",
                    f"{iv['score']:.3f}",
                ]
            )
    return path


def write_frames_csv(out: Path, numbers, times, face, score_micro, score_macro, interval_of) -> Path:
    """One row per frame: frame, timestamp, face_found, score_micro, score_macro, interval."""
    path = out / "frames.csv"
    with _atomic(path, "w") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["frame", "timestamp", "face_found", "score_micro", "score_macro", "interval"])
        for i in range(len(numbers)):
            w.writerow(
                [
                    int(numbers[i]),
                    f"{times[i]:.4f}",
                    int(bool(face[i])),
                    f"{score_micro[i]:.5f}",
                    f"{score_macro[i]:.5f}",
                    "" if interval_of[i] < 0 else int(interval_of[i]),
                ]
            )
    return path


def plot_timeline(
    timeline: dict,
    times: np.ndarray,
    score_micro: np.ndarray,
    score_macro: np.ndarray,
    path: Path | None = None,
    title: str | None = None,
    truth: list[dict] | None = None,
) -> bytes:
    """The signal over time, intervals shaded by emotion, gaps hatched grey → PNG bytes
    (and written to ``path`` when given). ``truth``: optional ground-truth intervals
    ({onset_s, offset_s, kind}) drawn as bars under the curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    thr_mi, thr_ma = timeline["thresholds"]["micro"], timeline["thresholds"]["macro"]
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=90)
    ax.plot(times, score_micro / thr_mi, lw=0.8, color="black", label="micro-scale score / threshold")
    ax.plot(times, score_macro / thr_ma, lw=0.8, color="0.55", label="macro-scale score / threshold")
    ax.axhline(1.0, color="tab:red", lw=0.6, ls="--")
    emotions = sorted({iv.get("emotion") or "not recognised" for iv in timeline["intervals"]})
    colour = {e: EMOTION_COLOURS[i % len(EMOTION_COLOURS)] for i, e in enumerate(emotions)}
    for iv in timeline["intervals"]:
        e = iv.get("emotion") or "not recognised"
        ax.axvspan(iv["onset_s"], iv["offset_s"], color=colour[e], alpha=0.35 if iv["kind"] == "micro" else 0.18)
    for g in timeline["gaps"]:
        ax.axvspan(g["start_s"], g["end_s"], color="0.8", hatch="//", alpha=0.6)
    for g in truth or ():
        ax.hlines(-0.08, g["onset_s"], g["offset_s"], color="black" if g["kind"] == "micro" else "0.4", lw=4)
    handles = [Patch(color=colour[e], alpha=0.4, label=e) for e in emotions]
    if truth:
        handles.append(Patch(color="black", label="ground truth (bars below 0)"))
    if timeline["gaps"]:
        handles.append(Patch(color="0.8", hatch="//", label="no face"))
    ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize=7, loc="upper right", ncol=2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score / threshold")
    # both curves whole: a macro expression far above its threshold is the clearest event
    top = float(np.nanmax([np.nanmax(score_micro / thr_mi), np.nanmax(score_macro / thr_ma)])) if len(times) else 2.0
    ax.set_ylim(-0.15 if truth else 0, max(2.0, top * 1.05))
    ax.set_title(title or Path(timeline["video"]).name, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        with _atomic(Path(path), "wb") as fh:
            fh.write(data)
    return data


def _png_b64(img: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", img)
    return base64.b64encode(buf.tobytes()).decode() if ok else ""


def input_check_line(intervals: list[dict]) -> str | None:
    """One line on how the recognised intervals' inputs compare with the model's
    training inputs (None when nothing was recognised)."""
    checks = [iv["input_check"] for iv in intervals if iv.get("input_check")]
    if not checks:
        return None
    if all(c["status"] == "no input summary stored" for c in checks):
        return f"input check: {checks[0]['message']}"
    out = [c for c in checks if c["status"] == "outside"]
    if not out:
        return f"input check: all {len(checks)} recognised interval(s) within the model's training inputs"
    return (
        f"input check: {len(out)} of {len(checks)} recognised interval(s) OUTSIDE the model's training "
        f"inputs (their probabilities are not reliable; input_check in timeline.json says how far and why)"
    )


def _input_check_html(timeline: dict) -> str:
    line = input_check_line(timeline["intervals"])
    return f"<h2>Input check</h2><p>{html.escape(line.removeprefix('input check: '))}</p>" if line else ""


def write_report_html(out: Path, timeline: dict, plot_png: bytes, thumbs: dict[int, np.ndarray]) -> Path:
    """Self-contained report: the plot, then one row per interval with its apex
    thumbnail and probabilities."""
    e = html.escape
    rows = []
    for i, iv in enumerate(timeline["intervals"]):
        thumb = thumbs.get(i)
        img = f'<img src="data:image/png;base64,{_png_b64(thumb)}" width="96">' if thumb is not None else ""
        probs = ""
        if iv.get("emotion_prob_all"):
            probs = "<br>".join(
                f"{e(c)} {p:.3f}" for c, p in sorted(iv["emotion_prob_all"].items(), key=lambda x: -x[1])
            )
        aus = ""
        if iv.get("au_prob"):
            aus = " ".join(f"{e(a)}&nbsp;{p:.2f}" for a, p in iv["au_prob"].items())
        err = e(iv.get("recognition_error", ""))
        check = iv.get("input_check") or {}
        if check.get("status") == "outside":  # a number the model was not trained for: say so where it is read
            err += (
                f"<br><span style='color:#b00'>input outside the training inputs: {e(check.get('message', ''))}</span>"
            )
        rows.append(
            f"<tr><td>{i}</td><td>{iv['onset']}–{iv['apex']}–{iv['offset']}<br>"
            f"{iv['onset_s']:.2f}–{iv['offset_s']:.2f} s</td><td>{e(iv['kind'])}</td>"
            f"<td>{iv['score']:.2f}</td><td>{img}</td><td class='emotion'><b>{e(iv.get('emotion') or '')}</b><br>{probs}{err}</td>"
            f"<td style='font-size:80%'>{aus}</td></tr>"
        )
    gaps = (
        "".join(f"<li>frames {g['start']}–{g['end']}: {e(g['reason'])}</li>" for g in timeline["gaps"])
        or "<li>none</li>"
    )
    problems = "".join(f"<li>{e(p)}</li>" for p in timeline.get("problems", [])) or "<li>none</li>"
    doc = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{e(Path(timeline["video"]).name)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}td.emotion{{min-width:11em}}</style></head><body>
<h1>{e(Path(timeline["video"]).name)}</h1>
<p>{timeline["frames"]} frames at {timeline["fps"]:.2f} fps; {len(timeline["intervals"])} interval(s);
model: {e(str(timeline.get("checkpoint") or "none (spotting only)"))}</p>
<img src="data:image/png;base64,{base64.b64encode(plot_png).decode()}" style="max-width:100%">
<h2>Intervals</h2><table><tr><th>#</th><th>onset–apex–offset (frames, s)</th><th>kind</th><th>score</th><th>apex face</th><th>emotion</th><th>AU probabilities</th></tr>
{"".join(rows)}</table>
<h2>Gaps (frames without a face)</h2><ul>{gaps}</ul>
<h2>Problems</h2><ul>{problems}</ul>
{_input_check_html(timeline)}
<p style="font-size:80%">Spotting: training-free optical-flow spotter (docs/video.md). Emotions come from the
model given with --checkpoint; a model trained on synthetic data gives meaningless emotions on real faces.</p>
</body></html>
"""
    path = out / "report.html"
    with _atomic(path, "w") as fh:
        fh.write(doc)
    return path
