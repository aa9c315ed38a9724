"""Wire format: a pytree <-> named arrays (Flower ``ArrayRecord``), restored by template.

    names = flatten(tree)                    # {"params/lfe/Conv_0/kernel": ndarray, ...}
    rec   = to_array_record(tree)            # flwr.app.ArrayRecord of those names
    tree  = from_array_record(rec, template) # the model's tree structure back

A leaf's name is its pytree path joined with "/" (dict keys, sequence indices,
attribute names). ``None`` leaves (parts an algorithm does not send) have no name and
travel as nothing. Restoring checks every name, shape and dtype against ``template``
(a pytree of arrays or ``jax.ShapeDtypeStruct``) and, with ``finite=True``, that every
value is finite; a mismatch raises ``WireError`` naming the offending arrays, so the
server can reject and name a bad reply instead of averaging it.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

SEP = "/"


class WireError(ValueError):
    """A record that does not fit the expected arrays (names, shapes, dtypes, values)."""


def _name(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator=SEP)


def flatten(tree: Any) -> dict[str, np.ndarray]:
    """{name: host ndarray} of every non-None leaf of ``tree``, in pytree order."""
    out: dict[str, np.ndarray] = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        name = _name(path)
        if name in out:
            raise WireError(f"two leaves share the name {name!r}")
        out[name] = np.asarray(leaf)
    return out


def spec(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """{name: (shape, dtype)} of a tree of arrays or ShapeDtypeStructs."""
    return {
        _name(p): (tuple(np.shape(x)), str(np.dtype(x.dtype))) for p, x in jax.tree_util.tree_leaves_with_path(tree)
    }


def to_array_record(tree: Any):
    """``flwr.app.ArrayRecord`` holding ``flatten(tree)``."""
    from flwr.app import Array, ArrayRecord

    return ArrayRecord({k: Array(np.array(v, order="C", copy=True)) for k, v in flatten(tree).items()})


def check_names(received: dict, template: Any) -> list[str]:
    """Problems (strings) of ``received`` {name: object with .shape/.dtype} vs template."""
    want = spec(template)
    problems = []
    missing = sorted(set(want) - set(received))
    extra = sorted(set(received) - set(want))
    if missing:
        problems.append(f"missing {len(missing)} array(s): {', '.join(missing[:5])}")
    if extra:
        problems.append(f"unexpected {len(extra)} array(s): {', '.join(extra[:5])}")
    for k in sorted(set(want) & set(received)):
        shape, dtype = want[k]
        got = received[k]
        gshape, gdtype = tuple(int(d) for d in got.shape), str(np.dtype(got.dtype))
        if gshape != shape or gdtype != dtype:
            problems.append(f"{k}: got {gdtype}{list(gshape)}, expected {dtype}{list(shape)}")
    return problems


def unflatten(arrays: dict[str, np.ndarray], template: Any, finite: bool = False) -> Any:
    """The tree of ``template``'s structure from named arrays (checked; see module doc)."""
    problems = check_names(arrays, template)
    if problems:
        raise WireError("; ".join(problems))
    if finite:
        bad = [k for k, v in arrays.items() if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v))]
        if bad:
            raise WireError(f"non-finite values (NaN/Inf) in {len(bad)} array(s): {', '.join(bad[:5])}")
    names = [_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(template)]
    treedef = jax.tree_util.tree_structure(template)
    return jax.tree_util.tree_unflatten(treedef, [arrays[n] for n in names])


def from_array_record(record, template: Any, finite: bool = False) -> Any:
    """Inverse of ``to_array_record``: shapes/dtypes are checked from the record's
    metadata before anything is decoded, then again on the decoded arrays."""
    problems = check_names(dict(record.items()), template)
    if problems:
        raise WireError("; ".join(problems))
    return unflatten({k: v.numpy() for k, v in record.items()}, template, finite=finite)


def to_list(tree: Any) -> list[np.ndarray]:
    """The leaves in name order (legacy Flower ``Parameters`` carry no names)."""
    return list(flatten(tree).values())


def from_list(arrays: list, template: Any, finite: bool = False, cast: bool = False) -> Any:
    """Inverse of ``to_list``, checked like ``unflatten``; ``cast``: convert each array
    to the template's dtype first (SecAgg+ dequantises to float64)."""
    want = spec(template)
    if len(arrays) != len(want):
        raise WireError(f"got {len(arrays)} array(s), expected {len(want)}")
    named = {}
    for (name, (_, dtype)), a in zip(want.items(), arrays):
        a = np.asarray(a)
        named[name] = a.astype(dtype) if cast else a
    return unflatten(named, template, finite=finite)


def num_bytes(tree_or_record: Any) -> int:
    """Payload bytes of a tree (raw array bytes) or of an ArrayRecord (serialised)."""
    if hasattr(tree_or_record, "count_bytes"):
        return int(tree_or_record.count_bytes())
    return int(sum(v.nbytes for v in flatten(tree_or_record).values()))
