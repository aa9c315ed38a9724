"""Clients as one stacked pytree: every leaf gets a leading client axis C.

    stacked = stack_states([s0, s1, s2])      # leaf (…) -> (3, …)
    s1 = unstack_states(stacked)[1]
    stacked = broadcast_state(s, 5)           # one state copied to 5 clients

The stacked form is what ``jax.vmap`` maps over (local training, evaluation) and what
the aggregation functions reduce over. When several independent federations (seeds
of the paper's 10 repeats) train together, the axis is (seed × client) flattened,
seed-major: row r belongs to seed ``r // K`` and client ``r % K`` (``group_ids``).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def stack_states(states: Sequence[Any]) -> Any:
    """[pytree with leaf shape s] * C -> pytree with leaf shape (C, *s)."""
    if not states:
        raise ValueError("stack_states needs at least one state")
    structs = {jax.tree.structure(s) for s in states}
    if len(structs) != 1:
        raise ValueError("stack_states: the states differ in pytree structure")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def unstack_states(stacked: Any) -> list[Any]:
    """Inverse of ``stack_states``: a list of C pytrees."""
    n = num_clients(stacked)
    return [jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(n)]


def num_clients(stacked: Any) -> int:
    """Size C of the leading axis (all leaves must agree)."""
    sizes = {np.shape(x)[0] for x in jax.tree.leaves(stacked)}
    if len(sizes) != 1:
        raise ValueError(f"stacked pytree leaves disagree on the client axis: {sorted(sizes)}")
    return sizes.pop()


def broadcast_state(state: Any, n: int) -> Any:
    """One pytree repeated ``n`` times along a new leading axis."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *np.shape(x))), state)


def take_clients(stacked: Any, rows) -> Any:
    """The rows ``rows`` (int array) of the client axis."""
    rows = jnp.asarray(rows)
    return jax.tree.map(lambda x: x[rows], stacked)


def group_ids(num_groups: int, clients_per_group: int) -> np.ndarray:
    """(G·K,) int32 group of each row in seed-major (group × client) order."""
    return np.repeat(np.arange(num_groups, dtype=np.int32), clients_per_group)
