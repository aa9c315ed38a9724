"""Per-model calibration of the AU heads on subjects held out of their AU supervision.

Every LOSO fold trains its own network, and each network's AU logits come on their own
scale: the heads' pooled AUC sits below their within-subject AUC (benchmarks/RESULTS.md,
"Where the between-model gap sits"). ``pretrain.au_calibration = "platt"`` tries to
align them: the AU labels of the subjects that stage 1 held out for its thresholds
(``PretrainPlan.holdout_rows``) are masked out of stage 2 as well (their emotion labels
still train), and after the fixed last epoch each fold's final heads are mapped, per
AU, by an affine map of the logit fitted on those subjects:

    p = sigmoid(a · z + b),   z = logit of the head's probability

fitted by a class-balanced log-loss (positives and negatives carry equal total weight,
as in the balanced BCE the heads are trained with, so the decision threshold is 0.5,
the probe's rule) plus a ridge pull ``ridge · ((a − 1)² + b²)`` towards the identity,
which keeps the map finite on separable or tiny sets. An AU without both a positive
and a negative among the held-out samples keeps the identity. ``a`` is floored at
``A_MIN`` so the map never reverses a head's ranking.

Measured on the composite LOSO it does not help: with about 9 held-out subjects (about
6 positives per AU) the maps are noisier than the scale differences they remove, and
head B's pooled AUC fell from 0.819 to 0.807. The recipe keeps ``thresholds``.
"""

from __future__ import annotations

import numpy as np

A_MIN = 0.05
RIDGE = 1.0  # a priori: about one pseudo-sample's weight against the identity
_EPS = 1e-7
_IDENTITY = np.array([1.0, 0.0])  # (a, b) of the map that changes nothing


def logit(prob: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(prob, np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _balanced_loss(theta: np.ndarray, X: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float) -> float:
    """Class-balanced log-loss of scores ``X @ theta`` plus a ridge pull towards the identity."""
    s = X @ theta
    # softplus(s) - y s, written stably
    return float(w @ (np.logaddexp(0.0, s) - y * s) + ridge * ((theta - _IDENTITY) ** 2).sum())


def _fit_one(x: np.ndarray, y: np.ndarray, ridge: float, iters: int) -> np.ndarray:
    """(a, b) for one AU: Newton's method with backtracking on the penalised balanced loss."""
    n_pos, n_neg = y.sum(), (1 - y).sum()
    w = np.where(y > 0, len(y) / (2 * n_pos), len(y) / (2 * n_neg))
    X = np.stack([x, np.ones_like(x)], 1)
    theta = _IDENTITY.copy()
    f = _balanced_loss(theta, X, y, w, ridge)
    for _ in range(iters):
        p = np.exp(-np.logaddexp(0.0, -(X @ theta)))
        grad = X.T @ (w * (p - y)) + 2 * ridge * (theta - _IDENTITY)
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + 2 * ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        lr = 1.0  # backtracking: a full Newton step can overshoot on logistic losses
        while lr > 1e-8 and _balanced_loss(theta - lr * step, X, y, w, ridge) > f:
            lr /= 2
        theta = theta - lr * step
        f_new = _balanced_loss(theta, X, y, w, ridge)
        converged = f - f_new < 1e-12 * max(1.0, abs(f))
        f = f_new
        if converged:
            break
    theta[0] = max(theta[0], A_MIN)
    return theta


def fit_platt(z: np.ndarray, au: np.ndarray, au_mask: np.ndarray, ridge: float = RIDGE, iters: int = 50) -> np.ndarray:
    """(12, 2) per-AU (a, b) fitted on logits ``z`` (n, 12) against labels ``au`` (n, 12)
    where ``au_mask`` (n, 12) is set; identity rows where an AU lacks a positive or a
    negative. Newton's method on the (strictly convex) penalised balanced log-loss."""
    z = np.asarray(z, np.float64)
    t = np.asarray(au) > 0.5
    m = np.asarray(au_mask) > 0
    out = np.tile(_IDENTITY, (z.shape[1], 1))
    for j in range(z.shape[1]):
        x, y = z[m[:, j], j], t[m[:, j], j].astype(np.float64)
        if y.sum() == 0 or (1 - y).sum() == 0:
            continue
        out[j] = _fit_one(x, y, ridge, iters)
    return out.astype(np.float32)


def apply_platt(prob: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Calibrated probabilities (n, 12) of head probabilities ``prob`` (n, 12)."""
    params = np.asarray(params, np.float64)
    s = logit(prob) * params[:, 0] + params[:, 1]
    return (1 / (1 + np.exp(-s))).astype(np.float32)
