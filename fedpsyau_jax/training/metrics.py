"""Classification metrics of SPEC §6: confusion matrix, UF1, UAR (numpy, host side).

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
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


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
