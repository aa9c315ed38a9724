"""Evaluating spotting over a set of videos: ground truth, predictions, the pooled
MEGC scores (``spotting_metric``), and running ``analyse_video`` over a release.

Ground truth formats: ``casme2`` (CAS(ME)^2 workbook), ``samm`` (SAMM Long Videos
workbook), ``synthetic`` (``ground_truth.json`` of ``data_pipelines.spotting_synthetic``).
Predictions: every ``timeline.json`` below a folder (``analyse --out DIR/<video>``).
A prediction belongs to the ground-truth video whose id equals its video's name, or is
its longest prefix followed by a non-digit (CAS(ME)^2 folder ``15_0101disgustingteeth``
→ ``15_0101``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from fedpsyau_jax.errors import InputDataError, InputFileError, unknown_name
from fedpsyau_jax.video.spotting_metric import Span, spotting_scores

FORMATS = ("casme2", "samm", "synthetic")
FORMAT_FPS = {"casme2": 30.0, "samm": 200.0}


def ground_truth(path, fmt: str) -> dict[str, list[Span]]:
    path = Path(path)
    if fmt not in FORMATS:
        raise unknown_name("--format", fmt, FORMATS)
    if fmt == "synthetic":
        if not path.is_file():
            raise InputFileError(f"--annotations {path}: does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {Path(v.get("video", stem)).stem: [Span(int(e["onset"]), int(e["offset"]), e["kind"], e.get("emotion"))
                                                      for e in v["intervals"]] for stem, v in data.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputDataError(f"--annotations {path}: not a synthetic ground_truth.json ({type(e).__name__}: {e})") from None
    if fmt == "casme2":
        from data_pipelines.readers.casme2_long import read_casme2_long as reader
    else:
        from data_pipelines.readers.samm_long import read_samm_long as reader
    out: dict[str, list[Span]] = {}
    for a in reader(path):
        out.setdefault(a.video, []).append(Span(a.onset, a.offset, a.kind, a.emotion or None))
    return out


def read_predictions(folder) -> dict[str, list[Span]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"--predictions {folder}: not a folder")
    out = {}
    for p in sorted(folder.rglob("timeline.json")):
        try:
            t = json.loads(p.read_text(encoding="utf-8"))
            out[Path(t["video"]).stem] = [Span(int(i["onset"]), int(i["offset"]), i["kind"], i.get("emotion"))
                                          for i in t["intervals"]]
        except (ValueError, KeyError, TypeError) as e:
            raise InputDataError(f"{p}: not a timeline.json written by `fedpsyau analyse` ({e})") from None
    return out


def match_ids(pred: dict[str, list[Span]], gt_ids) -> dict[str, list[Span]]:
    """Re-key predictions by ground-truth id (exact name, else longest prefix + non-digit)."""
    ids = sorted(gt_ids, key=len, reverse=True)
    out: dict[str, list[Span]] = {}
    for name, spans in pred.items():
        key = name if name in gt_ids else next(
            (g for g in ids if name.startswith(g) and not name[len(g):len(g) + 1].isdigit()), name)
        out.setdefault(key, []).extend(spans)
    return out


def find_videos(root, ids) -> dict[str, Path]:
    """Video files or frame folders below ``root`` whose name matches a ground-truth id."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"--videos {root}: not a folder")
    found = {}
    for p in sorted(root.rglob("*")):
        name = p.stem if p.is_file() else p.name
        key = match_ids({name: []}, set(ids))
        k = next(iter(key))
        if k in ids and k not in found and (p.is_dir() and any(c.suffix.lower() in (".jpg", ".png", ".bmp") for c in p.iterdir())
                                            or p.is_file() and p.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv")):
            found[k] = p
    return found


def evaluate_spotting(predictions, annotations, fmt: str, videos=None, checkpoint=None,
                      fps: float | None = None, show_progress: bool = True) -> dict:
    """Pooled MEGC scores of the predictions against the annotations. With ``videos``
    (a release folder), every annotated video found there without a timeline.json yet
    is analysed first into ``predictions/<id>/`` (so an interrupted run resumes)."""
    gt = ground_truth(annotations, fmt)
    predictions = Path(predictions)
    ran = []
    if videos is not None:
        from fedpsyau_jax.video.analyse import analyse_video
        for vid, path in find_videos(videos, set(gt)).items():
            out = predictions / re.sub(r"[^A-Za-z0-9._-]+", "_", vid)
            if not (out / "timeline.json").is_file():
                analyse_video(path, out, checkpoint, fps=fps or FORMAT_FPS.get(fmt), show_progress=show_progress)
                ran.append(vid)
    pred = match_ids(read_predictions(predictions), set(gt))
    unknown = sorted(set(pred) - set(gt))
    scores = spotting_scores({k: v for k, v in pred.items() if k in gt}, gt)
    scores.pop("matches")
    return {"scores": scores, "videos_with_ground_truth": len(gt), "videos_predicted": len(set(pred) & set(gt)),
            "predictions_without_ground_truth": unknown, "analysed_now": ran}


def format_scores(res: dict) -> str:
    s = res["scores"]
    lines = [f"{'':8s} {'TP':>5s} {'FP':>5s} {'FN':>5s} {'P':>7s} {'R':>7s} {'F1':>7s}"]
    for k in ("micro", "macro", "overall"):
        r = s[k]
        lines.append(f"{k:8s} {r['tp']:5d} {r['fp']:5d} {r['fn']:5d} {r['precision']:7.4f} {r['recall']:7.4f} {r['f1']:7.4f}")
    if "recognition" in s:
        r = s["recognition"]
        lines.append(f"recognition on {r['n']} TPs: UF1 {r['uf1']:.4f} UAR {r['uar']:.4f}; STRS {r['strs']:.4f}")
    lines.append(f"videos: {res['videos_predicted']} predicted of {res['videos_with_ground_truth']} annotated")
    if res["predictions_without_ground_truth"]:
        lines.append(f"predictions without ground truth (ignored): {res['predictions_without_ground_truth'][:5]}")
    return "\n".join(lines)
