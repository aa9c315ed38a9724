"""AU pre-training inside every fold (paper §5.1, stage 1) and per-AU thresholds.

FED-PsyAU pre-trains its AU branch (LRM + AFR: LFE, SSE, GSE/AFE, DPK-GAT, AU heads) on
AU labels before training the emotion model. Here stage 1 runs inside each fold of a
protocol, from that fold's training subjects only:

1. the AU-labelled samples of the fold's training subjects are split by subject into
   inner-train and inner-validation subjects (``val_fraction`` of them, drawn with a
   seed derived from the subject set, so equal sets give equal splits);
2. the whole network is trained on AU labels alone (α = (0, 1, 1)) on inner-train
   for ``pretrain.epochs`` at ``pretrain.learning_rate`` (run by ``run_folds``, so it
   is resumable and vectorisable like any run; outputs in ``<workdir>/au_pretrain``);
3. its AU-branch parameters initialise that fold's stage 2 (the whole model on the
   full recipe, AU losses still on), and the per-AU decision thresholds of both heads
   are chosen on the inner-validation subjects' predictions (``choose_thresholds``:
   best F1 on a grid, 0.5 where the validation subjects show no positive).

The thresholds are those of the stage-1 heads; stage 2 keeps training the heads on AU
labels, so they are the best available without holding validation subjects out of
stage 2 too (which would cost the emotion model training data), not exact for the final
heads.

Folds whose AU-labelled training samples are identical (e.g. every LOSO fold that
tests a SMIC subject, which has no AU labels, and the all-data fold) share one stage-1
run. Nothing in stage 1 sees a fold's test subjects.

Shared stage-1 models (``subject_folds`` = k ≥ 2, config ``pretrain.subject_folds``):
instead of one stage-1 run per outer fold, the AU-labelled subjects are split once into
k parts (dealt at random, or balanced per source dataset: ``pretrain.part_balance``,
``balanced_parts``) and stage-1 model j trains on every part but j. An outer fold whose AU-labelled
test subjects all lie in part j (every LOSO fold) and whose training samples include
model j's takes model j; its thresholds are chosen on model j's predictions for part j
*without* the fold's own test subjects, i.e. on subjects that are training subjects of
the outer fold and unseen by model j: the same inner-train / inner-validation roles as
above, with k (≈ 5) stage-1 runs instead of one per fold. Other folds (no AU-labelled
test subject, or test subjects spread over parts) keep their own run.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from fedpsyau_jax.core.errors import UserError
from fedpsyau_jax.training.protocols import Fold

PART_BALANCES = ("none", "dataset")  # pretrain.part_balance
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
HEADS = ("gat", "afe")


@dataclasses.dataclass(frozen=True)
class PretrainPlan:
    """Stage-1 folds and which one serves each outer fold.

    folds: stage-1 folds (train = inner-train AU-labelled samples, test = inner
      validation AU-labelled samples), indexed 0..n-1.
    of_fold: outer fold index -> stage-1 fold index.
    exclude: outer fold index -> subjects left out of its threshold choice.
    """

    folds: list[Fold]
    of_fold: dict[int, int]
    # outer fold index -> subjects whose rows are left out of the threshold choice (its
    # own test subjects, when its stage-1 model is a shared one that predicted them)
    exclude: dict[int, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def holdout_rows(self, outer_index: int, subject: np.ndarray) -> np.ndarray:
        """Rows of outer fold ``outer_index``'s threshold choice: its stage-1 model's
        held-out (inner-validation) rows without the fold's own test subjects, i.e.
        training rows of the outer fold whose AU labels stage 1 never saw."""
        rows = np.asarray(self.folds[self.of_fold[outer_index]].test_idx)
        drop = list(self.exclude.get(outer_index, ()))
        return rows[~np.isin(np.asarray(subject).astype(str)[rows], drop)]


def _split_seed(subjects: list[str], seed: int) -> int:
    h = hashlib.sha1(("|".join(subjects) + f"#{seed}").encode()).hexdigest()
    return int(h[:8], 16)


def part_strata(pretrain, samples) -> np.ndarray | None:
    """The per-sample groups ``plan_pretraining`` balances its parts over under a
    config's ``pretrain`` section: the source datasets for ``part_balance=dataset``,
    None (random parts) for ``none`` or a config saved before the option existed."""
    return np.asarray(samples.dataset) if str(pretrain.get("part_balance", "none")) == "dataset" else None


def balanced_parts(subject: np.ndarray, stratum: np.ndarray, k: int, seed: int) -> dict[str, int]:
    """{subject: part 0..k-1} with every stratum's samples spread evenly over the parts.

    A shared stage-1 model is trained on k−1 parts and tested on one; when the parts
    differ in their mix of source datasets (one of five random parts of the composite
    held 71 CASME II and 15 SAMM samples, another 4 and 38), each model learns on another
    mix and puts its AU scores on another scale, which pooling over parts then mixes.
    Here, stratum by stratum (sorted), subjects in decreasing number of samples (a seeded
    order among equals) go to the part holding the fewest samples of that stratum so far
    (then the fewest samples overall, then the lowest index): within a stratum the parts
    differ by at most one subject's samples.

    subject, stratum: (n,) per sample (the AU-labelled samples); a subject's stratum is
      that of its first sample."""
    subject = np.asarray(subject).astype(str)
    stratum = np.asarray(stratum).astype(str)
    subs = sorted(set(subject.tolist()))
    count = {x: int(n) for x, n in zip(*np.unique(subject, return_counts=True))}
    first: dict[str, str] = {}
    for x, g in zip(subject.tolist(), stratum.tolist()):
        first.setdefault(x, g)
    tie = np.random.default_rng(_split_seed(subs, seed)).permutation(len(subs))
    rank = {x: int(r) for x, r in zip(subs, tie)}
    total = np.zeros(k, int)
    part_of: dict[str, int] = {}
    for g in sorted(set(first.values())):
        in_g = np.zeros(k, int)
        for x in sorted((x for x in subs if first[x] == g), key=lambda x: (-count[x], rank[x])):
            j = min(range(k), key=lambda j: (in_g[j], total[j], j))
            part_of[x] = j
            in_g[j] += count[x]
            total[j] += count[x]
    return part_of


def plan_pretraining(
    folds: list[Fold],
    subject: np.ndarray,
    au_mask: np.ndarray,
    val_fraction: float = 0.2,
    seed: int = 0,
    subject_folds: int = 0,
    strata: np.ndarray | None = None,
) -> PretrainPlan:
    """Stage-1 folds: one per distinct set of AU-labelled training samples, or (with
    ``subject_folds`` ≥ 2) k shared ones on a subject k-fold of the AU-labelled
    subjects, used by every outer fold they fit (see the module docstring).

    strata: (n,) group of every sample (e.g. its source dataset), or None. With it the
      k parts are balanced per group (``balanced_parts``); without it subjects are dealt
      to the parts in a seeded random order."""
    labelled = np.asarray(au_mask).sum(1) > 0
    subject = np.asarray(subject).astype(str)
    by_key: dict[tuple, int] = {}
    pre: list[Fold] = []
    of_fold: dict[int, int] = {}
    exclude: dict[int, tuple[str, ...]] = {}
    part_of: dict[str, int] = {}
    if subject_folds >= 2:
        subs = sorted(set(subject[labelled].tolist()))
        if len(subs) < subject_folds:
            raise UserError(f"pretrain.subject_folds {subject_folds}: only {len(subs)} subjects carry AU labels")
        if strata is None:
            order = np.random.default_rng(_split_seed(subs, seed)).permutation(len(subs))
            for rank, i in enumerate(order):
                part_of[subs[i]] = rank % subject_folds
        else:
            part_of = balanced_parts(subject[labelled], np.asarray(strata).astype(str)[labelled], subject_folds, seed)
            if len(set(part_of.values())) < subject_folds:  # not reached with >= k subjects; a guard
                raise UserError(f"pretrain.part_balance: {subject_folds} balanced parts leave one empty")
        all_idx = np.flatnonzero(labelled)
        in_part = np.array([part_of[x] for x in subject[all_idx]])
        for j in range(subject_folds):
            part_subs = tuple(sorted(x for x, p in part_of.items() if p == j))
            pre.append(Fold(j, f"pre{j:03d}_part{j}", all_idx[in_part != j], all_idx[in_part == j], part_subs))
    for f in folds:
        test_subs = sorted(set(subject[np.asarray(f.test_idx)[labelled[f.test_idx]]].tolist()))
        parts = {part_of[x] for x in test_subs if x in part_of}
        if len(parts) == 1:
            j = parts.pop()
            if np.isin(pre[j].train_idx, f.train_idx).all():
                of_fold[f.index] = j
                exclude[f.index] = tuple(test_subs)
                continue
        train = np.asarray(f.train_idx)[labelled[f.train_idx]]
        if len(train) == 0:
            raise ValueError(f"AU pre-training: fold {f.name} has no AU-labelled training sample")
        key = tuple(train.tolist())
        if key not in by_key:
            subs = sorted(set(subject[train].tolist()))
            n_val = int(round(val_fraction * len(subs))) if len(subs) > 1 else 0
            n_val = min(max(n_val, 1 if len(subs) > 1 and val_fraction > 0 else 0), len(subs) - 1)
            rng = np.random.default_rng(_split_seed(subs, seed))
            val_subs = set(rng.choice(subs, n_val, replace=False).tolist()) if n_val else set()
            is_val = np.array([s in val_subs for s in subject[train]])
            j = len(pre)
            pre.append(Fold(j, f"pre{j:03d}_{f.name}", train[~is_val], train[is_val], tuple(sorted(val_subs))))
            by_key[key] = j
        of_fold[f.index] = by_key[key]
    return PretrainPlan(pre, of_fold, exclude)


def choose_thresholds(
    au_true: np.ndarray, au_mask: np.ndarray, prob: np.ndarray, grid: np.ndarray = THRESHOLD_GRID, centre: float = 0.5
) -> np.ndarray:
    """Per-AU threshold (12,) maximising F1 on validation scores over ``grid``
    (probabilities by default; ties: the one nearest ``centre``); ``centre`` for an AU
    without a known positive among the validation samples."""
    t = np.asarray(au_true) > 0.5
    m = np.asarray(au_mask) > 0
    prob = np.asarray(prob)
    grid = np.asarray(grid)
    out = np.full(t.shape[1], centre, np.float32)
    for j in range(t.shape[1]):
        mj = m[:, j]
        pos = t[mj, j]
        if not pos.any():
            continue
        p = prob[mj, j][:, None] >= grid[None, :]
        tp = (p & pos[:, None]).sum(0)
        fp = (p & ~pos[:, None]).sum(0)
        fn = (~p & pos[:, None]).sum(0)
        f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
        best = np.flatnonzero(f1 == f1.max())
        out[j] = grid[best[np.argmin(np.abs(grid[best] - centre))]]
    return out


def thresholds_from_predictions(
    pred: dict, au: np.ndarray, au_mask: np.ndarray, keep: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """{head: (12,) thresholds} from a stage-1 fold's stored validation predictions;
    ``keep`` (n,) bool selects the rows to use (default all); 0.5 everywhere when no
    validation row is left."""
    idx = np.asarray(pred["test_idx"])
    keep = np.ones(len(idx), bool) if keep is None else np.asarray(keep, bool)
    if not keep.any():
        return {h: np.full(au.shape[1], 0.5, np.float32) for h in HEADS}
    idx = idx[keep]
    return {h: choose_thresholds(au[idx], au_mask[idx], np.asarray(pred[f"au_prob_{h}"])[keep]) for h in HEADS}


def run_pretraining(
    programs,
    data,
    samples,
    folds: list[Fold],
    prior_fn,
    workdir: Path,
    model_meta: dict,
    fingerprint: str,
    val_fraction: float,
    seed: int,
    show_progress: bool = True,
    hooks=None,
    subject_folds: int = 0,
    strata: np.ndarray | None = None,
):
    """Stage 1 for ``folds``. Returns (load, {outer fold index: {head: thresholds (12,)}},
    plan), where load(outer fold) -> (params, batch_stats) of its stage-1 model (read
    from disk when asked: one model in memory at a time).

    programs: ``FoldPrograms`` with the stage-1 settings (α = (0, 1, 1), its epochs and
    learning rate); prior_fn(train_idx) -> D of a stage-1 fold's training samples;
    strata: (n,) per-sample groups the shared parts are balanced over (see
    ``plan_pretraining``), or None."""
    from fedpsyau_jax.training.checkpoints import restore_checkpoint
    from fedpsyau_jax.training.fold_training import (
        MODEL_CHECKPOINT,
        PREDICTIONS_FILE,
        fold_dir,
        model_variables,
        run_folds,
    )

    plan = plan_pretraining(folds, samples.subject, samples.au_mask, val_fraction, seed, subject_folds, strata)
    pre_dir = Path(workdir) / "au_pretrain"
    # Only the stage-1 models of outer folds still to train are needed. A stage-1 fold
    # whose predictions survive but whose model does not (e.g. only the small
    # predictions were kept) is trained again.
    todo = sorted({plan.of_fold[f.index] for f in folds if not (fold_dir(workdir, f) / PREDICTIONS_FILE).is_file()})
    needed = [plan.folds[j] for j in todo]
    for f in needed:
        if not (fold_dir(pre_dir, f) / MODEL_CHECKPOINT).is_dir():
            (fold_dir(pre_dir, f) / PREDICTIONS_FILE).unlink(missing_ok=True)
    priors = {f.index: prior_fn(f.train_idx) for f in needed}
    results = (
        run_folds(
            programs,
            data,
            samples.label,
            needed,
            priors,
            pre_dir,
            {**model_meta, "stage": "au_pretrain"},
            fingerprint,
            hooks=hooks,
            show_progress=show_progress,
        )
        if needed
        else {}
    )
    subject = np.asarray(samples.subject).astype(str)
    thresholds = {}
    for f in folds:
        j = plan.of_fold[f.index]
        if j not in results:
            continue
        pred = results[j]
        keep = ~np.isin(subject[np.asarray(pred["test_idx"])], list(plan.exclude.get(f.index, ())))
        thresholds[f.index] = thresholds_from_predictions(pred, samples.au, samples.au_mask, keep)
    import jax

    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), model_variables(programs.abstract_states(1))
    )

    def load(outer: Fold) -> tuple[dict, dict]:
        v, _ = restore_checkpoint(fold_dir(pre_dir, plan.folds[plan.of_fold[outer.index]]), MODEL_CHECKPOINT, target)
        return v["params"], v["batch_stats"]

    return load, thresholds, plan
