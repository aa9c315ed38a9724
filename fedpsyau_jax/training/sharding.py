"""Rows of a stacked program (folds, or federated clients) spread over devices.

A "row" is one fold of a fold chunk or one client of a client stack: every leaf of
the stacked state has a leading row axis. ``row_mesh`` builds a 1-D mesh over the
visible devices, ``over_rows`` runs a row-vmapped function per device on its block
of rows (``shard_map``: each device runs the same vmapped program on its own rows,
the shared dataset replicated), and ``padded_width`` rounds a row count up to a
multiple of the device count (extra rows are copies with all-zero example masks:
their steps are no-ops and their outputs are dropped).

The split is explicit (shard_map) rather than left to GSPMD propagation: propagating
a sharded row axis into the vmapped (grouped) convolutions miscompiled on XLA:CPU
("output feature dimension not divisible by feature_group_count").
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

ROW_AXIS = "rows"


def row_mesh(num_devices: int | None = None, axis_name: str = ROW_AXIS) -> Mesh:
    """1-D mesh over the first ``num_devices`` devices (all by default)."""
    devices = jax.devices()[:num_devices] if num_devices else jax.devices()
    return Mesh(np.asarray(devices), (axis_name,))


def over_rows(fn, mesh: Mesh | None, in_specs, out_specs):
    """``fn`` itself without a mesh; with one, ``fn`` per device on its block of rows."""
    if mesh is None:
        return fn
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def padded_width(rows: int, mesh: Mesh | None) -> int:
    """``rows`` rounded up to a multiple of the mesh's device count."""
    n = 1 if mesh is None else int(mesh.devices.size)
    return -(-rows // n) * n


def shard_rows(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf's leading (row) axis across the mesh; rows must divide evenly."""
    n = mesh.devices.size
    spec = NamedSharding(mesh, P(mesh.axis_names[0]))

    def put(x):
        if np.shape(x)[0] % n:
            raise ValueError(f"row axis of size {np.shape(x)[0]} does not divide over {n} devices")
        return jax.device_put(x, spec)

    return jax.tree.map(put, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Copy every leaf to all devices of the mesh (the shared dataset)."""
    return jax.tree.map(lambda x: jax.device_put(x, NamedSharding(mesh, P())), tree)
