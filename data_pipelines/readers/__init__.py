"""Annotation readers, one module per dataset; each returns ``list[ClipRecord]``.

    read_casme2(root_or_sheet) read_samm(...) read_casme3(...) read_dfme(...)
    read_smic(root) read_disfa(root) read_ckplus(root)

Every reader accepts either the label sheet itself (annotation-only use: frame_dir is
None) or the dataset root (the sheet is searched below it and frame folders are
resolved with each release's layout). Records whose emotion the protocol drops keep
``label=None``; filtering is the caller's choice. Rows with onset == apex are kept and
reported (``onset_equals_apex``): the video pipeline handles them with its onset == apex rule.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import logging
from pathlib import Path
from typing import Callable

from data_pipelines.clip_record import ClipRecord
from fedpsyau_jax.core.errors import InputDataError, unknown_name

log = logging.getLogger(__name__)

# name -> (module, function); imported on use so reading one dataset never needs
# another's dependencies.
READERS: dict[str, tuple[str, str]] = {
    "casme2": ("data_pipelines.readers.casme2", "read_casme2"),
    "samm": ("data_pipelines.readers.samm", "read_samm"),
    "casme3": ("data_pipelines.readers.casme3", "read_casme3"),
    "dfme": ("data_pipelines.readers.dfme", "read_dfme"),
    "smic": ("data_pipelines.readers.smic", "read_smic"),
    "disfa": ("data_pipelines.readers.disfa", "read_disfa"),
    "ckplus": ("data_pipelines.readers.ckplus", "read_ckplus"),
}


def get_reader(name: str) -> Callable[..., list[ClipRecord]]:
    if name not in READERS:
        raise unknown_name("reader dataset", name, sorted(READERS))
    mod, fn = READERS[name]
    return getattr(importlib.import_module(mod), fn)


def onset_equals_apex(records: list[ClipRecord]) -> list[ClipRecord]:
    """The records whose apex frame equals their onset frame (no motion onset->apex)."""
    return [r for r in records if r.apex is not None and r.onset is not None and r.apex == r.onset]


def check_records(records: list[ClipRecord], source: Path | str) -> list[ClipRecord]:
    """Shared sanity checks of a reader's output.

    Duplicate sample names would silently merge two clips downstream (caches and
    joins key on ``name``), so they are an error, and so is an apex before the onset.
    An offset before the apex becomes None (see below); onset == apex is legal data
    and only logged. Returns the (possibly repaired) records.
    """
    dup = [n for n, c in collections.Counter(r.name for r in records).items() if c > 1]
    if dup:
        raise InputDataError(f"{source}: duplicate sample names {dup[:5]} ({len(dup)} in all)")
    out, unknown_offset = [], []
    for r in records:
        if r.apex is not None and r.onset is not None and r.apex < r.onset:
            raise InputDataError(f"{source}: sample {r.name}: apex {r.apex} before onset {r.onset}")
        # CAS(ME)^3 writes offset 0 for "not annotated" (spNO.40 e): an offset before
        # the apex carries no information, so it becomes unknown instead of an error.
        last = r.apex if r.apex is not None else r.onset
        if r.offset is not None and last is not None and r.offset < last:
            unknown_offset.append(r.name)
            r = dataclasses.replace(r, offset=None, frame_paths=None)
        out.append(r)
    if unknown_offset:
        log.warning(
            "%s: %d sample(s) have an offset before apex/onset (e.g. %s); offset treated as unknown",
            source,
            len(unknown_offset),
            unknown_offset[0],
        )
    records = out
    same = onset_equals_apex(records)
    if same:
        # The video pipeline substitutes the clip's first frame as onset; an onset..offset frame
        # list would hide it, so these records expose their whole frame_dir instead.
        ids = {id(r) for r in same}
        records = [dataclasses.replace(r, frame_paths=None) if id(r) in ids and r.frame_dir else r for r in records]
        same = onset_equals_apex(records)
    if same:
        log.warning(
            "%s: %d sample(s) have onset == apex (e.g. %s); kept, the video "
            "pipeline must substitute the clip's first frame or skip them",
            source,
            len(same),
            same[0].name,
        )
    return records


def __getattr__(attr: str):
    # ``from data_pipelines.readers import read_casme2`` works without importing all.
    for mod, fn in READERS.values():
        if attr == fn:
            return getattr(importlib.import_module(mod), fn)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
