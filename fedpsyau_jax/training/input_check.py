"""Is an input like the ones the model was trained on? The training inputs' summary,
stored with every exported model, and the check ``predict`` and ``analyse`` run.

    summary = summarise_inputs(flow28, landmarks, pipeline)   # at export: metadata.json
    check = check_input(meta, sample)                         # at inference: one dict
    params = input_pipeline(meta)                             # how to cut inputs for it

Why: a model reads whatever numbers it is given. Inputs computed by another convention
(a different face box, a different span of motion) look like nothing it was trained on
and still get confident probabilities. The released MEGC2019 composite flows, for one,
put the face tighter and squashed vertically in the crop compared with the pipeline's
default box (benchmarks/input_domain.md); the check makes such a mismatch visible
instead of leaving a silent number.

What is summarised: per sample, ``FEATURES`` (37 numbers) from the encoded 28-px flow
and the 65 landmarks: per channel (u, v, strain) the mean, spread and 5/50/95 %
quantiles; for u and v the fraction of pixels near the sample's median (its still
background: most of a face does not move); where in the face the motion sits (the
share of |u - median| + |v - median| in each of 4 x 4 blocks of 7 x 7 px); and where
the face sits (eye centre, outer-eye width, eye-to-mouth height, in 128-px crop
coordinates). The summary stores their mean and spread, a shrunk inverse correlation
(the distance is a Mahalanobis distance) and the distances of the training inputs
themselves, each measured by a summary fitted without it (10 folds, by subject), so a
training-like input is compared with the training inputs as honestly as a new one is. An input
farther than ``OUTSIDE_QUANTILE`` of them is flagged "outside".

For people the summary also keeps per-channel quantiles of the encoded flow and the
background level (median of the per-sample medians of u and v).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SUMMARY_KEY = "input_summary"
SUMMARY_VERSION = 1
# Flag an input farther from the training inputs than this share of them.
OUTSIDE_QUANTILE = 0.99
# Shrinkage of the correlation towards the identity (stable with few samples, many features).
SHRINK = 0.1
HELD_OUT_FOLDS = 10
NEAR_BACKGROUND = 0.05  # encoded units: "still" pixels lie this close to the median
CHANNELS = ("u", "v", "strain")
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BLOCKS = 4  # the 28-px flow in 4 x 4 blocks of 7 x 7 px

FEATURES: tuple[str, ...] = (
    *(f"{c} {s}" for c in CHANNELS for s in ("mean", "sd", "q05", "q50", "q95")),
    "u still fraction",
    "v still fraction",
    *(f"motion share block r{r}c{c}" for r in range(BLOCKS) for c in range(BLOCKS)),
    "eye centre x",
    "eye centre y",
    "outer-eye width",
    "eye-to-mouth height",
)
NO_SUMMARY = "no input summary stored"
# Groups of FEATURES (column indices), each with its own distance and threshold.
GROUPS: dict[str, tuple[int, ...]] = {
    "flow values": tuple(range(15)),
    "still background": (15, 16),
    "motion layout": tuple(range(17, 33)),
    "face position": tuple(range(33, 37)),
}


def input_features(flow28: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``FEATURES`` of a batch: ``flow28`` (N, 28, 28, 3) encoded in [0, 1],
    ``landmarks`` (N, 65, 2) in the 128-px crop frame → (N, 37) float64."""
    f = np.asarray(flow28, np.float64)
    lm = np.asarray(landmarks, np.float64)
    if f.ndim == 3:
        f, lm = f[None], lm[None]
    n = len(f)
    flat = f.reshape(n, -1, 3)
    q = np.quantile(flat, [0.05, 0.5, 0.95], axis=1)  # (3, N, 3)
    per_channel = np.stack([flat.mean(1), flat.std(1), q[0], q[1], q[2]], axis=-1)  # (N, 3, 5)
    med = q[1][:, None, None, :2]  # (N, 1, 1, 2): the still background of u and v
    dev = np.abs(f[..., :2] - med)
    still = (dev < NEAR_BACKGROUND).mean(axis=(1, 2))  # (N, 2)
    energy = dev.sum(-1)  # (N, 28, 28)
    b = f.shape[1] // BLOCKS
    blocks = energy[:, : b * BLOCKS, : b * BLOCKS].reshape(n, BLOCKS, b, BLOCKS, b).sum(axis=(2, 4))
    share = blocks.reshape(n, -1) / np.maximum(blocks.reshape(n, -1).sum(1, keepdims=True), 1e-12)
    # 65-keypoint tokens (core.keypoints): 10-21 eyes (10, 19 outer corners; 13, 16
    # inner), 32-43 outer lips
    eye_c = 0.5 * (lm[:, 13] + lm[:, 16])
    width = lm[:, 19, 0] - lm[:, 10, 0]
    height = lm[:, 32:44, 1].mean(1) - lm[:, 10:22, 1].mean(1)
    face = np.stack([eye_c[:, 0], eye_c[:, 1], width, height], axis=1)
    return np.concatenate([per_channel.reshape(n, -1), still, share, face], axis=1)


def _fit(x: np.ndarray) -> dict[str, np.ndarray]:
    mean = x.mean(0)
    sd = x.std(0)
    sd = np.where(sd > 1e-9, sd, 1.0)  # a constant feature cannot be standardised
    z = (x - mean) / sd
    corr = z.T @ z / len(x)  # a constant feature: a zero row and column
    shrunk = (1 - SHRINK) * corr + SHRINK * np.eye(x.shape[1])
    return {"mean": mean, "sd": sd, "precision": np.linalg.inv(shrunk)}


def _distance(fit: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distances (N,), standardised features (N, F))."""
    z = (np.atleast_2d(x) - np.asarray(fit["mean"])) / np.asarray(fit["sd"])
    d2 = np.einsum("nf,fg,ng->n", z, np.asarray(fit["precision"]), z)
    return np.sqrt(np.maximum(d2, 0.0)), z


def _held_out_folds(n: int, subjects: np.ndarray | None) -> np.ndarray:
    """Fold of each input: by subject when there are several (a new person is then
    compared as a new input is), else by position."""
    if subjects is not None:
        _, subj = np.unique(np.asarray(subjects).astype(str), return_inverse=True)
        if subj.max() >= 1:
            return subj % min(HELD_OUT_FOLDS, int(subj.max()) + 1)
    return np.arange(n) % min(HELD_OUT_FOLDS, n)


def _group_summary(x: np.ndarray, quantile: float, folds: np.ndarray) -> dict:
    """Mean, spread, precision and held-out distances of one group of features."""
    held_out = np.zeros(len(x))
    for j in np.unique(folds):
        test = folds == j
        held_out[test] = _distance(_fit(x[~test]), x[test])[0]
    fit = _fit(x)
    return {
        "mean": fit["mean"].round(6).tolist(),
        "sd": fit["sd"].round(6).tolist(),
        "precision": fit["precision"].round(6).tolist(),
        "held_out_sorted": np.sort(held_out).round(4).tolist(),
        "threshold": float(np.quantile(held_out, quantile)),
    }


def summarise_inputs(
    flow28: np.ndarray, landmarks: np.ndarray, pipeline: dict | None = None, subjects: np.ndarray | None = None
) -> dict:
    """The training inputs' summary (JSON-serialisable) for an exported model.

    ``pipeline``: how those inputs were made (``training_pipeline``), so that
    ``predict``/``analyse`` cut new inputs the same way. ``subjects``: the inputs'
    subject ids; the held-out distances are then measured on subjects left out (a new
    input comes from a new person). Each group of ``GROUPS`` gets
    its own distance and threshold (at 1 - (1 - ``OUTSIDE_QUANTILE``) / 4 of the
    held-out training distances), so that an input is flagged with about 1 % chance
    when it is like the training inputs, and one group far off (the face's position,
    say) is not diluted by 33 features that agree.
    """
    x = input_features(flow28, landmarks)
    n = len(x)
    if n < 2:
        raise ValueError(f"summarise_inputs: need at least 2 training inputs, got {n}")
    q = 1.0 - (1.0 - OUTSIDE_QUANTILE) / len(GROUPS)
    folds = _held_out_folds(n, subjects)
    f = np.asarray(flow28, np.float64).reshape(n, -1, 3)
    med = np.median(f[..., :2], axis=1)  # (N, 2) per-sample background of u, v
    return {
        "version": SUMMARY_VERSION,
        "samples": n,
        "pipeline": pipeline or {"crop": "eyes", "source": "unknown"},
        "features": list(FEATURES),
        "shrink": SHRINK,
        "held_out_folds": int(folds.max()) + 1,
        "held_out_by": "subject" if subjects is not None and len(np.unique(np.asarray(subjects))) > 1 else "input",
        "outside_quantile": OUTSIDE_QUANTILE,
        "group_quantile": q,
        "groups": {
            g: {"features": list(idx), **_group_summary(x[:, list(idx)], q, folds)} for g, idx in GROUPS.items()
        },
        "flow28_quantiles": {
            c: dict(zip((str(p) for p in QUANTILES), np.quantile(f[..., i], QUANTILES).round(4).tolist()))
            for i, c in enumerate(CHANNELS)
        },
        "background": {
            c: {
                "median": float(np.median(med[:, i])),
                "q05": float(np.quantile(med[:, i], 0.05)),
                "q95": float(np.quantile(med[:, i], 0.95)),
            }
            for i, c in enumerate(CHANNELS[:2])
        },
    }


def check_input(meta: dict, sample: dict) -> dict:
    """How far ``sample`` (``flow28``, ``landmarks``) lies from the model's training
    inputs: ``status`` "inside" / "outside" / ``NO_SUMMARY``, per group of ``GROUPS``
    its ``distance``, ``threshold`` and the share of training inputs closer
    (``training_percentile``), the groups ``outside``, the three ``furthest`` features
    (standardised, z) and a one-line ``message``."""
    summary = meta.get(SUMMARY_KEY)
    if not summary:
        return {
            "status": NO_SUMMARY,
            "message": (
                f"{NO_SUMMARY} with this model (exported before input checks existed, or a fold "
                "model); the input was not compared with its training inputs"
            ),
        }
    x = input_features(sample["flow28"], sample["landmarks"])[0]
    names = summary["features"]
    groups, outside, zs = {}, [], np.zeros(len(names))
    for g, s in summary["groups"].items():
        idx = s["features"]
        d, z = _distance(s, x[idx])
        zs[idx] = z[0]
        ref = np.asarray(s["held_out_sorted"])
        dist, thr = float(d[0]), float(s["threshold"])
        groups[g] = {
            "distance": round(dist, 3),
            "threshold": round(thr, 3),
            "training_percentile": round(100 * float(np.searchsorted(ref, dist, side="right") / len(ref)), 1),
        }
        if dist > thr:
            outside.append(g)
    order = np.argsort(-np.abs(zs))[:3]
    furthest = [{"feature": names[i], "z": round(float(zs[i]), 2)} for i in order]
    far = ", ".join(f"{f['feature']} (z {f['z']:+.1f})" for f in furthest)
    if outside:
        what = "; ".join(
            f"{g} distance {groups[g]['distance']:.1f} > {groups[g]['threshold']:.1f}, farther than "
            f"{groups[g]['training_percentile']:.0f} % of them"
            for g in outside
        )
        msg = (
            f"input OUTSIDE the model's training inputs ({what}); most different: {far}. "
            "Its probabilities are not reliable."
        )
    else:
        closer = ", ".join(f"{g} {v['training_percentile']:.0f} %" for g, v in groups.items())
        msg = f"input within the model's training inputs (share of them closer: {closer})"
    return {
        "status": "outside" if outside else "inside",
        "outside": outside,
        "groups": groups,
        "furthest": furthest,
        "message": msg,
    }


def training_pipeline(samples_meta: dict, data_name: str = "") -> dict:
    """How a run's training inputs were made: ``crop`` (``face_crop.CROP_RULES``),
    ``source`` and, for inputs made by the video pipeline, its ``params``."""
    pre = samples_meta.get("preprocess")
    if isinstance(pre, dict) and "crop" in pre:
        return {"source": "video pipeline", "crop": pre["crop"].get("rule", "eyes"), "params": pre}
    if str(samples_meta.get("source", "")).startswith("megc2019_htnet") or data_name == "megc2019_composite":
        return {"source": "megc2019 composite release (flow28 images)", "crop": "composite"}
    return {"source": data_name or "unknown", "crop": "eyes"}


def input_pipeline(meta: dict):
    """The ``PipelineParams`` that cut inputs for the model of ``meta`` the way its
    training inputs were cut: from its input summary, or, for models exported before
    summaries existed, from its config's dataset (the released composite → "composite")."""
    from data_pipelines.video_pipeline import PipelineParams

    pipe = (meta.get(SUMMARY_KEY) or {}).get("pipeline")
    if pipe is None:
        name = str(meta.get("config", {}).get("data", {}).get("name", ""))
        pipe = training_pipeline({}, name)
    kw: dict[str, Any] = {"crop": pipe.get("crop", "eyes")}
    params = pipe.get("params") or {}
    for key in ("align", "apex_window"):
        if key in params:
            kw[key] = bool(params[key])
    if isinstance(params.get("tvl1"), dict):
        kw["tvl1"] = tuple(sorted(params["tvl1"].items()))
    return PipelineParams(**kw)


def write_input_summary(model_dir, summary: dict) -> None:
    """Add ``summary`` to ``model_dir/metadata.json`` under ``SUMMARY_KEY`` (atomically)."""
    from fedpsyau_jax.core.atomic_files import write_json_atomic

    path = Path(model_dir) / "metadata.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta[SUMMARY_KEY] = summary
    write_json_atomic(path, meta)


def card_lines(summary: dict | None) -> list[str]:
    """The model card's lines on the training inputs (Markdown bullets)."""
    if not summary:
        return [f"- {NO_SUMMARY}"]
    qs = summary["flow28_quantiles"]
    pipe = summary.get("pipeline", {})
    lines = [
        (
            f"- made by: {pipe.get('source', 'unknown')}; face crop rule `{pipe.get('crop', 'eyes')}` "
            "(predict and analyse cut new inputs the same way)"
        ),
        *(
            f"- encoded {c}: 5 / 50 / 95 % = {qs[c]['0.05']:.3f} / {qs[c]['0.5']:.3f} / {qs[c]['0.95']:.3f}"
            for c in CHANNELS
        ),
        (
            "- still background (median of u, v per sample): "
            + ", ".join(
                f"{c} {b['median']:.3f} [{b['q05']:.3f}, {b['q95']:.3f}]" for c, b in summary["background"].items()
            )
        ),
        (
            f"- an input is reported as outside the training inputs when one of "
            f"{', '.join(summary['groups'])} lies farther from them than "
            f"{100 * summary['group_quantile']:.2f} % of the {summary['samples']} training inputs do"
        ),
    ]
    return lines
