"""Named pytree checkpoints on disk (Orbax), each with a JSON metadata record.

    save_checkpoint(directory, name, pytree, metadata)      -> path of the checkpoint
    restore_checkpoint(directory, name, target)             -> (pytree, metadata)
    latest_checkpoint(directory)                            -> name | None

Layout of one checkpoint ``directory/name/``:
    state/          Orbax ``StandardCheckpointHandler`` output (arrays of the pytree)
    metadata.json   the caller's metadata plus ``_tree`` (path -> shape/dtype of every
                    leaf, to give a readable error on mismatch) and ``_saved_ns``

A checkpoint is written into a hidden temporary folder and renamed to ``name`` only
when both parts are complete, so a killed process never leaves a half-written
checkpoint under its final name; leftover temporaries are ignored (and removed on the
next save of the same name). Used for per-fold/per-epoch training checkpoints and for
per-round federated checkpoints.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from fedpsyau_jax.core.errors import UserError

METADATA_FILE = "metadata.json"
STATE_DIR = "state"
_TMP_PREFIX = ".tmp-"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the expected pytree.

    A ``UserError`` (the CLI prints one line, exit 2) and, as before, a RuntimeError."""


def _write_json_atomic(path: Path, obj) -> None:
    # Local import: the video pipeline pulls in OpenCV/dlib, which checkpointing needs not.
    from fedpsyau_jax.core.atomic_files import write_json_atomic

    write_json_atomic(path, obj)


def tree_spec(pytree) -> dict[str, list]:
    """{leaf path: [shape, dtype]} of a pytree (key paths as ``jax.tree_util.keystr``)."""
    leaves = jax.tree_util.tree_flatten_with_path(pytree)[0]
    return {
        jax.tree_util.keystr(p): [
            list(np.shape(x)),
            str(np.asarray(x).dtype) if not hasattr(x, "dtype") else str(x.dtype),
        ]
        for p, x in leaves
    }


def _checkpointer():
    import orbax.checkpoint as ocp

    # Synchronous: callers rely on the checkpoint being complete when save returns.
    return ocp.Checkpointer(ocp.StandardCheckpointHandler())


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or name in (".", ".."):
        raise ValueError(f"invalid checkpoint name {name!r} (no '/', not hidden)")


def save_checkpoint(directory, name: str, pytree, metadata: dict | None = None, *, by_part: bool = False) -> Path:
    """Write ``pytree`` (arrays) and JSON-serialisable ``metadata`` as ``directory/name``.

    An existing checkpoint of the same name is replaced (atomically: the new one is
    complete before the old one is removed). ``by_part`` (``pytree`` a dict) writes the
    top-level entries one after the other: Orbax holds write buffers for the whole tree
    it saves, so a large state saved in one piece needs about its own size again in
    memory (``benchmarks/checkpoint_memory.py``); by part, about the largest entry's.
    ``restore_checkpoint`` reads either layout.
    """
    import orbax.checkpoint as ocp

    _check_name(name)
    directory = Path(directory).absolute()  # Orbax (tensorstore) refuses relative paths
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    for stale in directory.glob(f"{_TMP_PREFIX}{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{name}-", dir=directory))
    try:
        host_tree = jax.device_get(pytree)
        ckptr = _checkpointer()
        meta = dict(metadata or {})
        if by_part:
            if not isinstance(host_tree, dict):
                raise TypeError("save_checkpoint(by_part=True) needs a dict")
            (tmp / STATE_DIR).mkdir()
            for key, part in host_tree.items():
                _check_name(key)
                ckptr.save(tmp / STATE_DIR / key, args=ocp.args.StandardSave(part))
            meta["_parts"] = list(host_tree)
        else:
            ckptr.save(tmp / STATE_DIR, args=ocp.args.StandardSave(host_tree))
        ckptr.close()
        meta["_tree"] = tree_spec(host_tree)
        meta["_saved_ns"] = time.time_ns()
        _write_json_atomic(tmp / METADATA_FILE, meta)
        if final.exists():
            old = directory / f"{_TMP_PREFIX}{name}-old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_metadata(directory, name: str) -> dict:
    """The metadata dict of ``directory/name`` (without restoring arrays)."""
    path = Path(directory) / name / METADATA_FILE
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {Path(directory) / name}: {METADATA_FILE} is missing "
            "(not a checkpoint, or written by an interrupted process)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path}: corrupt metadata ({e})") from e
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: cannot read ({e.strerror or e})") from e


def _spec_mismatch(saved: dict, expected: dict) -> str | None:
    missing = [k for k in expected if k not in saved]
    extra = [k for k in saved if k not in expected]
    if missing or extra:
        return (
            f"tree structure differs: {len(missing)} leaf/leaves missing in the checkpoint "
            f"(e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})"
        )
    for k, (shape, dtype) in expected.items():
        s_shape, s_dtype = saved[k]
        if list(s_shape) != list(shape):
            return f"leaf {k}: checkpoint shape {tuple(s_shape)} != expected {tuple(shape)}"
        if s_dtype != dtype:
            return f"leaf {k}: checkpoint dtype {s_dtype} != expected {dtype}"
    return None


def restore_checkpoint(directory, name: str, target) -> tuple[Any, dict]:
    """Restore ``directory/name`` into the structure of ``target`` -> (pytree, metadata).

    ``target`` gives structure, shapes and dtypes (real arrays or
    ``jax.ShapeDtypeStruct``). A missing, corrupt or mismatched checkpoint raises
    ``CheckpointError`` naming the path and the first difference.
    """
    import orbax.checkpoint as ocp

    path = Path(directory).absolute() / name
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    meta = read_metadata(directory, name)
    saved_spec = meta.pop("_tree", None)
    parts = meta.pop("_parts", None)
    # Shapes and dtypes read off the leaves (no trace: restoring is not a recompile).
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), target)
    expected = tree_spec(abstract)
    if saved_spec is not None:
        problem = _spec_mismatch(saved_spec, expected)
        if problem:
            raise CheckpointError(f"checkpoint {path} does not match the expected state: {problem}")
    if parts is not None and (not isinstance(abstract, dict) or sorted(parts) != sorted(abstract)):
        raise CheckpointError(
            f"checkpoint {path}: saved in parts {parts}, which do not match the expected state's entries"
        )
    try:
        ckptr = _checkpointer()
        if parts is None:
            restored = ckptr.restore(path / STATE_DIR, args=ocp.args.StandardRestore(abstract))
        else:
            restored = {
                k: ckptr.restore(path / STATE_DIR / k, args=ocp.args.StandardRestore(abstract[k])) for k in parts
            }
        ckptr.close()
    except Exception as e:  # orbax raises assorted types for truncated/corrupt files
        raise CheckpointError(f"checkpoint {path}: cannot restore arrays ({type(e).__name__}: {e})") from e
    restored = jax.tree.map(lambda x: np.asarray(x), restored)
    return restored, meta


def list_checkpoints(directory) -> list[str]:
    """Names of complete checkpoints in ``directory``, oldest save first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        if p.name.startswith(".") or not (p / METADATA_FILE).is_file() or not (p / STATE_DIR).is_dir():
            continue
        try:
            saved = json.loads((p / METADATA_FILE).read_text(encoding="utf-8")).get("_saved_ns", 0)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        found.append((saved, p.name))
    return [n for _, n in sorted(found)]


def latest_checkpoint(directory) -> str | None:
    """Name of the most recently saved complete checkpoint in ``directory``, or None."""
    names = list_checkpoints(directory)
    return names[-1] if names else None
