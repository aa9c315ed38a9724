"""The MEGC spotting metric and spot-then-recognise scores.

* A spotted interval [on, off] is a true positive when its IoU with a ground-truth
  interval is at least 0.5, frames counted inclusively:
  IoU = |P ∩ G| / |P ∪ G| with |[a, b]| = b - a + 1.
* Matching is one-to-one: each ground-truth interval is matched by at most one spotted
  interval and vice versa (greedy by IoU, highest first; for IoU ≥ 0.5 two
  ground-truth intervals of one video cannot both overlap one spotted interval that
  much unless they overlap each other, so greedy equals optimal in practice).
* TP, FP, FN are pooled over all videos, then precision = TP / (TP + FP), recall =
  TP / (TP + FN), F1 = 2PR / (P + R) (0 when undefined), for micro, macro and overall.
  By kind: ground-truth intervals carry their annotated kind; spotted ones their
  predicted kind (micro ≤ 0.5 s). A match across kinds counts as a TP of the
  ground truth's kind in the per-kind tables only when the kinds agree; the overall
  table ignores kinds.
* Spot-then-recognise: on the overall true positives that have both a true and a
  predicted emotion, recognition UF1 (mean per-class F1 over the classes present in
  the ground truth) and UAR (mean per-class recall); STRS = overall spotting F1 ×
  recognition F1 (UF1).
"""

from __future__ import annotations

import dataclasses

import numpy as np

IOU_MIN = 0.5
MICRO_MAX_S = 0.5


@dataclasses.dataclass(frozen=True)
class Span:
    onset: int
    offset: int
    kind: str = ""
    emotion: str | None = None


def iou(a: Span, b: Span) -> float:
    inter = min(a.offset, b.offset) - max(a.onset, b.onset) + 1
    if inter <= 0:
        return 0.0
    union = (a.offset - a.onset + 1) + (b.offset - b.onset + 1) - inter
    return inter / union


def match(pred: list[Span], gt: list[Span], iou_min: float = IOU_MIN) -> list[tuple[int, int]]:
    """One-to-one (pred index, gt index) pairs with IoU ≥ ``iou_min`` (greedy, best first)."""
    pairs = sorted(((iou(p, g), i, j) for i, p in enumerate(pred) for j, g in enumerate(gt)), reverse=True)
    used_p, used_g, out = set(), set(), []
    for v, i, j in pairs:
        if v < iou_min:
            break
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            out.append((i, j))
    return sorted(out)


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f1}


def spotting_scores(pred: dict[str, list[Span]], gt: dict[str, list[Span]]) -> dict:
    """Pooled MEGC scores over videos (keys: video ids; a video absent from ``pred``
    has no spotted intervals). Returns {"overall", "micro", "macro": prf dicts,
    "matches": {video: [(pred idx, gt idx)]}, "recognition": {...} or absent}."""
    counts = {k: [0, 0, 0] for k in ("overall", "micro", "macro")}
    matches = {}
    y_true: list[str] = []
    y_pred: list[str] = []
    for vid in sorted(set(gt) | set(pred)):
        p, g = pred.get(vid, []), gt.get(vid, [])
        m = match(p, g)
        matches[vid] = m
        counts["overall"][0] += len(m)
        counts["overall"][1] += len(p) - len(m)
        counts["overall"][2] += len(g) - len(m)
        for kind in ("micro", "macro"):
            mk = [(i, j) for i, j in match([x for x in p if x.kind == kind], [x for x in g if x.kind == kind])]
            counts[kind][0] += len(mk)
            counts[kind][1] += sum(x.kind == kind for x in p) - len(mk)
            counts[kind][2] += sum(x.kind == kind for x in g) - len(mk)
        for i, j in m:
            g_emotion, p_emotion = g[j].emotion, p[i].emotion
            if g_emotion is not None and p_emotion is not None:
                y_true.append(g_emotion)
                y_pred.append(p_emotion)
    out = {k: prf(*v) for k, v in counts.items()}
    out["matches"] = matches
    if y_true:
        rec = recognition_scores(y_true, y_pred)
        out["recognition"] = rec | {"strs": out["overall"]["f1"] * rec["uf1"]}
    return out


def recognition_scores(y_true: list[str], y_pred: list[str]) -> dict:
    """UF1 and UAR over the classes present in ``y_true`` (MEGC convention)."""
    classes = sorted(set(y_true))
    f1s, recalls = [], []
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    for c in classes:
        tp = int(((yt == c) & (yp == c)).sum())
        fp = int(((yt != c) & (yp == c)).sum())
        fn = int(((yt == c) & (yp != c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        recalls.append(tp / (tp + fn) if tp + fn else 0.0)
    return {"uf1": float(np.mean(f1s)), "uar": float(np.mean(recalls)), "n": len(y_true), "classes": classes}


def kind_of(onset: int, offset: int, fps: float) -> str:
    return "micro" if (offset - onset + 1) <= MICRO_MAX_S * fps + 1 else "macro"
