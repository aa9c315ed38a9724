"""FedAvg: W_t = Σ n_i W_i / Σ n (params and BN statistics); everyone starts from W_t."""
from __future__ import annotations

from fedpsyau_jax.federated.aggregation import fedavg_params
from fedpsyau_jax.federated.algorithms.base import Algorithm, ServerMessage


def fedavg_aggregate(upload, groups, num_groups) -> ServerMessage:
    params, bs = fedavg_params(upload, groups, num_groups)
    return ServerMessage(params=params, batch_stats=bs)


def make(**_) -> Algorithm:
    return Algorithm(name="fedavg", mu=0.0, aggregate=fedavg_aggregate,
                     description="sample-weighted average of params and BN statistics")
