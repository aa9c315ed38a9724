"""FedAvg: W_t = Σ n_i W_i / Σ n (params and BN statistics); everyone starts from W_t.

Server half ``fedavg_reduce`` (the weighted mean); client half: adopt it.
"""

from __future__ import annotations

from fedpsyau_jax.federated.aggregation import fedavg_params
from fedpsyau_jax.federated.algorithms.base import Algorithm, ServerMessage, take_broadcast


def fedavg_reduce(upload, groups, num_groups) -> dict:
    params, bs = fedavg_params(upload, groups, num_groups)
    return {"params": params, "batch_stats": bs}


def fedavg_aggregate(upload, groups, num_groups) -> ServerMessage:
    return take_broadcast(upload.params, upload.num_samples, fedavg_reduce(upload, groups, num_groups))


def make(**_) -> Algorithm:
    return Algorithm(
        name="fedavg", mu=0.0, reduce=fedavg_reduce, description="sample-weighted average of params and BN statistics"
    )
