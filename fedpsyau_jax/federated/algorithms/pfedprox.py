"""P-FedProx (paper eq. 6): personalised mixing + a proximal term to the own start.

W_i^t = θ·Ŵ_i^{t−1} + Σ_{j≠i} ω_j Ŵ_j^{t−1}, ω_j = (1−θ)·n_j / Σ_{k≠i} n_k. Only
params are mixed and uploaded; BatchNorm statistics stay local (never sent).
Deployment form: the server reduces to S = Σ n_j Ŵ_j and N = Σ n_j only
(``pfedprox_totals``); each client mixes its own start point (``pfedprox_combine``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fedpsyau_jax.federated.aggregation import pfedprox_combine, pfedprox_totals
from fedpsyau_jax.federated.algorithms.base import Algorithm, ServerMessage


def make(mu: float = 0.01, theta: float = 0.9, **_) -> Algorithm:
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"P-FedProx needs 0 <= theta <= 1, got {theta}")
    if mu < 0:
        raise ValueError(f"P-FedProx needs mu >= 0, got {mu}")

    def reduce(upload, groups, num_groups) -> dict:
        return pfedprox_totals(upload.params, upload.num_samples, groups, num_groups)

    def combine(params, num_samples, totals) -> ServerMessage:
        if totals is None:
            return ServerMessage(params=None)
        return ServerMessage(params=pfedprox_combine(params, num_samples, totals, theta), batch_stats=None)

    def combine_mean(params, participate, mean, contribution, denom) -> ServerMessage:
        # Under DP the server releases the noisy mean R = S / m of the clipped uploads
        # (m fixed); S = m·R, and the client takes out what it put in (c_i).
        total = jax.tree.map(lambda r: denom * r, mean["params"])
        count = denom * jnp.ones_like(participate, jnp.float32)
        return ServerMessage(
            params=pfedprox_combine(params, participate, {"sum": total, "count": count}, theta, contribution["params"]),
            batch_stats=None,
        )

    return Algorithm(
        name="pfedprox",
        mu=float(mu),
        reduce=reduce,
        combine=combine,
        combine_mean=combine_mean,
        shares_batch_stats=False,
        description=f"personalised mixing theta={theta}, proximal mu={mu}, local BN",
    )
