"""The federated-algorithm interface: three pure functions and a proximal weight.

A round, for stacked clients (leaves (C, …), ``groups`` (C,) = federation of each row):

    upload            = make_upload(states, n)                        # client -> server
    message           = algorithm.aggregate(upload, groups, G)        # server (jitted)
    states, anchors   = algorithm.client_update(states, message)      # server -> client
    states, losses    = local training with loss + (μ/2)‖W − anchor‖², μ = algorithm.mu

``aggregate`` is the composition of two halves that a real deployment (Flower) runs
on different machines — the ONE implementation both drivers use:

    upload            = make_upload(states, n, algorithm)             # only what is aggregated
    broadcast         = algorithm.reduce(upload, groups, G)           # server: same for a group
    message           = algorithm.combine(own params, n, broadcast)   # each client, own rows

``reduce`` returns a pytree whose rows are equal within a group (FedAvg's mean; P-FedProx's
S and N) or ``None`` (no communication); ``combine`` turns it into the client's own
``ServerMessage`` (P-FedProx mixes its own start point; FedRep keeps its own head).

``init`` makes the round-0 start (by default: every client of a federation starts
from its federation's first row, i.e. one common global initialisation). A new
algorithm is one module that builds an ``Algorithm`` (usually only ``reduce``).
``aggregate`` receives ``ClientUpload`` only — params, BN statistics, sample counts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.struct
import jax

from fedpsyau_jax.federated.upload import ClientUpload, filter_upload, make_upload


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
    if message.params is None:  # no communication (Local)
        return states, states.params
    new = states.replace(params=message.params)
    if message.batch_stats is not None:
        new = new.replace(batch_stats=message.batch_stats)
    return new, message.params


def all_params(path) -> bool:
    """``shares_param`` of algorithms that aggregate every parameter."""
    return True


def take_broadcast(params, num_samples, broadcast) -> ServerMessage:
    """``combine`` of FedAvg/FedProx: adopt the broadcast (params and BN statistics)."""
    if broadcast is None:
        return ServerMessage(params=None)
    return ServerMessage(params=broadcast["params"], batch_stats=broadcast.get("batch_stats"))


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A federated algorithm as pure functions (hyper-parameters closed over).

    name:           registry name
    mu:             proximal coefficient μ of local training (0: no proximal term)
    aggregate:      (ClientUpload (C, …), groups (C,), num_groups) -> ServerMessage
    client_update:  (stacked TrainState, ServerMessage) -> (TrainState, anchor params)
    init:           (stacked TrainState, groups, num_groups) -> stacked TrainState
    reduce:         server half: (filtered ClientUpload, groups, num_groups) -> broadcast
                    pytree (rows, equal within a group) or None
    combine:        client half: (own params (C, …), n (C,), broadcast) -> ServerMessage
    shares_param:   path -> bool, the param leaves uploaded (None: no params uploaded)
    shares_batch_stats: whether BN statistics are uploaded
    combine_mean:   client half under DP, from the noisy mean (None: ``combine`` reads it)
    ``aggregate`` (the simulator's one-call form) defaults to combine ∘ reduce.
    """

    name: str
    mu: float
    aggregate: Callable[[ClientUpload, jax.Array, int], ServerMessage] | None = None
    client_update: Callable[[Any, ServerMessage], tuple[Any, Any]] = adopt_message
    init: Callable[[Any, jax.Array, int], Any] = common_init
    description: str = ""
    reduce: Callable[[ClientUpload, jax.Array, int], Any] | None = None
    combine: Callable[[Any, jax.Array, Any], ServerMessage] = take_broadcast
    shares_param: Callable[[Any], bool] | None = all_params
    shares_batch_stats: bool = True
    combine_mean: Callable[..., ServerMessage] | None = None

    def combine_noisy_mean(self, params, participate, mean: dict, contribution: dict, denom) -> ServerMessage:
        """Client half under client-level DP (``federated.dp_aggregation``): the broadcast
        is the noisy mean ``{"params", "batch_stats"}`` of the clipped uploads (divisor
        ``denom``), ``contribution`` what this client put in. FedAvg/FedProx/FedRep read
        it as their mean; P-FedProx (``combine_mean``) rebuilds its sum form from it."""
        if self.combine_mean is not None:
            return self.combine_mean(params, participate, mean, contribution, denom)
        return self.combine(params, participate, mean)

    def __post_init__(self):
        if self.aggregate is None:
            if self.reduce is None and self.shares_param is not None:
                raise ValueError(f"algorithm {self.name!r} needs aggregate or reduce")
            object.__setattr__(self, "aggregate", _composed(self))

    def communicate(self, states, num_samples, groups: jax.Array, num_groups: int):
        """One simulated round trip: upload -> reduce -> combine -> client_update."""
        upload = make_upload(states, num_samples, self)
        broadcast = None if self.reduce is None else self.reduce(upload, groups, num_groups)
        message = self.combine(states.params, upload.num_samples, broadcast)
        return self.client_update(states, message)


def _composed(algorithm: Algorithm):
    """``aggregate`` = combine ∘ reduce ∘ filter (a plain closure: the frozen dataclass
    stays hashable for the per-algorithm jit caches)."""
    reduce, combine = algorithm.reduce, algorithm.combine
    spec = _UploadSpec(algorithm.shares_param, algorithm.shares_batch_stats)

    def aggregate(upload: ClientUpload, groups: jax.Array, num_groups: int) -> ServerMessage:
        broadcast = None if reduce is None else reduce(filter_upload(upload, spec), groups, num_groups)
        return combine(upload.params, upload.num_samples, broadcast)

    return aggregate


@dataclasses.dataclass(frozen=True)
class _UploadSpec:
    shares_param: Callable[[Any], bool] | None
    shares_batch_stats: bool
