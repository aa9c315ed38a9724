"""One communication step as one jitted function of the stacked client pytree.

``make_communicate(algorithm, num_groups)`` -> ``communicate(states, num_samples,
groups) -> (states, anchors)``: uploads (params, BN stats, n only) -> the algorithm's
``aggregate`` -> its ``client_update``. Donates the states.
"""

from __future__ import annotations

import functools

import jax

from fedpsyau_jax.federated.algorithms.base import Algorithm


@functools.lru_cache(maxsize=64)  # one trace/compile per (algorithm, G) per process
def make_communicate(algorithm: Algorithm, num_groups: int):
    def communicate(states, num_samples, groups):
        return algorithm.communicate(states, num_samples, groups, num_groups)

    return jax.jit(communicate, donate_argnums=(0,))


@functools.lru_cache(maxsize=64)
def make_init(algorithm: Algorithm, num_groups: int):
    return jax.jit(lambda states, groups: algorithm.init(states, groups, num_groups))
