"""Evaluation protocols: fold definitions, per-fold priors, pooled scores.

A protocol turns the subject ids of a dataset into a list of ``Fold``s (train and
test sample indices, subject-disjoint). ``make_folds`` is the single entry point:

    loso      one fold per subject (MEGC2019 composite, CAS(ME)³)
    kfold     subject-independent k folds: subjects shuffled with ``split_seed`` and
              dealt into k groups (DFME: k=10, shuffle, seed 1)
    all       one "fold" that trains on every sample and tests on none (used for the
              exported ``final_model`` and for AU pre-training)
    leave_dataset_out
              one fold per source dataset (sorted by name): train on every other
              source dataset, test on all of this one's subjects — a new database,
              camera and population, never seen in training (composite data only)
    inner_val validation folds for choosing settings WITHOUT touching test subjects:
              ``inner_outer`` outer LOSO folds (drawn with ``split_seed``) each drop
              their test subject entirely and split the remaining (training) subjects
              into inner-train and validation subjects (``val_fraction`` of each source
              dataset's subjects). A config's settings are chosen on these, then the
              real protocol runs once.

``fold_prior`` computes the data prior D (AU co-occurrence) from a fold's TRAINING samples
only (or returns a named preset). ``pooled_report`` pools the test predictions of
all folds and computes UF1/UAR (MEGC practice), plus per-fold and per-dataset
breakdowns and confusion matrices.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fedpsyau_jax.training.metrics import classification_scores
from fedpsyau_jax.network.priors import PRIOR_PRESETS, cooccurrence_prior

PROTOCOLS = ("loso", "kfold", "all", "inner_val", "leave_dataset_out")
PRIOR_SOURCES = ("fold_train", *PRIOR_PRESETS)


@dataclasses.dataclass(frozen=True)
class Fold:
    """One train/test split.

    index: position in the protocol's fold list (the fold's PRNG stream is a function
      of (seed, index) only, so sequential and vectorised runs agree).
    name: e.g. "sub01" for LOSO, "fold03" for k-fold, "all" for train-on-everything.
    train_idx, test_idx: int64 sample indices (subject-disjoint; test may be empty).
    test_subjects: subject ids tested in this fold.
    """

    index: int
    name: str
    train_idx: np.ndarray
    test_idx: np.ndarray
    test_subjects: tuple[str, ...]


def loso_folds(subjects) -> list[Fold]:
    """Leave-one-subject-out, folds ordered by sorted subject id."""
    subjects = np.asarray(subjects).astype(str)
    all_idx = np.arange(len(subjects))
    folds = []
    for i, s in enumerate(sorted(np.unique(subjects))):
        test = all_idx[subjects == s]
        folds.append(Fold(i, str(s), all_idx[subjects != s], test, (str(s),)))
    return folds


def kfold_subject_folds(subjects, k: int, shuffle: bool = True, seed: int = 1) -> list[Fold]:
    """Subject-independent k-fold: the sorted unique subjects (shuffled with
    ``np.random.default_rng(seed)`` if ``shuffle``) are split into k near-equal groups
    (``np.array_split``); every sample of a subject lands in the same test fold."""
    subjects = np.asarray(subjects).astype(str)
    uniq = np.array(sorted(np.unique(subjects)))
    if not 2 <= k <= len(uniq):
        raise ValueError(f"k-fold needs 2 <= k <= number of subjects ({len(uniq)}), got k={k}")
    if shuffle:
        uniq = uniq[np.random.default_rng(seed).permutation(len(uniq))]
    all_idx = np.arange(len(subjects))
    folds = []
    for i, group in enumerate(np.array_split(uniq, k)):
        in_test = np.isin(subjects, group)
        folds.append(Fold(i, f"fold{i:02d}", all_idx[~in_test], all_idx[in_test], tuple(str(g) for g in sorted(group))))
    return folds


def leave_dataset_out_folds(subjects, datasets) -> list[Fold]:
    """One fold per source dataset (sorted): test on all of its samples, train on every
    other dataset's. Subjects are matched by id, so a subject id found in two datasets
    is refused rather than silently split between train and test."""
    subjects = np.asarray(subjects).astype(str)
    if datasets is None:
        raise ValueError("leave_dataset_out needs each sample's source dataset")
    datasets = np.asarray(datasets).astype(str)
    names = sorted(np.unique(datasets))
    if len(names) < 2:
        raise ValueError(f"leave_dataset_out needs at least 2 source datasets, found {', '.join(map(str, names))}")
    for s in np.unique(subjects):
        ds = np.unique(datasets[subjects == s])
        if len(ds) > 1:
            raise ValueError(f"leave_dataset_out: subject {str(s)!r} occurs in several datasets ({', '.join(ds)})")
    all_idx = np.arange(len(subjects))
    folds = []
    for i, d in enumerate(names):
        test = all_idx[datasets == d]
        folds.append(Fold(i, str(d), all_idx[datasets != d], test, tuple(sorted(np.unique(subjects[test])))))
    return folds


def all_data_fold(num_samples: int, index: int) -> Fold:
    """Train on every sample, test on none (``final_model`` export, pre-training)."""
    return Fold(index, "all", np.arange(num_samples), np.zeros(0, np.int64), ())


def inner_validation_folds(
    subjects, datasets=None, inner_outer: int = 2, val_fraction: float = 0.2, seed: int = 1
) -> list[Fold]:
    """Validation folds carved from the training subjects of ``inner_outer`` outer LOSO
    folds (see the module docstring). Fold i: name ``<outer subject>-val``, train on the
    inner-train subjects, test on the validation subjects; the outer test subject is in
    neither. Validation subjects are drawn per source dataset (``datasets`` (N,)), so
    each dataset is represented."""
    subjects = np.asarray(subjects).astype(str)
    datasets = np.zeros(len(subjects), str) if datasets is None else np.asarray(datasets).astype(str)
    uniq = np.array(sorted(np.unique(subjects)))
    if not 1 <= inner_outer <= len(uniq):
        raise ValueError(f"inner_val needs 1 <= inner_outer <= number of subjects ({len(uniq)})")
    rng = np.random.default_rng(seed)
    outers = uniq[rng.permutation(len(uniq))[:inner_outer]]
    all_idx = np.arange(len(subjects))
    ds_of = {s: datasets[subjects == s][0] for s in uniq}
    folds = []
    for i, outer in enumerate(outers):
        rest = [s for s in uniq if s != outer]
        val = []
        for d in sorted({ds_of[s] for s in rest}):
            group = np.array([s for s in rest if ds_of[s] == d])
            n = max(1, int(round(val_fraction * len(group))))
            val += list(group[rng.permutation(len(group))[:n]])
        in_val = np.isin(subjects, val)
        train = all_idx[~in_val & (subjects != outer)]
        folds.append(Fold(i, f"{outer}-val", train, all_idx[in_val], tuple(sorted(val))))
    return folds


def make_folds(
    protocol: str,
    subjects,
    k: int = 10,
    shuffle: bool = True,
    split_seed: int = 1,
    datasets=None,
    inner_outer: int = 2,
    val_fraction: float = 0.2,
) -> list[Fold]:
    if protocol == "loso":
        return loso_folds(subjects)
    if protocol == "leave_dataset_out":
        return leave_dataset_out_folds(subjects, datasets)
    if protocol == "inner_val":
        return inner_validation_folds(subjects, datasets, inner_outer, val_fraction, split_seed)
    if protocol == "kfold":
        return kfold_subject_folds(subjects, k, shuffle, split_seed)
    if protocol == "all":
        return [all_data_fold(len(subjects), 0)]
    raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def folds_from_config(cfg, samples) -> list[Fold]:
    """The folds of ``cfg.protocol`` for ``samples`` (an ``MESamples``)."""
    p = cfg.protocol
    return make_folds(
        p.kind,
        samples.subject,
        k=int(p.get("k", 10)),
        shuffle=bool(p.get("shuffle", True)),
        split_seed=int(p.get("split_seed", 1)),
        datasets=samples.dataset,
        inner_outer=int(p.get("inner_outer", 2)),
        val_fraction=float(p.get("val_fraction", 0.2)),
    )


def fold_prior(source: str, au: np.ndarray, au_mask: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
    """D (12, 12) for one fold: co-occurrence of the fold's training AU labels only
    (``fold_train``), or a preset of ``priors.PRIOR_PRESETS`` (e.g. ``reference_dfme``).

    With no AU labels among the training samples, ``fold_train`` gives the identity
    (no evidence of co-occurrence); configs for AU-less data should use a preset.
    """
    if source == "fold_train":
        return cooccurrence_prior(np.asarray(au)[train_idx], np.asarray(au_mask)[train_idx])
    if source in PRIOR_PRESETS:
        return PRIOR_PRESETS[source]()
    raise ValueError(f"unknown prior source {source!r}; choose from {', '.join(PRIOR_SOURCES)}")


def pooled_report(
    labels: np.ndarray,
    preds: np.ndarray,
    fold_of: np.ndarray,
    dataset_of: np.ndarray,
    fold_names: list[str],
    class_names: tuple[str, ...],
) -> dict:
    """Scores of pooled test predictions.

    labels, preds, fold_of, dataset_of: (N,) one entry per tested sample.
    Returns {"pooled": scores, "per_dataset": {name: scores}, "per_fold": {name: scores}},
    scores as in ``metrics.classification_scores`` (uf1, uar, accuracy, confusion, ...).
    Per-fold scores of LOSO are noisy (one subject, often one or two classes) and are
    given for inspection only; the protocol's number is the pooled one.
    """
    c = len(class_names)
    out = {"class_names": list(class_names), "pooled": classification_scores(labels, preds, c)}
    out["per_dataset"] = {
        str(d): classification_scores(labels[dataset_of == d], preds[dataset_of == d], c)
        for d in sorted(np.unique(dataset_of))
    }
    out["per_fold"] = {
        fold_names[f]: classification_scores(labels[fold_of == f], preds[fold_of == f], c)
        for f in sorted(np.unique(fold_of))
    }
    return out
