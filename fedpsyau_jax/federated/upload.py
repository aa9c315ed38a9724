"""The client → server boundary: what a client may send for aggregation.

The server side (``aggregation``, every ``Algorithm.aggregate``) only ever receives a
``ClientUpload``: the model's ``params`` and ``batch_stats`` pytrees and the client's
sample count. It has exactly these three fields (constructing one with anything else
is a ``TypeError``), and ``make_upload`` builds it from a ``TrainState``, which holds no
data either — so no flow, landmark or label array can cross to the aggregation code.
Priors (D, computed from a client's own AU labels), optimiser state and PRNG keys stay
on the client too.

Each algorithm uploads only what its aggregation uses (``make_upload(state, n,
algorithm)``): P-FedProx sends params but no BN statistics (they stay local), Local
sends nothing but n, FedRep sends its shared body but not its personal heads. Leaves
that are not sent are ``None`` (an empty pytree node), so the same pytree code and the
Flower wire format (``federated/flower/wire.py``) see only what is sent.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass(frozen=True)
class ClientUpload:
    """What one client (or a stack of C clients) sends to the server.

    params:       the model parameters pytree (stacked: every leaf (C, …)); leaves
                  the algorithm does not aggregate are ``None``; ``None`` if none sent
    batch_stats:  BatchNorm running statistics pytree (stacked: (C, …)), or ``None``
    num_samples:  () or (C,) float32 — training samples of the client (weights n_i)
    """

    params: Any
    batch_stats: Any
    num_samples: jax.Array


def filter_upload(upload: ClientUpload, algorithm=None) -> ClientUpload:
    """``upload`` reduced to what ``algorithm`` aggregates (all of it without one)."""
    if algorithm is None:
        return upload
    params = None
    if algorithm.shares_param is not None and upload.params is not None:
        params = jax.tree_util.tree_map_with_path(lambda p, x: x if algorithm.shares_param(p) else None, upload.params)
    bs = upload.batch_stats if algorithm.shares_batch_stats else None
    return ClientUpload(params=params, batch_stats=bs, num_samples=upload.num_samples)


def make_upload(state, num_samples, algorithm=None) -> ClientUpload:
    """Upload of a client ``TrainState`` (or a stacked one): params, BN stats, n —
    restricted to what ``algorithm`` aggregates when it is given."""
    full = ClientUpload(
        params=state.params, batch_stats=state.batch_stats, num_samples=jnp.asarray(num_samples, jnp.float32)
    )
    return filter_upload(full, algorithm)
