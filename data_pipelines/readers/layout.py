"""Finding a release's label sheet and frame folders below a dataset root.

Users unpack releases in different ways (the sheet next to the frames, in an
``annotation/`` folder, frames inside ``CASME2_RAW_selected/`` ...). Rather than one
hard-coded layout per dataset we search a few levels deep for the sheet by name
pattern and for the folder that holds the subject folders.
"""

from __future__ import annotations

import re
from pathlib import Path

from fedpsyau_jax.core.errors import InputDataError, InputFileError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_MAX_DEPTH = 3


def find_sheet(root: Path, patterns: tuple[str, ...], what: str) -> Path:
    """The label sheet below ``root`` matching the first pattern that matches anything."""
    root = Path(root)
    if root.is_file():
        return root
    if not root.is_dir():
        raise InputFileError(f"{what} dataset root {root}: does not exist")
    for pat in patterns:
        for depth in range(_MAX_DEPTH + 1):
            hits = sorted(root.glob("/".join(["*"] * depth + [pat])))
            hits = [h for h in hits if h.is_file() and not h.name.startswith("~$")]
            if hits:
                return hits[0]
    raise InputFileError(
        f"{what} dataset root {root}: no label sheet matching {list(patterns)} "
        f"(searched {_MAX_DEPTH} folder levels down)"
    )


def find_frames_base(root: Path, subject_dir: str) -> Path | None:
    """The folder (``root`` or a descendant up to 3 levels) that holds ``subject_dir``."""
    root = Path(root)
    if not root.is_dir():
        return None
    level = [root]
    for _ in range(_MAX_DEPTH + 1):
        nxt = []
        for d in level:
            if (d / subject_dir).is_dir():
                return d
            try:
                nxt.extend(sorted(c for c in d.iterdir() if c.is_dir()))
            except PermissionError:
                continue
        level = nxt
    return None


def existing_variant(base: Path, *variants: str) -> Path | None:
    """The first of ``base/variant`` that is a folder (spelling variants of a clip)."""
    for v in variants:
        if (base / v).is_dir():
            return base / v
    return None


def frame_number(p: Path) -> int:
    """Frame index from a file name: the last run of digits (img46.jpg, 006_05562.jpg)."""
    m = re.findall(r"\d+", p.stem)
    if not m:
        raise InputDataError(f"frame file {p} has no frame number in its name")
    return int(m[-1])


def sorted_frames(folder: Path) -> list[Path]:
    """Image files of ``folder`` in frame-number order (not string order: img10 > img9)."""
    files = [p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: (frame_number(p), p.name))


def clip_frame_paths(folder: Path | None, onset: int | None, offset: int | None) -> tuple[Path, ...] | None:
    """Frames numbered onset..offset (inclusive) in ``folder``, when every one exists.

    The contract for readers of frame-numbered releases: ``frame_paths[k]`` is frame
    ``onset + k``, so the apex is ``frame_paths[apex - onset]``. A gap (or no folder)
    gives None and the consumer falls back to ``frame_dir`` plus frame numbers.
    """
    if folder is None or onset is None or offset is None or not folder.is_dir() or offset < onset:
        return None
    by_num: dict[int, Path] = {}
    for p in sorted_frames(folder):
        by_num.setdefault(frame_number(p), p)
    try:
        return tuple(by_num[n] for n in range(onset, offset + 1))
    except KeyError:
        return None
