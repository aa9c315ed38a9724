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


def fit_heads_on_holdout(
    evaluate, states, data: dict, held: list[np.ndarray], real: int, eval_batch_size: int, beta
) -> tuple[dict[int, dict[str, np.ndarray]], dict[int, dict[str, np.ndarray]]]:
    """Per-AU Platt maps of every fold's final heads, fitted on its held-out rows.

    ``evaluate`` is the chunk's compiled eval program (same batch shape as the test
    pass, so nothing recompiles); ``held`` gives each chunk member's held-out rows (the
    first ``real`` members are real folds). Returns ({member: {head: (12, 2) map}},
    {member: {head: (m, 12) raw head probabilities on its held-out rows}}) for the
    members that have held-out rows."""
    from fedpsyau_jax.training.batching import eval_plan, stack_plans

    platt: dict[int, dict[str, np.ndarray]] = {}
    held_prob: dict[int, dict[str, np.ndarray]] = {}
    n_cal = max(max(1, -(-len(h) // eval_batch_size)) for h in held)
    cidx, cmask = stack_plans([eval_plan(h, eval_batch_size, n_cal) for h in held])
    cout = evaluate(states, data, cidx, cmask, beta)
    au_host, mask_host = np.asarray(data["au"]), np.asarray(data["au_mask"])
    for k in range(real):
        if len(held[k]):
            platt[k], held_prob[k] = {}, {}
            for head in ("gat", "afe"):
                p = np.asarray(cout[f"au_prob_{head}"][k]).reshape(-1, 12)[: len(held[k])]
                held_prob[k][head] = p
                platt[k][head] = fit_platt(logit(p), au_host[held[k]], mask_host[held[k]])
    return platt, held_prob


def calibrate_predictions(
    pred: dict[str, np.ndarray], maps: dict[str, np.ndarray], held: np.ndarray, held_prob: dict[str, np.ndarray]
) -> None:
    """A fold's stored predictions with its heads calibrated, in place: the maps, the
    held-out rows and their raw probabilities are kept; ``au_prob_*`` become the
    calibrated probabilities (the uncalibrated ones stay as ``au_prob_uncal_*``) and
    ``au_pred_*`` decide them at 0.5."""
    pred["au_holdout_idx"] = held
    for head, ab in maps.items():
        pred[f"au_platt_{head}"] = ab
        pred[f"au_holdout_prob_{head}"] = held_prob[head]
        if f"au_prob_{head}" in pred:
            pred[f"au_prob_uncal_{head}"] = pred[f"au_prob_{head}"]
            pred[f"au_prob_{head}"] = apply_platt(pred[f"au_prob_{head}"], ab)
            pred[f"au_threshold_{head}"] = np.full(12, 0.5, np.float32)
            pred[f"au_pred_{head}"] = (pred[f"au_prob_{head}"] >= 0.5).astype(np.int8)
