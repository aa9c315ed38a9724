"""The client → server boundary: what a client may send for aggregation.

The server side (``aggregation``, every ``Algorithm.aggregate``) only ever receives a
``ClientUpload``: the model's ``params`` and ``batch_stats`` pytrees and the client's
sample count. It has exactly these three fields (constructing one with anything else
is a ``TypeError``), and ``make_upload`` builds it from a ``TrainState``, which holds no
data either — so no flow, landmark or label array can cross to the aggregation code.
Priors (D, computed from a client's own AU labels), optimiser state and PRNG keys stay
on the client too.
"""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass(frozen=True)
class ClientUpload:
    """What one client (or a stack of C clients) sends to the server.

    params:       the model parameters pytree (stacked: every leaf (C, …))
    batch_stats:  BatchNorm running statistics pytree (stacked: (C, …))
    num_samples:  () or (C,) float32 — training samples of the client (weights n_i)
    """
    params: Any
    batch_stats: Any
    num_samples: jax.Array


def make_upload(state, num_samples) -> ClientUpload:
    """Upload of a client ``TrainState`` (or a stacked one): params, BN stats, n."""
    return ClientUpload(params=state.params, batch_stats=state.batch_stats,
                        num_samples=jnp.asarray(num_samples, jnp.float32))
