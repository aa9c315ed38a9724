"""A linear AU detector on the raw flow: the floor the AU heads must clear.

Class-balanced, L2-regularised logistic regression per AU on the 28×28×3 flow pixels
(``flow28`` flattened, 2,352 features), each pixel standardised with the mean and
standard deviation of the training samples, nothing else. The objective is the usual
one (as in scikit-learn's ``LogisticRegression(class_weight="balanced")``):

    J(w, b) = ½‖w‖² + C · Σ_i s_i · log(1 + exp(−ỹ_i (w·x_i + b)))

with s_i = n / (2·n_class(i)) over the known labels of that AU (``au_mask``), the bias
unpenalised. With far fewer samples than pixels, w lies in the span of the training
samples (w = Xᵀα), so the fit is a Newton iteration on the n + 1 unknowns (α, b) with
the Gram matrix K = XXᵀ — exact, a few milliseconds per fold, jitted and vmapped over
the 12 AUs. Each Newton step tries four step lengths and keeps the best (damped Newton
always decreases J; the objective is strictly convex in w).

``fit_predict_probe`` is what ``fedpsyau report`` runs on the training samples
of every fold of a run, so the probe and the heads are scored on the same held-out
samples. Its regularisation C is chosen inside each fold (``choose_c``): the fold's
AU-labelled training subjects are split into inner-train and validation subjects (a
fifth, per source dataset), the probe is fitted on the first for every C of ``C_GRID``
and the C with the best mean AUC on the second is refitted on all of the fold's
training samples. No test subject takes part in the choice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NEWTON_STEPS = 40
#: Candidate regularisations of ``choose_c`` (C multiplies the data term: small C, strong L2).
C_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
STEP_LENGTHS = (1.0, 0.5, 0.25, 0.0625)
PAD = 64


def _objective(alpha, b, k, y, s, c):
    f = k @ alpha + b
    # log(1 + exp(-ỹ f)) with ỹ = ±1, written stably.
    yt = 2.0 * y - 1.0
    return 0.5 * alpha @ k @ alpha + c * jnp.sum(s * jax.nn.softplus(-yt * f))


def _fit_one(k, y, s, c):
    """Newton in (α, b) for one AU. k (n, n) Gram matrix, y (n,) {0,1}, s (n,) sample
    weights (0 for unknown labels). Returns (α (n,), b)."""
    n = k.shape[0]

    def step(_, carry):
        alpha, b = carry
        f = k @ alpha + b
        p = jax.nn.sigmoid(f)
        r = c * s * (p - y)  # dℓ/df, weighted
        w = c * s * p * (1.0 - p)  # d²ℓ/df²
        # Newton system premultiplied by K⁻¹ on the α block (no inverse needed):
        # [I + W K, W 1; 1ᵀ W K, 1ᵀ W 1] [Δα; Δb] = −[α + r; 1ᵀ r]
        top = jnp.concatenate([jnp.eye(n) + w[:, None] * k, w[:, None]], axis=1)
        bottom = jnp.concatenate([w @ k, jnp.sum(w, keepdims=True)])[None, :]
        h = jnp.concatenate([top, bottom], axis=0) + 1e-9 * jnp.eye(n + 1)
        g = jnp.concatenate([alpha + r, jnp.sum(r, keepdims=True)])
        delta = jnp.linalg.solve(h, -g)
        cands = [(alpha + t * delta[:n], b + t * delta[n]) for t in STEP_LENGTHS]
        vals = jnp.stack([_objective(a, bb, k, y, s, c) for a, bb in cands])
        best = jnp.argmin(jnp.concatenate([vals, _objective(alpha, b, k, y, s, c)[None]]))
        ts = jnp.asarray(STEP_LENGTHS + (0.0,))[best]
        return alpha + ts * delta[:n], b + ts * delta[n]

    return jax.lax.fori_loop(0, NEWTON_STEPS, step, (jnp.zeros(n, k.dtype), jnp.zeros((), k.dtype)))


@jax.jit
def _fit_predict(x_train, y, m, x_test, c):
    """x_train (n, d) standardised, y / m (n, A), x_test (t, d) -> probabilities (t, A)."""
    k = x_train @ x_train.T
    k_test = x_test @ x_train.T
    known = m > 0
    n_known = jnp.sum(known, axis=0)
    n_pos = jnp.sum(known & (y > 0.5), axis=0)
    n_neg = n_known - n_pos
    # class-balanced weights n / (2 n_c); a class absent from the fold gets weight 0
    w_pos = jnp.where(n_pos > 0, n_known / (2.0 * jnp.maximum(n_pos, 1)), 0.0)
    w_neg = jnp.where(n_neg > 0, n_known / (2.0 * jnp.maximum(n_neg, 1)), 0.0)
    s = jnp.where(known, jnp.where(y > 0.5, w_pos, w_neg), 0.0)
    alpha, b = jax.vmap(_fit_one, in_axes=(None, 1, 1, None), out_axes=(1, 0))(k, y, s, c)
    return jax.nn.sigmoid(k_test @ alpha + b)


def standardise(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Flatten (n, ...) arrays and standardise every feature with the training mean/std."""
    tr = np.asarray(train, np.float64).reshape(len(train), -1)
    mu, sd = tr.mean(0), tr.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    return tuple(((np.asarray(a, np.float64).reshape(len(a), -1) - mu) / sd) for a in (train, *others))


def fit_predict_probe(
    flow28_train: np.ndarray, au_train: np.ndarray, au_mask_train: np.ndarray, flow28_test: np.ndarray, c: float = 1.0
) -> np.ndarray:
    """AU probabilities (t, 12) of the linear probe trained on the training samples.

    flow28_* (n, 28, 28, 3); au_train / au_mask_train (n, 12). Only samples with at
    least one known AU are used for standardisation and fitting."""
    keep = np.asarray(au_mask_train).sum(1) > 0
    if not keep.any():
        raise ValueError("AU probe: no training sample has an AU label")
    xtr, xte = standardise(np.asarray(flow28_train)[keep], flow28_test)
    # Pad both sets to multiples of PAD rows (zero features, zero weight): one compiled
    # program serves every fold instead of one per training-set size.
    n, t = len(xtr), len(xte)
    pn, pt = -(-n // PAD) * PAD, -(-t // PAD) * PAD
    pad = lambda a, r: np.concatenate([a, np.zeros((r - len(a), *a.shape[1:]), a.dtype)])
    p = _fit_predict(
        jnp.asarray(pad(xtr, pn), jnp.float32),
        jnp.asarray(pad(np.asarray(au_train)[keep], pn), jnp.float32),
        jnp.asarray(pad(np.asarray(au_mask_train)[keep], pn), jnp.float32),
        jnp.asarray(pad(xte, pt), jnp.float32),
        jnp.float32(c),
    )
    return np.asarray(p, np.float32)[:t]


def _mean_auc(au, au_mask, prob) -> float:
    from fedpsyau_jax.training.metrics import au_detection_scores

    v = au_detection_scores(au, au_mask, prob)["mean_auc"]
    return float(v) if v == v else -1.0


def choose_c(flow28, au, au_mask, subjects, datasets=None, grid=C_GRID, val_fraction: float = 0.2, seed: int = 0):
    """The C of ``grid`` with the best mean AUC on validation subjects carved from the
    given (training) samples: per source dataset, ``val_fraction`` of its AU-labelled
    subjects (at least one where it has two or more), drawn with ``seed``. Ties go to
    the smaller C (the stronger regularisation). With fewer than two labelled subjects
    there is nothing to validate on: the middle of the grid."""
    keep = np.asarray(au_mask).sum(1) > 0
    subj = np.asarray(subjects).astype(str)[keep]
    ds = np.zeros(len(subj), str) if datasets is None else np.asarray(datasets).astype(str)[keep]
    rng = np.random.default_rng(seed)
    val: list[str] = []
    for d in sorted(set(ds.tolist())):
        group = np.array(sorted(set(subj[ds == d].tolist())))
        if len(group) >= 2:
            n = max(1, int(round(val_fraction * len(group))))
            val += list(group[rng.permutation(len(group))[:n]])
    is_val = np.isin(subj, val)
    if not is_val.any() or is_val.all():
        return float(grid[len(grid) // 2])
    x, y, m = np.asarray(flow28)[keep], np.asarray(au)[keep], np.asarray(au_mask)[keep]
    scores = [
        _mean_auc(y[is_val], m[is_val], fit_predict_probe(x[~is_val], y[~is_val], m[~is_val], x[is_val], c))
        for c in grid
    ]
    return float(grid[int(np.argmax(scores))])


# Bump when the probe's fit changes: part of the cache key of ``probe_predictions``.
PROBE_VERSION = "au-probe-v1"


def _probe_key(flow28, au, au_mask, folds, idx, c: float | str, subjects=None, datasets=None) -> str:
    import hashlib

    h = hashlib.sha256(f"{PROBE_VERSION} C={c!r}".encode())
    if c == "inner":  # the choice depends on the grid and on who is whom
        h.update(repr(C_GRID).encode())
        for a in (subjects, datasets):
            h.update("|".join(map(str, np.asarray(a).tolist())).encode() if a is not None else b"-")
    for a in (flow28, au, au_mask):
        h.update(np.ascontiguousarray(a, np.float32).tobytes())
    for f in folds:
        h.update(np.asarray(f.train_idx, np.int64).tobytes() + b"|" + np.asarray(f.test_idx, np.int64).tobytes() + b";")
    h.update(np.asarray(idx, np.int64).tobytes())
    return h.hexdigest()[:24]


def probe_predictions(
    flow28, au, au_mask, folds, idx, cache_dir=None, c: float | str = 1.0, subjects=None, datasets=None
) -> np.ndarray:
    """Held-out AU probabilities (len(idx), 12) of the probe, fitted per fold on that
    fold's training samples (only folds with AU-labelled test samples; other rows 0).
    ``c="inner"``: each fold's C chosen by ``choose_c`` on its own training subjects
    (``subjects``, ``datasets`` (N,) needed).

    flow28 (N, 28, 28, 3), au / au_mask (N, 12), ``folds`` with ``train_idx`` and
    ``test_idx``, ``idx`` the rows wanted. With ``cache_dir`` the result is kept as an
    .npz keyed by a hash of everything it depends on (flows, labels, masks, every fold's
    rows, ``idx``, C and ``PROBE_VERSION``), written atomically: a second report on the
    same folds does not fit the probes again, and changed inputs never reuse it."""
    from pathlib import Path

    from fedpsyau_jax.core.atomic_files import save_npz_atomic

    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"probe-{_probe_key(flow28, au, au_mask, folds, idx, c, subjects, datasets)}.npz"
        if path.is_file():
            try:
                with np.load(path) as z:
                    return z["prob"]
            except (OSError, ValueError, KeyError):  # unreadable: fit again and overwrite
                pass
    prob = np.zeros((len(au), 12), np.float32)
    if c == "inner" and subjects is None:
        raise ValueError('probe_predictions(c="inner") needs the subjects of the samples')
    for f in folds:
        if (np.asarray(au_mask)[f.test_idx].sum(1) > 0).any():
            tr = f.train_idx
            cf = (
                choose_c(
                    flow28[tr],
                    au[tr],
                    au_mask[tr],
                    np.asarray(subjects)[tr],
                    None if datasets is None else np.asarray(datasets)[tr],
                )
                if c == "inner"
                else float(c)
            )
            prob[f.test_idx] = fit_predict_probe(flow28[tr], au[tr], au_mask[tr], flow28[f.test_idx], cf)
    out = prob[np.asarray(idx)]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(path, {"prob": out})
    return out
