"""The federated-algorithm interface: three pure functions and a proximal weight.

A round, for stacked clients (leaves (C, …), ``groups`` (C,) = federation of each row):

    upload            = make_upload(states, n)                        # client -> server
    message           = algorithm.aggregate(upload, groups, G)        # server (jitted)
    states, anchors   = algorithm.client_update(states, message)      # server -> client
    states, losses    = local training with loss + (μ/2)‖W − anchor‖², μ = algorithm.mu

``init`` makes the round-0 start (by default: every client of a federation starts
from its federation's first row, i.e. one common global initialisation). A new
algorithm is one module that builds an ``Algorithm`` (usually only ``aggregate``).
``aggregate`` receives ``ClientUpload`` only — params, BN statistics, sample counts.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.struct
import jax

from fedpsyau_jax.federated.upload import ClientUpload


@flax.struct.dataclass(frozen=True)
class ServerMessage:
    """What the server sends back, per row (leaves (C, …)).

    params:       each client's start point for the next round (also its proximal anchor)
    batch_stats:  BN statistics to adopt, or None to keep the client's own (local BN)
    """
    params: Any
    batch_stats: Any = None


def common_init(states, groups: jax.Array, num_groups: int):
    """Every row starts from the params/BN statistics of its group's first row."""
    first = jax.ops.segment_min(jax.numpy.arange(groups.shape[0]), groups, num_segments=num_groups)
    rows = first[groups]
    pick = lambda t: jax.tree.map(lambda x: x[rows], t)
    return states.replace(params=pick(states.params), batch_stats=pick(states.batch_stats))


def adopt_message(states, message: ServerMessage):
    """Default client side: take the message's params (and BN stats if sent).

    The anchor of the proximal term is the received start point: the global model for
    FedProx, the client's own mixed start point W_i^t for P-FedProx. Local optimiser
    state (AdamW moments) is kept across rounds: clients are persistent silos.
    """
    if message.params is None:                       # no communication (Local)
        return states, states.params
    new = states.replace(params=message.params)
    if message.batch_stats is not None:
        new = new.replace(batch_stats=message.batch_stats)
    return new, message.params


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A federated algorithm as pure functions (hyper-parameters closed over).

    name:           registry name
    mu:             proximal coefficient μ of local training (0: no proximal term)
    aggregate:      (ClientUpload (C, …), groups (C,), num_groups) -> ServerMessage
    client_update:  (stacked TrainState, ServerMessage) -> (TrainState, anchor params)
    init:           (stacked TrainState, groups, num_groups) -> stacked TrainState
    """
    name: str
    mu: float
    aggregate: Callable[[ClientUpload, jax.Array, int], ServerMessage]
    client_update: Callable[[Any, ServerMessage], tuple[Any, Any]] = adopt_message
    init: Callable[[Any, jax.Array, int], Any] = common_init
    description: str = ""
