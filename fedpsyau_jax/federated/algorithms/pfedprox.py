"""P-FedProx (SPEC §8 eq. 6): personalised mixing + a proximal term to the own start.

W_i^t = θ·Ŵ_i^{t−1} + Σ_{j≠i} ω_j Ŵ_j^{t−1}, ω_j = (1−θ)·n_j / Σ_{k≠i} n_k. Only
params are mixed; BatchNorm statistics stay local (the message carries none).
"""
from __future__ import annotations

from fedpsyau_jax.federated.aggregation import pfedprox_mix
from fedpsyau_jax.federated.algorithms.base import Algorithm, ServerMessage


def make(mu: float = 0.01, theta: float = 0.9, **_) -> Algorithm:
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"P-FedProx needs 0 <= theta <= 1, got {theta}")
    if mu < 0:
        raise ValueError(f"P-FedProx needs mu >= 0, got {mu}")

    def aggregate(upload, groups, num_groups) -> ServerMessage:
        return ServerMessage(params=pfedprox_mix(upload.params, upload.num_samples, groups,
                                                 num_groups, theta), batch_stats=None)

    return Algorithm(name="pfedprox", mu=float(mu), aggregate=aggregate,
                     description=f"personalised mixing theta={theta}, proximal mu={mu}, local BN")
