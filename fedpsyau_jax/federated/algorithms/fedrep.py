"""FedRep-style: shared body averaged (FedAvg), personal heads kept local.

"Head" = the parameters that map features to outputs: the emotion classifier
(``dsi/classifier``, ``flow_only/classifier`` for the flow-only model, or
``<baseline>/classifier`` for a baseline's last Dense layer) and both AU heads
(``au_head_afe``, ``au_head_gat``). Everything else — LFE, SSE, GSE/AFE, the
GATs, the Inception streams and ``flow_dense`` — is the shared representation. BN
statistics all belong to the body (the heads have none) and are averaged with it.
Body and head are trained jointly in each local epoch (FedPer-like), not in
FedRep's alternating head-then-body phases: a simplification, documented as such.
"""

from __future__ import annotations

import jax

from fedpsyau_jax.federated.aggregation import fedavg_params
from fedpsyau_jax.federated.algorithms.base import Algorithm, ServerMessage
from fedpsyau_jax.network.baselines import BASELINES

HEAD_PATHS: tuple[tuple[str, ...], ...] = (
    ("au_head_afe",),
    ("au_head_gat",),
    ("dsi", "classifier"),
    ("flow_only", "classifier"),
    *((name, "classifier") for name in BASELINES),
)


def _keys(path) -> tuple[str, ...]:
    return tuple(getattr(p, "key", getattr(p, "name", str(p))) for p in path)


def is_head(path) -> bool:
    """True for a param leaf under one of ``HEAD_PATHS``."""
    keys = _keys(path)
    return any(keys[: len(h)] == h for h in HEAD_PATHS)


def head_mask(params):
    """Pytree of bools: True on head leaves."""
    return jax.tree_util.tree_map_with_path(lambda p, _: is_head(p), params)


def is_body(path) -> bool:
    """The shared representation: every param leaf that is not a head (uploaded)."""
    return not is_head(path)


def fedrep_reduce(upload, groups, num_groups) -> dict:
    """Server half: the weighted mean of the uploaded body and of the BN statistics."""
    params, bs = fedavg_params(upload, groups, num_groups)
    return {"params": params, "batch_stats": bs}


def fedrep_combine(params, num_samples, broadcast) -> ServerMessage:
    """Client half: shared body from the broadcast, own heads."""
    if broadcast is None:
        return ServerMessage(params=None)
    merged = jax.tree_util.tree_map_with_path(
        lambda p, own: own if is_head(p) else _lookup(broadcast["params"], p), params
    )
    return ServerMessage(params=merged, batch_stats=broadcast["batch_stats"])


def _lookup(tree, path):
    for k in _keys(path):
        tree = tree[k]
    return tree


def make(**_) -> Algorithm:
    return Algorithm(
        name="fedrep",
        mu=0.0,
        reduce=fedrep_reduce,
        combine=fedrep_combine,
        shares_param=is_body,
        description="shared body (FedAvg), personal emotion/AU heads",
    )
