"""Label-free alignment of separately trained AU heads, and one score from both heads.

In a LOSO run every fold's network puts its AU logits on its own scale. The folds
inherit that scale from the stage-1 model they start from (benchmarks/RESULTS.md,
"Where the between-model gap sits"), so scores pooled over folds mix five scales.
Here each model's logits are standardised, per AU, by their mean and standard
deviation over a *reference set*: samples without AU labels that the stage-1 model
never saw (SMIC in the MEGC2019 composite). No label is read, and no test subject
enters a reference. The map is affine and increasing per AU, so a model's own ranking
and its thresholded decisions (moved into the same units) do not change.

The combined score averages the two heads' standardised logits; its decisions compare
the mean of the two heads' probabilities with the mean of their inner-validation
thresholds, so no new threshold is chosen anywhere.

Shapes: logits and probabilities (n, 12) in ``AU_ORDER``; statistics (2, 12) as
(mean, std).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STD_FLOOR = 1e-6  # an AU whose logit is constant over the reference keeps unit scale


def reference_stats(ref_logits: np.ndarray) -> np.ndarray:
    """(2, 12) per-AU mean and standard deviation of a model's logits (n_ref, 12) on the
    reference samples."""
    ref = np.asarray(ref_logits, np.float64)
    if ref.ndim != 2 or ref.shape[0] < 2:
        raise ValueError(f"reference logits must be (n >= 2, n_au); got shape {ref.shape}")
    sd = ref.std(0)
    return np.stack([ref.mean(0), np.where(sd > STD_FLOOR, sd, 1.0)])


def standardise(logits: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Logits (n, 12) in reference units: (z − mean) / std per AU."""
    stats = np.asarray(stats, np.float64)
    return (np.asarray(logits, np.float64) - stats[0]) / stats[1]


def combine_heads(z_gat: np.ndarray, z_afe: np.ndarray) -> np.ndarray:
    """The combined AU score (n, 12): the mean of the two heads' standardised logits."""
    return (np.asarray(z_gat, np.float64) + np.asarray(z_afe, np.float64)) / 2


def combined_decisions(p_gat, p_afe, t_gat, t_afe) -> np.ndarray:
    """int8 (n, 12): mean head probability ≥ mean of the heads' thresholds (each (12,) or
    (n, 12))."""
    return ((np.asarray(p_gat) + np.asarray(p_afe)) / 2 >= (np.asarray(t_gat) + np.asarray(t_afe)) / 2).astype(np.int8)


# --- a run's stored outputs ------------------------------------------------------------

STATS_FILE = "reference_stats.json"  # under <workdir>/au_pretrain: {part: {head: (2, 12)}}
HEADS = ("gat", "afe")


def reference_rows(au_mask: np.ndarray, subject: np.ndarray, held_out) -> np.ndarray:
    """Rows (r,) of the reference for a stage-1 model: samples with no AU label at all,
    of subjects the model does not hold out (so no test subject is ever a reference)."""
    unlabelled = np.asarray(au_mask).sum(1) == 0
    return np.flatnonzero(unlabelled & ~np.isin(np.asarray(subject).astype(str), list(held_out)))


def stage1_parts(workdir: Path, subject: np.ndarray) -> dict[str, str]:
    """{test subject: shared stage-1 part directory name} of a run with
    ``pretrain.subject_folds`` ≥ 2, from the parts' stored predictions."""
    subject = np.asarray(subject).astype(str)
    out = {}
    for p in sorted((Path(workdir) / "au_pretrain" / "folds").glob("*_part*/predictions.npz")):
        with np.load(p) as z:
            for s in np.unique(subject[z["test_idx"]]):
                out[str(s)] = p.parent.name
    return out


def aligned_detectors(workdir: Path, subject: np.ndarray, preds: list[dict]) -> dict:
    """{name: (score (n, 12) in (0, 1), decisions int8 (n, 12))} over the concatenated
    folds ``preds`` (each with ``test_idx``, ``au_prob_*``, ``au_threshold_*``): each
    head reference-aligned (its decisions are the run's own), and the combined score.
    Empty when the run has no ``au_pretrain/reference_stats.json`` or no AU heads. Folds whose test
    subject no stage-1 part held out (no AU labels) keep their raw logits."""
    import json

    from fedpsyau_jax.training.au_calibration import logit

    path = Path(workdir) / "au_pretrain" / STATS_FILE
    if not path.is_file() or not all(f"au_prob_{h}" in p for p in preds for h in HEADS):
        return {}
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # a truncated or hand-edited file: name it, recompute with --workdir
        raise ValueError(
            f"{path}: not valid JSON ({e}); rewrite it with experiments/au_branch/au_combined_score.py --workdir"
        ) from e
    subject = np.asarray(subject).astype(str)
    part_of = stage1_parts(workdir, subject)
    missing = sorted(set(part_of.values()) - set(stats))
    if missing:
        raise ValueError(f"{path}: no statistics for stage-1 parts {missing}")
    prob, thr, z = {}, {}, {}
    for h in HEADS:
        prob[h] = np.concatenate([p[f"au_prob_{h}"] for p in preds])
        thr[h] = np.concatenate(
            [np.broadcast_to(p.get(f"au_threshold_{h}", np.full(12, 0.5)), p[f"au_prob_{h}"].shape) for p in preds]
        )
        parts = [part_of.get(str(subject[p["test_idx"][0]])) for p in preds]
        z[h] = np.concatenate(
            [
                logit(p[f"au_prob_{h}"]) if part is None else standardise(logit(p[f"au_prob_{h}"]), stats[part][h])
                for p, part in zip(preds, parts)
            ]
        )

    def sig(x):
        return (1 / (1 + np.exp(-x))).astype(np.float32)

    out = {}
    for h, name in zip(HEADS, ("head B (GAT)", "head A (AFE)")):
        out[f"{name}, reference-aligned"] = (sig(z[h]), (prob[h] >= thr[h]).astype(np.int8))
    out["combined (both heads, reference-aligned)"] = (
        sig(combine_heads(z["gat"], z["afe"])),
        combined_decisions(prob["gat"], prob["afe"], thr["gat"], thr["afe"]),
    )
    return out


def au_reference_stats(workdir, samples, flip_tta: bool = False) -> dict | None:
    """Reference statistics of every shared stage-1 model of a run: {part directory:
    {head: (2, 12) as lists}}, per AU and head the mean and standard deviation of the
    model's logits over the samples without AU labels of subjects it does not hold out
    (with ``flip_tta``, of its mirror-averaged logits, as a run with ``train.eval_flip``
    evaluates). None where the run has no shared stage-1 parts, a part's model is gone,
    or there is no unlabelled sample."""
    from fedpsyau_jax.training.exported_model import apply_fn, final_beta, read_model
    from fedpsyau_jax.training.fold_training import MODEL_CHECKPOINT

    workdir = Path(workdir)
    part_of = stage1_parts(workdir, samples.subject)
    parts = sorted(set(part_of.values()))
    pre = workdir / "au_pretrain" / "folds"
    if not parts or not all((pre / n / MODEL_CHECKPOINT).is_dir() for n in parts):
        return None
    stats = {}
    for name in parts:
        rows = reference_rows(samples.au_mask, samples.subject, [s for s, n in part_of.items() if n == name])
        if len(rows) < 2:
            return None
        model, v, meta = read_model(pre / name / MODEL_CHECKPOINT)
        variables = {"params": v["params"], "batch_stats": v["batch_stats"], "priors": v["priors"]}
        batch = {k: np.asarray(getattr(samples, k))[rows] for k in ("flow128", "flow28", "landmarks")}
        _, au_gat, au_afe = apply_fn(model, final_beta(meta), flip_tta)(variables, batch)
        if au_gat is None:
            return None
        stats[name] = {h: reference_stats(np.asarray(z)).tolist() for h, z in zip(HEADS, (au_gat, au_afe))}
    return stats


def write_au_reference_stats(workdir, samples, flip_tta: bool = False) -> Path | None:
    """``au_reference_stats`` written to ``<workdir>/au_pretrain/reference_stats.json``;
    returns that path, or None where there are none."""
    from fedpsyau_jax.core.atomic_files import write_json_atomic

    stats = au_reference_stats(workdir, samples, flip_tta)
    if stats is None:
        return None
    path = Path(workdir) / "au_pretrain" / STATS_FILE
    write_json_atomic(path, stats)
    return path
