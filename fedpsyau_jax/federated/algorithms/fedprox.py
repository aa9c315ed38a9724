"""FedProx: FedAvg + (μ/2)‖W − W_t‖² towards this round's global model W_t."""

from __future__ import annotations

from fedpsyau_jax.federated.algorithms.base import Algorithm
from fedpsyau_jax.federated.algorithms.fedavg import fedavg_reduce


def make(mu: float = 0.01, **_) -> Algorithm:
    if mu < 0:
        raise ValueError(f"FedProx needs mu >= 0, got {mu}")
    return Algorithm(name="fedprox", mu=float(mu), reduce=fedavg_reduce, description=f"FedAvg + proximal term mu={mu}")
