"""DISFA reader: ``ActionUnit_Labels/SN001/SN001_au<k>.txt`` ("frame,intensity"
lines, 0–5) and ``Videos_LeftCamera/LeftVideoSN001_comp.avi``.

DISFA is AU-only (spontaneous, no emotion classes): one record per labelled frame,
``onset = apex = offset = frame``, ``aus`` = the AUs with intensity >= 2 (the common
occurrence threshold), ``label=None``. The frames live in a video, not a folder, so
``frame_dir`` is None and ``video_path`` gives the video.
"""

from __future__ import annotations

import re
from pathlib import Path

from data_pipelines.clip_record import ClipRecord
from data_pipelines.readers import layout
from fedpsyau_jax.core.errors import InputDataError, InputFileError

AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
SUBJECTS = tuple(f"SN{n:03d}" for n in [*range(1, 14), 16, 17, 18, 21, *range(23, 33)])
OCCURRENCE_THRESHOLD = 2
FPS = 20.0
LABELS = "ActionUnit_Labels"


def _read_au_file(path: Path) -> dict[int, int]:
    out = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [t for t in re.split(r"[,\s]+", line.strip()) if t]
        try:
            frame, inten = int(float(parts[0])), int(float(parts[1]))
        except (ValueError, IndexError):
            raise InputDataError(f"DISFA: {path} line {i}: expected 'frame,intensity', got {line!r}") from None
        if not 0 <= inten <= 5:
            raise InputDataError(f"DISFA: {path} line {i}: intensity {inten} outside 0..5")
        out[frame] = inten
    return out


def read_disfa(root: Path, step: int = 1) -> list[ClipRecord]:
    """Per-frame AU occurrence records of every subject found (every ``step``-th frame)."""
    root = Path(root)
    base = layout.find_frames_base(root, LABELS)
    if base is None:
        raise InputFileError(f"DISFA: no {LABELS}/ folder below {root}")
    records = []
    subjects = sorted(d.name for d in (base / LABELS).iterdir() if d.is_dir())
    unknown = [s for s in subjects if s not in SUBJECTS]
    if unknown:
        raise InputDataError(f"DISFA: unexpected subject folders {unknown} in {base / LABELS}")
    for subj in subjects:
        per_au = {}
        for au in AUS:
            f = base / LABELS / subj / f"{subj}_au{au}.txt"
            if not f.is_file():
                raise InputFileError(f"DISFA: missing label file {f}")
            per_au[au] = _read_au_file(f)
        frames = sorted(per_au[AUS[0]])
        for au, d in per_au.items():
            if sorted(d) != frames:
                raise InputDataError(f"DISFA: {subj}: AU{au} labels a different frame set than AU{AUS[0]}")
        for fr in frames[::step]:
            aus = frozenset(a for a in AUS if per_au[a][fr] >= OCCURRENCE_THRESHOLD)
            records.append(
                ClipRecord(
                    dataset="disfa",
                    subject=subj,
                    clip=subj,
                    name=f"{subj}_{fr:05d}",
                    onset=fr,
                    apex=fr,
                    offset=fr,
                    aus=aus,
                    emotion="",
                    label=None,
                    fps=FPS,
                )
            )
    if not records:
        raise InputDataError(f"DISFA: no label folders under {base / LABELS}")
    # Names are unique by construction and onset == apex is the point of per-frame
    # records, so the shared check_records (which reports onset == apex) is not run.
    return records


def video_path(root: Path, subject: str) -> Path:
    """The left-camera video of a DISFA subject."""
    base = layout.find_frames_base(Path(root), "Videos_LeftCamera") or Path(root)
    return base / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi"
