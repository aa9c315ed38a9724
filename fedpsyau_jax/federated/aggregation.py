"""Server-side reductions over the stacked client axis, per federation group.

Every function takes a stacked ``ClientUpload`` (leaves (C, …)), ``groups`` (C,) int32
(which federation each row belongs to: the seed of the 10 repeats, all zeros for one
federation) and the static ``num_groups``; rows of different groups never mix, so G
independent federations aggregate in one call and equal G separate calls (tested).
All are pure and jit-able; shapes never depend on data values.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fedpsyau_jax.federated.upload import ClientUpload


def _bshape(w: jax.Array, x: jax.Array) -> jax.Array:
    """Weights (C,) reshaped to broadcast against a leaf (C, …)."""
    return w.reshape(w.shape + (1,) * (x.ndim - 1)).astype(x.dtype)


def group_totals(tree: Any, weights: jax.Array, groups: jax.Array, num_groups: int) -> Any:
    """Σ_{i in g} w_i·x_i for each group, gathered back to rows: leaves (C, …)."""

    def leaf(x):
        s = jax.ops.segment_sum(_bshape(weights, x) * x, groups, num_segments=num_groups)
        return s[groups]

    return jax.tree.map(leaf, tree)


def weighted_mean(tree: Any, weights: jax.Array, groups: jax.Array, num_groups: int) -> Any:
    """Per-group weighted mean Σ w_i x_i / Σ w_i, broadcast back to every row (C, …)."""
    wsum = jax.ops.segment_sum(weights, groups, num_segments=num_groups)[groups]
    totals = group_totals(tree, weights, groups, num_groups)
    return jax.tree.map(lambda t: t / _bshape(wsum, t), totals)


def fedavg_params(upload: ClientUpload, groups: jax.Array, num_groups: int) -> tuple[Any, Any]:
    """FedAvg: W = Σ n_i W_i / Σ n per group, for params and BN statistics
    (whatever of them the upload carries; ``None`` parts stay ``None``)."""
    n = upload.num_samples
    return (
        weighted_mean(upload.params, n, groups, num_groups),
        weighted_mean(upload.batch_stats, n, groups, num_groups),
    )


def pfedprox_totals(params: Any, num_samples: jax.Array, groups: jax.Array, num_groups: int) -> dict:
    """Server half of P-FedProx (deployment form): per group only the weighted
    sum S_g = Σ_{j in g} n_j Ŵ_j and N_g = Σ_{j in g} n_j, gathered back to rows —
    exactly what FedAvg computes (and all that secure aggregation reveals)."""
    n = num_samples.astype(jnp.float32)
    return {
        "sum": group_totals(params, n, groups, num_groups),
        "count": jax.ops.segment_sum(n, groups, num_segments=num_groups)[groups],
    }


def pfedprox_combine(
    params: Any, num_samples: jax.Array, totals: dict, theta: float | jax.Array, contribution: Any = None
) -> Any:
    """Client half of P-FedProx: W_i = θ·Ŵ_i + (1−θ)·(S − n_i c_i)/(N − n_i), from the
    client's own Ŵ_i, n_i and the server's (S, N) (rows: leaves (C, …)); c_i is what the
    client put into S: Ŵ_i itself, or under DP its clipped version (``contribution``).
    A client alone in its group has no one to mix with and keeps Ŵ_i."""
    n = num_samples.astype(jnp.float32)
    theta = jnp.asarray(theta, jnp.float32)
    n_others = totals["count"].astype(jnp.float32) - n
    alone = n_others <= 0
    if contribution is None:
        contribution = params

    def leaf(w, c, s):
        others = (s - _bshape(n, c) * c) / _bshape(jnp.where(alone, 1.0, n_others), w)
        mixed = theta.astype(w.dtype) * w + (1 - theta).astype(w.dtype) * others
        return jnp.where(_bshape(alone, w) > 0, w, mixed)

    return jax.tree.map(leaf, params, contribution, totals["sum"])


def pfedprox_mix(
    params: Any, num_samples: jax.Array, groups: jax.Array, num_groups: int, theta: float | jax.Array
) -> Any:
    """P-FedProx start points (paper eq. 6), one per row:

        W_i = θ·Ŵ_i + Σ_{j≠i, j in g(i)} ω_j Ŵ_j,   ω_j = (1−θ)·n_j / Σ_{k≠i, k in g(i)} n_k.

    Computed as θ·Ŵ_i + (1−θ)·(S_g − n_i Ŵ_i)/(N_g − n_i) with S_g = Σ_{j in g} n_j Ŵ_j:
    one segment sum per leaf instead of a C×C mixing matrix. The two halves are
    ``pfedprox_totals`` (server) and ``pfedprox_combine`` (client); the Flower driver
    runs them on different machines.
    """
    return pfedprox_combine(params, num_samples, pfedprox_totals(params, num_samples, groups, num_groups), theta)


def mixing_matrix(num_samples, theta: float) -> jax.Array:
    """The explicit (K, K) matrix M of eq. 6 for one group: W = M @ Ŵ (for tests/docs)."""
    n = jnp.asarray(num_samples, jnp.float32)
    k = n.shape[0]
    off = (1 - jnp.eye(k)) * n[None, :]
    omega = (1 - theta) * off / off.sum(axis=1, keepdims=True)
    return theta * jnp.eye(k) + omega
