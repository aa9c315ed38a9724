"""Evaluating spotting over a set of videos: ground truth, predictions, the pooled
MEGC scores (``spotting_metric``), and running ``analyse_video`` over a release.

Ground truth formats: ``casme2`` (CAS(ME)^2 workbook), ``samm`` (SAMM Long Videos
workbook), ``casme3`` (CAS(ME)^3 Part C ME list), ``synthetic`` (``ground_truth.json``
of ``data_pipelines.spotting_synthetic``). Predictions: every ``timeline.json`` below
a folder (``analyse --out DIR/<video>``). A prediction belongs to the ground-truth
video whose id equals the name of its output folder or of its video, or is the longest
prefix of one of them followed by a non-digit (CAS(ME)^2 folder
``15_0101disgustingteeth`` → ``15_0101``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fedpsyau_jax.core.errors import InputDataError, InputFileError, unknown_name
from fedpsyau_jax.video.spotting_metric import Span, spotting_scores

FORMATS = ("casme2", "samm", "casme3", "synthetic")
# The label map used to turn a release's emotion words into a model's classes
# (``data_pipelines.label_maps``); synthetic emotions are emotion7 words like SAMM's.
LABEL_MAP_DATASET = {"casme2": "casme2", "samm": "samm", "casme3": "casme3", "synthetic": "samm"}
FORMAT_FPS = {"casme2": 30.0, "samm": 200.0, "casme3": 30.0}


def emotion_class(word: str | None, fmt: str, scheme: str | None) -> str | None:
    """``word`` as a class name of ``scheme`` (megc3 / emotion7), or None when the word
    is missing, dropped by the scheme or unknown to the map (then that interval takes
    no part in the recognition scores). ``scheme`` None keeps the word as written."""
    if not word or scheme is None:
        return word or None
    from data_pipelines.label_maps import UnknownEmotion, class_names, map_emotion

    names = class_names(scheme)
    if word.strip().lower() in names:
        return word.strip().lower()
    try:
        k = map_emotion(LABEL_MAP_DATASET[fmt], word, scheme)
    except UnknownEmotion:
        return None
    return None if k is None else names[k]


def ground_truth(path, fmt: str, scheme: str | None = None) -> dict[str, list[Span]]:
    """{video id: spans}; with ``scheme``, emotions become that scheme's class names."""
    path = Path(path)
    if fmt not in FORMATS:
        raise unknown_name("--format", fmt, FORMATS)
    if fmt == "synthetic":
        if not path.is_file():
            raise InputFileError(f"--annotations {path}: does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {
                Path(v.get("video", stem)).stem: [
                    Span(int(e["onset"]), int(e["offset"]), e["kind"], emotion_class(e.get("emotion"), fmt, scheme))
                    for e in v["intervals"]
                ]
                for stem, v in data.items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputDataError(
                f"--annotations {path}: not a synthetic ground_truth.json ({type(e).__name__}: {e})"
            ) from None
    if fmt == "casme2":
        from data_pipelines.readers.casme2_long import read_casme2_long as reader
    elif fmt == "casme3":
        from data_pipelines.readers.casme3_long import read_casme3_long as reader
    else:
        from data_pipelines.readers.samm_long import read_samm_long as reader
    out: dict[str, list[Span]] = {}
    for a in reader(path):
        out.setdefault(a.video, []).append(Span(a.onset, a.offset, a.kind, emotion_class(a.emotion, fmt, scheme)))
    return out


def read_predictions(folder, gt_ids=()) -> dict[str, list[Span]]:
    """Spans of every timeline.json below ``folder``, keyed by ground-truth id: the
    output folder's name is tried first, then the video's name (``match_id``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"--predictions {folder}: not a folder")
    ids = set(gt_ids)
    out: dict[str, list[Span]] = {}
    for p in sorted(folder.rglob("timeline.json")):
        try:
            t = json.loads(p.read_text(encoding="utf-8"))
            spans = [Span(int(i["onset"]), int(i["offset"]), i["kind"], i.get("emotion")) for i in t["intervals"]]
            stem = Path(t["video"]).stem
        except (ValueError, KeyError, TypeError) as e:
            raise InputDataError(f"{p}: not a timeline.json written by `fedpsyau analyse` ({e})") from None
        key = match_id(p.parent.name, ids) or match_id(stem, ids) or stem
        out.setdefault(key, []).extend(spans)
    return out


def match_id(name: str, ids: set[str]) -> str | None:
    """The ground-truth id equal to ``name``, or its longest prefix followed by a non-digit."""
    if name in ids:
        return name
    return next(
        (
            g
            for g in sorted(ids, key=len, reverse=True)
            if name.startswith(g) and not name[len(g) : len(g) + 1].isdigit()
        ),
        None,
    )


def find_videos(root, ids) -> dict[str, Path]:
    """Video files or frame folders below ``root`` whose name matches a ground-truth id.
    A matching folder without images of its own is searched (2 levels) for a ``color``
    folder with images (CAS(ME)^3 Part C: ``01/a/color/``)."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"--videos {root}: not a folder")
    ids = set(ids)

    def has_images(d: Path) -> bool:
        return any(c.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") for c in d.iterdir())

    found: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        k = match_id(p.stem if p.is_file() else p.name, ids)
        if k is None or k in found:
            continue
        if p.is_file() and p.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv"):
            found[k] = p
        elif p.is_dir():
            if has_images(p):
                found[k] = p
            else:
                colour = [
                    c for c in sorted(p.glob("color")) + sorted(p.glob("*/color")) if c.is_dir() and has_images(c)
                ]
                if colour:
                    found[k] = colour[0]
    return found


def evaluate_spotting(
    predictions,
    annotations,
    fmt: str,
    videos=None,
    checkpoint=None,
    fps: float | None = None,
    show_progress: bool = True,
    scheme: str | None = None,
) -> dict:
    """Pooled MEGC scores of the predictions against the annotations. With ``videos``
    (a release folder), every annotated video found there without a timeline.json yet
    is analysed first into ``predictions/<id>/`` (so an interrupted run resumes).
    ``scheme`` (megc3 / emotion7) maps the annotation's emotion words to the model's
    class names for the spot-then-recognise scores."""
    gt = ground_truth(annotations, fmt, scheme)
    predictions = Path(predictions)
    ran = []
    if videos is not None:
        from fedpsyau_jax.video.analyse import analyse_video

        for vid, path in find_videos(videos, set(gt)).items():
            out = predictions / re.sub(r"[^A-Za-z0-9._-]+", "_", vid)
            if not (out / "timeline.json").is_file():
                analyse_video(path, out, checkpoint, fps=fps or FORMAT_FPS.get(fmt), show_progress=show_progress)
                ran.append(vid)
    pred = read_predictions(predictions, set(gt))
    unknown = sorted(set(pred) - set(gt))
    scores = spotting_scores({k: v for k, v in pred.items() if k in gt}, gt)
    scores.pop("matches")
    return {
        "scores": scores,
        "videos_with_ground_truth": len(gt),
        "videos_predicted": len(set(pred) & set(gt)),
        "predictions_without_ground_truth": unknown,
        "analysed_now": ran,
    }


def format_scores(res: dict) -> str:
    s = res["scores"]
    lines = [f"{'':8s} {'TP':>5s} {'FP':>5s} {'FN':>5s} {'P':>7s} {'R':>7s} {'F1':>7s}"]
    for k in ("micro", "macro", "overall"):
        r = s[k]
        lines.append(
            f"{k:8s} {r['tp']:5d} {r['fp']:5d} {r['fn']:5d} {r['precision']:7.4f} {r['recall']:7.4f} {r['f1']:7.4f}"
        )
    if "recognition" in s:
        r = s["recognition"]
        lines.append(f"recognition on {r['n']} TPs: UF1 {r['uf1']:.4f} UAR {r['uar']:.4f}; STRS {r['strs']:.4f}")
    lines.append(f"videos: {res['videos_predicted']} predicted of {res['videos_with_ground_truth']} annotated")
    if res["predictions_without_ground_truth"]:
        lines.append(f"predictions without ground truth (ignored): {res['predictions_without_ground_truth'][:5]}")
    return "\n".join(lines)
