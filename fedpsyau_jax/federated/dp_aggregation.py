"""Client-level DP aggregation (DP-FedAvg form), shared by the simulator and Flower.

One mechanism for every algorithm that communicates. With R the last released model
(public: every client received it) and U_i what client i uploads (its shared params
and, where the algorithm averages them, BN statistics):

    Δ_i  = U_i − R                         clipped to ‖Δ_i‖ ≤ C     (the client)
    T    = Σ_{i sampled} clip(Δ_i) + N(0, (z·C)² I)                 (the server)
    R'   = R + T / m                        m fixed: K, per_round, or q·K

R' is the only thing released; each client turns it into its start point with
``Algorithm.combine_noisy_mean``: FedAvg/FedProx adopt it, FedRep takes its body,
P-FedProx rebuilds S = m·R' and removes its own contribution c_i = R + clip(Δ_i). So
the noise on the one sum covers every personal mix, and every client's start point is
post-processing of R' and its own data (DP w.r.t. the other clients).

Deviation from the non-private algorithms, forced by DP: clients weigh equally (a
sample-count weight would have to be public and bounded), and the divisor is fixed
(dividing by the realised number of participants would reveal it).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fedpsyau_jax.federated.privacy import clip_rows, noisy_group_sums
from fedpsyau_jax.federated.upload import ClientUpload


def upload_tree(upload: ClientUpload) -> dict:
    """The clipped vector: every uploaded leaf (params and BN statistics) together."""
    return {"params": upload.params, "batch_stats": upload.batch_stats}


def dp_reduce(upload: ClientUpload, reference: dict, participate: jax.Array, key: jax.Array,
              groups: jax.Array, num_groups: int, clip_norm, noise_multiplier, denom):
    """-> (R' rows (C, …), contributions c_i = R + clip(Δ_i) (C, …), norms ‖Δ_i‖ (C,)).

    upload: stacked ``ClientUpload`` (filtered to what the algorithm shares);
    reference: ``upload_tree``-shaped R, rows equal within a group; participate (C,)
    {0, 1}; key: this round's noise key; ``denom`` the fixed divisor m."""
    delta = jax.tree.map(jnp.subtract, upload_tree(upload), reference)
    clipped, norms = clip_rows(delta, clip_norm)
    total = noisy_group_sums(clipped, participate, groups, num_groups, key,
                             noise_multiplier, clip_norm)
    denom = jnp.asarray(denom, jnp.float32)
    new_reference = jax.tree.map(lambda r, t: r + (t / denom).astype(r.dtype), reference, total)
    contribution = jax.tree.map(jnp.add, reference, clipped)
    return new_reference, contribution, norms
