"""Classification metrics: confusion matrix, UF1, UAR (numpy, host side).

For LOSO the predictions of all folds are pooled first, then these are computed.
A class with no ground-truth sample in the pool is excluded from UF1/UAR and
reported in ``absent_classes``.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts, row = true class, column = predicted class."""
    y_true = np.asarray(y_true, np.int64).ravel()
    y_pred = np.asarray(y_pred, np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in length")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has labels outside 0..{num_classes - 1}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray) -> dict:
    """UF1, UAR, accuracy and per-class F1/recall from a confusion matrix."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    present = support > 0
    f1_den = 2 * tp + (predicted - tp) + (support - tp)
    f1 = np.where(f1_den > 0, 2 * tp / np.where(f1_den > 0, f1_den, 1), 0.0)
    recall = np.where(present, tp / np.where(present, support, 1), 0.0)
    n = cm.sum()
    return {
        "uf1": float(f1[present].mean()) if present.any() else float("nan"),
        "uar": float(recall[present].mean()) if present.any() else float("nan"),
        "accuracy": float(tp.sum() / n) if n else float("nan"),
        "f1_per_class": f1.tolist(),
        "recall_per_class": recall.tolist(),
        "absent_classes": [int(i) for i in np.nonzero(~present)[0]],
        "num_samples": int(n),
    }


def classification_scores(y_true, y_pred, num_classes: int) -> dict:
    cm = confusion_matrix(y_true, y_pred, num_classes)
    out = scores_from_confusion(cm)
    out["confusion"] = cm.tolist()
    return out


# ------------------------------------------------------------------ AU detection
def au_detection_scores(au_true, au_mask, au_prob, threshold: float = 0.5, au_names=None, decisions=None) -> dict:
    """Per-AU F1 (2TP / (2TP + FP + FN)) of thresholded AU probabilities, on the known
    entries only (``au_mask``), pooled over all given samples. AUs with no positive
    ground truth among the known entries are excluded from the mean and listed.

    ``decisions`` (same shape, {0,1}) replaces ``au_prob >= threshold`` for F1, e.g. the
    per-AU thresholds a run chose on its inner-validation subjects; ROC AUC always
    ranks ``au_prob``."""
    t = np.asarray(au_true) > 0.5
    m = np.asarray(au_mask) > 0
    p = np.asarray(au_prob) >= threshold if decisions is None else np.asarray(decisions) > 0
    tp = ((p & t) & m).sum(0)
    fp = ((p & ~t) & m).sum(0)
    fn = ((~p & t) & m).sum(0)
    den = 2 * tp + fp + fn
    f1 = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)
    positives = (t & m).sum(0)
    names = list(au_names) if au_names is not None else [str(i) for i in range(t.shape[1])]
    scored = positives > 0
    prob = np.asarray(au_prob, np.float64)
    auc = [_auc(prob[m[:, j], j], t[m[:, j], j]) for j in range(t.shape[1])]
    finite = [a for a in auc if np.isfinite(a)]
    return {
        "f1_per_au": {n: float(v) for n, v in zip(names, f1)},
        "auc_per_au": {n: float(a) for n, a in zip(names, auc)},
        "mean_auc": float(np.mean(finite)) if finite else float("nan"),
        "positives_per_au": {n: int(v) for n, v in zip(names, positives)},
        "mean_f1": float(f1[scored].mean()) if scored.any() else float("nan"),
        "excluded_aus": [n for n, s in zip(names, scored) if not s],
        "num_samples": int(m.any(1).sum()),
        "threshold": threshold if decisions is None else "per-AU",
    }


def au_within_subject_auc(au_true, au_mask, au_prob, subjects, au_names=None) -> dict:
    """ROC AUC per AU counted over (positive, negative) pairs of the SAME subject only.

    In a leave-one-subject-out run every test subject is scored by its own model, so a
    pooled AUC also compares scores of different models: a fold whose model outputs
    higher probabilities for everything lowers the pooled AUC though it ranks its own
    subject's samples perfectly. This AUC removes that between-model part; the gap
    between the two measures how much score scale differs between the fold models.
    Ties count one half. AUs without a within-subject pair are NaN and left out of the
    mean. Returns {"auc_per_au", "mean_auc", "pairs_per_au"}."""
    t = np.asarray(au_true) > 0.5
    m = np.asarray(au_mask) > 0
    prob = np.asarray(au_prob, np.float64)
    subjects = np.asarray(subjects).astype(str)
    names = list(au_names) if au_names is not None else [str(i) for i in range(t.shape[1])]
    won = np.zeros(t.shape[1])
    pairs = np.zeros(t.shape[1], np.int64)
    for s in np.unique(subjects):
        rows = subjects == s
        for j in range(t.shape[1]):
            pos = prob[rows & m[:, j] & t[:, j], j]
            neg = prob[rows & m[:, j] & ~t[:, j], j]
            if len(pos) and len(neg):
                d = pos[:, None] - neg[None, :]
                won[j] += (d > 0).sum() + 0.5 * (d == 0).sum()
                pairs[j] += d.size
    auc = np.where(pairs > 0, won / np.maximum(pairs, 1), np.nan)
    finite = auc[np.isfinite(auc)]
    return {
        "auc_per_au": {n: float(a) for n, a in zip(names, auc)},
        "mean_auc": float(finite.mean()) if finite.size else float("nan"),
        "pairs_per_au": {n: int(v) for n, v in zip(names, pairs)},
    }


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by ranks (ties share their mean rank); NaN without both classes."""
    score, positive = np.asarray(score), np.asarray(positive, bool)
    pos, n = int(positive.sum()), len(positive)
    if pos == 0 or pos == n:
        return float("nan")
    _, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    # mean rank of each distinct value = (first rank + last rank) / 2
    last = np.cumsum(counts)
    mean_rank = (last - counts + 1 + last) / 2.0
    ranks = mean_rank[inv.reshape(-1)]
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * (n - pos)))


def au_subject_bootstrap(
    au_true, au_mask, au_prob, subjects, au_pred=None, n: int = 1000, seed: int = 0, au_prob_b=None, au_pred_b=None
) -> dict:
    """95 % intervals of the mean ROC AUC and mean F1 of an AU detector, resampling
    SUBJECTS with replacement. ``au_pred`` (n, 12) {0,1} are the detector's decisions
    (default: probability ≥ 0.5). With ``au_prob_b`` (and ``au_pred_b``: a second
    detector on the same samples) the figures are of the paired difference a − b, each
    replicate scoring both on the same resampled subjects (as ``subject_bootstrap``).
    Returns {"mean_auc", "mean_auc_ci95", "mean_f1", "mean_f1_ci95", "replicates",
    "subjects", "paired"}."""
    au_true, au_mask = np.asarray(au_true), np.asarray(au_mask)
    detectors = [(au_prob, au_pred)] + ([(au_prob_b, au_pred_b)] if au_prob_b is not None else [])
    detectors = [(np.asarray(p), (np.asarray(p) >= 0.5) if d is None else np.asarray(d) > 0.5) for p, d in detectors]

    def score(idx):
        r = [au_detection_scores(au_true[idx], au_mask[idx], p[idx], decisions=d[idx]) for p, d in detectors]
        if len(r) == 2:
            return r[0]["mean_auc"] - r[1]["mean_auc"], r[0]["mean_f1"] - r[1]["mean_f1"]
        return r[0]["mean_auc"], r[0]["mean_f1"]

    n_subjects, resamples = subject_resamples(subjects, n, seed)
    reps = np.asarray([score(idx) for idx in resamples])
    point = score(np.arange(len(au_true)))
    return {
        "mean_auc": float(point[0]),
        "mean_auc_ci95": _ci95(reps[:, 0]),
        "mean_f1": float(point[1]),
        "mean_f1_ci95": _ci95(reps[:, 1]),
        "replicates": n,
        "subjects": n_subjects,
        "paired": au_prob_b is not None,
    }


# ------------------------------------------------------------------ bootstrap
def subject_resamples(subjects, n: int, seed: int = 0):
    """(number of subjects, iterator over ``n`` index arrays), each the samples of as many
    subjects drawn with replacement (samples of one subject are not independent)."""
    subjects = np.asarray(subjects).astype(str)
    uniq = np.unique(subjects)
    members = [np.nonzero(subjects == s)[0] for s in uniq]
    rng = np.random.default_rng(seed)
    draws = (np.concatenate([members[i] for i in rng.integers(0, len(uniq), len(uniq))]) for _ in range(n))
    return int(len(uniq)), draws


def _ci95(values: np.ndarray) -> list[float]:
    return [float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))]


def _uf1_uar(y, p, c):
    s = scores_from_confusion(confusion_matrix(y, p, c))
    return s["uf1"], s["uar"]


def subject_bootstrap(y_true, y_pred, subjects, num_classes: int, n: int = 2000, seed: int = 0, y_pred_b=None) -> dict:
    """95 % percentile intervals of pooled UF1/UAR, resampling SUBJECTS with replacement
    (samples of one subject are not independent). With ``y_pred_b`` (predictions of a
    second model on the same samples) the interval is of the paired difference
    a − b, each replicate scoring both models on the same resampled subjects."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n_subjects, resamples = subject_resamples(subjects, n, seed)
    reps = []
    for idx in resamples:
        a = _uf1_uar(y_true[idx], y_pred[idx], num_classes)
        if y_pred_b is not None:
            b = _uf1_uar(y_true[idx], np.asarray(y_pred_b)[idx], num_classes)
            a = (a[0] - b[0], a[1] - b[1])
        reps.append(a)
    rep = np.asarray(reps)
    point = _uf1_uar(y_true, y_pred, num_classes)
    if y_pred_b is not None:
        b = _uf1_uar(y_true, np.asarray(y_pred_b), num_classes)
        point = (point[0] - b[0], point[1] - b[1])
    return {
        "uf1": float(point[0]),
        "uf1_ci95": _ci95(rep[:, 0]),
        "uar": float(point[1]),
        "uar_ci95": _ci95(rep[:, 1]),
        "replicates": n,
        "subjects": n_subjects,
        "paired": y_pred_b is not None,
    }


# ------------------------------------------------------------------ several draws per arm
def _uf1_uar_rows(y, preds, c) -> np.ndarray:
    """(D, 2) UF1 and UAR of each row of ``preds`` (D, n) against ``y`` (n,)."""
    return np.array([_uf1_uar(y, p, c) for p in preds])


def draws_bootstrap(y_true, preds_a, subjects, num_classes: int, n: int = 2000, seed: int = 0, preds_b=None) -> dict:
    """Mean pooled UF1/UAR over draws (seeds) of one arm, or the paired difference of
    two arms' means, with a 95 % interval that accounts for both sources of variation:
    each replicate resamples the SUBJECTS with replacement and, independently, the
    DRAWS with replacement, then averages the scores of the resampled draws on the
    resampled subjects (two-stage bootstrap).

    preds_a, preds_b: (D, n) predictions of D draws on the same n samples. With
      ``preds_b`` the two arms' draws are paired by row (the same seed: same inner
      splits) and must have the same D; each replicate draws the same rows of both.
    Returns uf1 / uar (point: mean over draws, or its difference), *_ci95, and
    per_draw (D, 2) (each draw's own UF1, UAR, or difference), the spread of single
    draws (sd, min, max of UF1) and, for a difference, the share of draws above 0.
    """
    y = np.asarray(y_true)
    a = np.atleast_2d(np.asarray(preds_a))
    b = None if preds_b is None else np.atleast_2d(np.asarray(preds_b))
    if b is not None and b.shape != a.shape:
        raise ValueError(f"paired draws need equal shapes, got {a.shape} and {b.shape}")

    def per_draw(idx):
        s = _uf1_uar_rows(y[idx], a[:, idx], num_classes)
        return s if b is None else s - _uf1_uar_rows(y[idx], b[:, idx], num_classes)

    full = per_draw(np.arange(len(y)))
    n_subjects, resamples = subject_resamples(subjects, n, seed)
    rng = np.random.default_rng([seed, 1])
    reps = np.array([per_draw(idx)[rng.integers(0, len(a), len(a))].mean(0) for idx in resamples])
    out = {
        "uf1": float(full[:, 0].mean()),
        "uf1_ci95": _ci95(reps[:, 0]),
        "uar": float(full[:, 1].mean()),
        "uar_ci95": _ci95(reps[:, 1]),
        "draws": int(len(a)),
        "per_draw": full.tolist(),
        "uf1_sd": float(full[:, 0].std(ddof=1)) if len(a) > 1 else 0.0,
        "uf1_min": float(full[:, 0].min()),
        "uf1_max": float(full[:, 0].max()),
        "replicates": n,
        "subjects": n_subjects,
        "paired": b is not None,
    }
    if b is not None:
        out["share_above_zero"] = float((full[:, 0] > 0).mean())
    return out
