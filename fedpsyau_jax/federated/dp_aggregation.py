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

import jax
import jax.numpy as jnp

from fedpsyau_jax.federated.privacy import clip_rows, noisy_group_totals
from fedpsyau_jax.federated.upload import ClientUpload


def upload_tree(upload: ClientUpload) -> dict:
    """The clipped vector: every uploaded leaf (params and BN statistics) together."""
    return {"params": upload.params, "batch_stats": upload.batch_stats}


def dp_reduce(
    upload: ClientUpload,
    reference: dict,
    participate: jax.Array,
    key: jax.Array,
    groups: jax.Array,
    num_groups: int,
    clip_norm,
    noise_multiplier,
    denom,
):
    """-> (R' rows (C, …), contributions c_i = R + clip(Δ_i) (C, …), norms ‖Δ_i‖ (C,)).

    upload: stacked ``ClientUpload`` (filtered to what the algorithm shares);
    reference: ``upload_tree``-shaped R, rows equal within a group; participate (C,)
    {0, 1}; key: this round's noise key; ``denom`` the fixed divisor m."""
    step, contribution, norms = dp_step(
        upload, reference, participate, key, groups, num_groups, clip_norm, noise_multiplier, denom
    )
    return apply_step(reference, step, groups), contribution, norms


def dp_step(
    upload: ClientUpload,
    reference: dict,
    participate: jax.Array,
    key: jax.Array,
    groups: jax.Array,
    num_groups: int,
    clip_norm,
    noise_multiplier,
    denom,
):
    """-> (step T/m per group (G, …), contributions (C, …), norms (C,)).

    The rows may be any subset of the clients (the sampled ones, say) as long as every
    participating client is among them: the noise is drawn per group, so the step is the
    same whichever non-participating rows come along. ``apply_step`` adds it to R."""
    delta = jax.tree.map(jnp.subtract, upload_tree(upload), reference)
    clipped, norms = clip_rows(delta, clip_norm)
    total = noisy_group_totals(clipped, participate, groups, num_groups, key, noise_multiplier, clip_norm)
    denom = jnp.asarray(denom, jnp.float32)
    step = jax.tree.map(lambda t: t / denom, total)
    contribution = jax.tree.map(jnp.add, reference, clipped)
    return step, contribution, norms


def apply_step(reference: dict, step: dict, groups: jax.Array) -> dict:
    """R' = R + step of each row's group (rows (C, …))."""
    return jax.tree.map(lambda r, t: r + t[groups].astype(r.dtype), reference, step)
