"""FedRep-style: shared body averaged (FedAvg), personal heads kept local.

"Head" = the parameters that map features to outputs: the emotion classifier
(``dsi/classifier``, or ``flow_only/classifier`` for the flow-only model) and both AU
heads (``au_head_afe``, ``au_head_gat``). Everything else — LFE, SSE, GSE/AFE, the
GATs, the Inception streams and ``flow_dense`` — is the shared representation. BN
statistics all belong to the body (the heads have none) and are averaged with it.
Body and head are trained jointly in each local epoch (FedPer-like), not in
FedRep's alternating head-then-body phases: a simplification, documented as such.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fedpsyau_jax.federated.aggregation import fedavg_params
from fedpsyau_jax.federated.algorithms.base import Algorithm, ServerMessage

HEAD_PATHS: tuple[tuple[str, ...], ...] = (
    ("au_head_afe",), ("au_head_gat",), ("dsi", "classifier"), ("flow_only", "classifier"))


def _keys(path) -> tuple[str, ...]:
    return tuple(getattr(p, "key", getattr(p, "name", str(p))) for p in path)


def is_head(path) -> bool:
    """True for a param leaf under one of ``HEAD_PATHS``."""
    keys = _keys(path)
    return any(keys[:len(h)] == h for h in HEAD_PATHS)


def head_mask(params):
    """Pytree of bools: True on head leaves."""
    return jax.tree_util.tree_map_with_path(lambda p, _: is_head(p), params)


def make(**_) -> Algorithm:
    def aggregate(upload, groups, num_groups) -> ServerMessage:
        avg, bs = fedavg_params(upload, groups, num_groups)
        params = jax.tree_util.tree_map_with_path(
            lambda p, own, shared: own if is_head(p) else shared, upload.params, avg)
        return ServerMessage(params=params, batch_stats=bs)

    return Algorithm(name="fedrep", mu=0.0, aggregate=aggregate,
                     description="shared body (FedAvg), personal emotion/AU heads")
