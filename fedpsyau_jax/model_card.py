"""Model cards: what an exported model was trained on, how good it is, what it is for.

Every model that ``api.train`` exports (``<run>/final_model``) gets

    final_model/MODEL_CARD.md      the card in plain words, for people
    final_model/metadata.json      the same fields under the key ``model_card``

    card = build_model_card(summary, cfg_dict, samples)   # -> dict (JSON-serialisable)
    write_model_card(model_dir, card)                     # both files, atomically
    model_card_summary("runs/demo")                       # the card's one-line summary

``predict`` (and any other verb that loads an exported model) prints
``model_card_summary``. The card only reports what the run measured: a run without
held-out subjects (protocol ``all``) says that its accuracy was not measured.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from fedpsyau_jax.core.atomic_files import write_json_atomic, write_text_atomic
from fedpsyau_jax.version import package_version

CARD_FILE = "MODEL_CARD.md"
CARD_KEY = "model_card"
METADATA_FILE = "metadata.json"  # the checkpoint's metadata record (training/checkpoints.py)
FINAL_MODEL = "final_model"

INTENDED_USE = (
    "Research on facial micro-expressions: estimating which of the trained emotion classes "
    "a short onset-to-apex face clip shows, and which facial action units (AUs) move, for "
    "people and recording conditions like those of the training data."
)
LIMITS = (
    (
        "Micro-expression recognition is not lie detection: a micro-expression shows a brief "
        "emotional reaction, not whether a person tells the truth, and this model must not be "
        "used to judge honesty, guilt, credibility or suitability of anyone."
    ),
    (
        "Accuracy on unseen people, cameras, lighting, frame rates and ethnic groups is unknown "
        "beyond the evaluation sets reported here; the reported intervals cover the resampling "
        "of these subjects only."
    ),
    (
        "The classes are those of the training labels; any clip is forced into one of them, "
        "including clips with no micro-expression at all."
    ),
)
SYNTHETIC_LIMIT = "Trained on synthetic data: its scores show that the pipeline learns, not how it does on real faces."

PROTOCOL_WORDS = {
    "loso": "leave-one-subject-out (each subject tested by a model that never saw them)",
    "kfold": "subject-independent k-fold (no subject in both training and test of a fold)",
    "all": "trained on all samples, no held-out test subjects",
    "leave_dataset_out": "leave one source dataset out (each dataset tested by a model trained on the others only)",
}


def config_hash(cfg_dict: dict) -> str:
    """First 12 hex digits of the SHA-256 of the resolved config as canonical JSON
    (sorted keys, no spaces): recompute it from a run's ``config.json``."""
    text = json.dumps(cfg_dict, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _training_data(samples) -> dict:
    """Datasets, sample and subject counts, and the subject ids, of the training samples."""
    out: dict[str, Any] = {
        "samples": len(samples),
        "subjects": int(len(np.unique(samples.subject))),
        "class_names": list(samples.class_names),
        "class_counts": [int(c) for c in np.bincount(samples.label, minlength=len(samples.class_names))],
        "au_labelled_samples": int((np.asarray(samples.au_mask).sum(1) > 0).sum()),
        "datasets": {},
    }
    for d in sorted(np.unique(samples.dataset)):
        sel = samples.dataset == d
        out["datasets"][str(d)] = {
            "samples": int(sel.sum()),
            "subjects": sorted(str(s) for s in np.unique(samples.subject[sel])),
        }
    return out


def _metrics(summary: dict) -> dict | None:
    """Pooled scores of the held-out subjects, with 95 % subject-bootstrap intervals."""
    pooled = summary.get("pooled")
    if not pooled:
        return None
    m: dict[str, Any] = {"uf1": float(pooled["uf1"]), "uar": float(pooled["uar"])}
    if "accuracy" in pooled:
        m["accuracy"] = float(pooled["accuracy"])
    boot = summary.get("pooled_bootstrap") or {}
    for k in ("uf1", "uar"):
        if f"{k}_ci95" in boot:
            m[f"{k}_ci95"] = [float(x) for x in boot[f"{k}_ci95"]]
    if "subjects" in boot:
        m["bootstrap"] = f"{boot.get('replicates')} resamplings of the {boot['subjects']} test subjects"
    per = summary.get("per_dataset") or {}
    if len(per) > 1:
        m["per_dataset"] = {d: {"uf1": float(s["uf1"]), "uar": float(s["uar"])} for d, s in per.items()}
    m["test_folds"] = int(summary.get("folds", 0))
    return m


def _au_detection(summary: dict) -> dict | None:
    au = summary.get("au_detection")
    if not au:
        return None
    return {
        head: {
            "mean_f1": float(s["mean_f1"]),
            "mean_auc": float(s["mean_auc"]),
            "samples": int(s["num_samples"]),
            # 0.5, or "per-AU" (thresholds chosen on inner-validation subjects)
            "threshold": s["threshold"] if isinstance(s["threshold"], str) else float(s["threshold"]),
            "excluded_aus": list(s.get("excluded_aus", [])),
        }
        for head, s in au.items()
    }


def _fmt_ci(m: dict, k: str) -> str:
    ci = m.get(f"{k}_ci95")
    return f"{m[k]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _one_line(card: dict) -> str:
    d, m = card["training_data"], card.get("metrics")
    names = ",".join(d["datasets"])
    score = (
        f"{card['protocol']['kind'].upper()} UF1 {_fmt_ci(m, 'uf1')}, UAR {_fmt_ci(m, 'uar')}"
        if m
        else "accuracy not measured (no held-out subjects)"
    )
    return (
        f"{card['model'].split(' (')[0]}, {len(d['class_names'])} classes ({'/'.join(d['class_names'])}), trained on "
        f"{names}: {d['samples']} samples of {d['subjects']} subjects, {card['fixed_epochs']} epochs; "
        f"{score}; fedpsyau-jax {card['software']['fedpsyau_jax']}, config {card['software']['config_hash']}. "
        f"Research use; not lie detection."
    )


def build_model_card(summary: dict, cfg_dict: dict, samples, inputs: dict | None = None) -> dict:
    """The card of a run's exported model.

    summary: ``api.train``'s summary (pooled scores, bootstrap intervals, AU detection);
    cfg_dict: the resolved config as saved in ``config.json``; samples: the ``MESamples``
    the run trained on (the exported model saw all of them); inputs: the training
    inputs' summary (``input_check.summarise_inputs``), of which the card keeps the
    parts people read.
    """
    import jax

    from fedpsyau_jax.network.baselines import display_name

    kind = str(cfg_dict.get("protocol", {}).get("kind", summary.get("protocol", "")))
    card: dict[str, Any] = {
        "model": f"{display_name(cfg_dict.get('model', {}))}, fedpsyau-jax implementation",
        "training_data": {"config_dataset": str(cfg_dict.get("data", {}).get("name", "")), **_training_data(samples)},
        "protocol": {
            "kind": kind,
            "meaning": PROTOCOL_WORDS.get(kind, kind),
            "exported_model": "one model trained on ALL the samples above with the same "
            "settings and the same fixed number of epochs as the "
            "evaluated folds (no early stopping, no test-set choice)",
            "test_time": (
                "mean logits over the sample and its mirror image (train.eval_flip); "
                "predict and analyse apply the model the same way"
                if bool(cfg_dict.get("train", {}).get("eval_flip", False))
                else "one forward pass on the sample as given"
            ),
        },
        "fixed_epochs": int(cfg_dict.get("train", {}).get("epochs", summary.get("epochs", 0))),
        "metrics": _metrics(summary),
        "au_detection": _au_detection(summary),
        "software": {"fedpsyau_jax": package_version(), "jax": jax.__version__, "config_hash": config_hash(cfg_dict)},
        "intended_use": INTENDED_USE,
        "limits": list(LIMITS)
        + ([SYNTHETIC_LIMIT] if any(str(d).startswith("synthetic") for d in np.unique(samples.dataset)) else []),
    }
    if inputs is not None:
        keep = ("samples", "pipeline", "flow28_quantiles", "background", "group_quantile")
        card["inputs"] = {k: inputs[k] for k in keep} | {"groups": list(inputs["groups"])}
    card["summary"] = _one_line(card)
    return card


def card_markdown(card: dict) -> str:
    """The card as Markdown (``MODEL_CARD.md``)."""
    d, p, m, au, sw = (
        card["training_data"],
        card["protocol"],
        card.get("metrics"),
        card.get("au_detection"),
        card["software"],
    )
    lines = [
        "# Model card",
        "",
        card["summary"],
        "",
        "## Model",
        "",
        card["model"],
        "",
        "## Training data",
        "",
        f"- config dataset: `{d['config_dataset']}`",
        (
            f"- {d['samples']} samples of {d['subjects']} subjects, classes "
            + ", ".join(f"{n} ({c})" for n, c in zip(d["class_names"], d["class_counts"]))
        ),
        f"- samples with AU labels: {d['au_labelled_samples']}",
    ]
    for name, ds in d["datasets"].items():
        lines.append(f"- `{name}`: {ds['samples']} samples; subjects {', '.join(ds['subjects'])}")
    lines += [
        "",
        "## Protocol",
        "",
        f"- evaluation: {p['kind']}, {p['meaning']}",
        f"- this model: {p['exported_model']}",
        f"- fixed number of epochs: {card['fixed_epochs']}",
        *([f"- outputs at test time: {p['test_time']}"] if "test_time" in p else []),
        "",
        "## Metrics",
        "",
    ]
    if m:
        lines += [
            (
                f"Pooled over the {m['test_folds']} test folds; 95 % intervals from "
                f"{m.get('bootstrap', 'no bootstrap')}."
            ),
            "",
            "| metric | value |",
            "|---|---|",
            f"| UF1 | {_fmt_ci(m, 'uf1')} |",
            f"| UAR | {_fmt_ci(m, 'uar')} |",
        ]
        if "accuracy" in m:
            lines.append(f"| accuracy | {m['accuracy']:.3f} |")
        for ds, s in (m.get("per_dataset") or {}).items():
            lines.append(f"| {ds} UF1 / UAR | {s['uf1']:.3f} / {s['uar']:.3f} |")
    else:
        lines.append("Not measured: this run held out no subjects (protocol `all`).")
    lines += ["", "## AU detection", ""]
    if au:
        lines += ["| head | mean F1 | F1 threshold | mean AUC | AU-labelled test samples |", "|---|---|---|---|---|"]
        for head, s in au.items():
            thr = s.get("threshold", 0.5)
            thr = thr if isinstance(thr, str) else f"{thr:g}"
            lines.append(f"| {head} | {s['mean_f1']:.3f} | {thr} | {s['mean_auc']:.3f} | {s['samples']} |")
    else:
        lines.append("Not measured in this run (no AU-labelled test samples, or no AU branch).")
    if "inputs" in card:
        from fedpsyau_jax.training.input_check import card_lines

        lines += ["", "## Training inputs", "", *card_lines(card["inputs"])]
    lines += [
        "",
        "## Software",
        "",
        f"- fedpsyau-jax {sw['fedpsyau_jax']}, jax {sw['jax']}",
        (
            f"- config hash `{sw['config_hash']}` (SHA-256 of the run's config.json as canonical "
            "JSON, first 12 hex digits)"
        ),
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "## Limits",
        "",
    ]
    lines += [f"- {x}" for x in card["limits"]]
    return "\n".join(lines) + "\n"


def write_model_card(model_dir, card: dict) -> Path:
    """Write ``MODEL_CARD.md`` and add the card to ``metadata.json`` of ``model_dir``."""
    model_dir = Path(model_dir)
    meta_path = model_dir / METADATA_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta[CARD_KEY] = card
    write_json_atomic(meta_path, meta)
    write_text_atomic(model_dir / CARD_FILE, card_markdown(card))
    return model_dir / CARD_FILE


def model_card_summary(model_dir) -> str:
    """The one-line summary of an exported model's card.

    ``model_dir``: an exported model folder or a run directory holding ``final_model/``.
    A model without a card (a fold model, or one exported before cards existed) gets a
    line that says so; a missing folder raises ``CheckpointError`` naming it.
    """
    from fedpsyau_jax.training.checkpoints import CheckpointError

    p = Path(model_dir)
    if (p / FINAL_MODEL / METADATA_FILE).is_file():
        p = p / FINAL_MODEL
    meta_path = p / METADATA_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{p}: no {METADATA_FILE} (not an exported model folder or run directory)")
    try:
        card = json.loads(meta_path.read_text(encoding="utf-8")).get(CARD_KEY)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{meta_path}: unreadable metadata ({e})") from e
    if not card or "summary" not in card:
        return (
            f"{p}: no model card (a fold model, or exported before model cards existed); "
            "what it was trained on and how well it does are not recorded with it."
        )
    return str(card["summary"])
