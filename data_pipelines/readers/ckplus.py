"""CK+ reader: ``cohn-kanade-images/S005/001/S005_001_00000001.png`` with
``FACS/S005/001/*_facs.txt`` (peak-frame AUs) and ``Emotion/S005/001/*_emotion.txt``.

CK+ sequences run from neutral (first frame) to the peak (last frame), so onset is
the first frame, apex and offset the last. Only 327 of 593 sequences carry an
emotion file; the others get ``label=None`` (and ``emotion=""``).
"""

from __future__ import annotations

from pathlib import Path

from data_pipelines.clip_record import ClipRecord
from data_pipelines.label_maps import map_emotion
from data_pipelines.readers import layout
from fedpsyau_jax.core.errors import InputDataError, InputFileError

IMAGES, FACS, EMOTION = "cohn-kanade-images", "FACS", "Emotion"


def _numbers(path: Path) -> list[list[float]]:
    """Rows of whitespace-separated numbers (CK+ writes them as 3.0000000e+00)."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append([float(t) for t in line.split()])
            except ValueError:
                raise InputDataError(f"CK+: {path} line {i} is not numbers: {line.strip()!r}") from None
    return rows


def read_facs(path: Path) -> frozenset[int]:
    aus = set()
    for row in _numbers(path):
        if not row[0].is_integer() or row[0] < 1:
            raise InputDataError(f"CK+: {path}: {row[0]} is not an AU number")
        aus.add(int(row[0]))
    return frozenset(aus)


def read_emotion_code(path: Path) -> int:
    rows = _numbers(path)
    if len(rows) != 1 or len(rows[0]) != 1 or not rows[0][0].is_integer():
        raise InputDataError(f"CK+: {path} should hold one emotion code, got {rows}")
    return int(rows[0][0])


def read_ckplus(root: Path, scheme: str = "emotion7") -> list[ClipRecord]:
    """One record per image sequence; ``name`` is ``S005_001``."""
    root = Path(root)
    base = layout.find_frames_base(root, IMAGES)
    if base is None:
        raise InputFileError(f"CK+: no {IMAGES}/ folder below {root}")
    records = []
    for subj_dir in sorted(d for d in (base / IMAGES).iterdir() if d.is_dir()):
        for seq_dir in sorted(d for d in subj_dir.iterdir() if d.is_dir()):
            frames = layout.sorted_frames(seq_dir)
            if not frames:
                continue
            rel = Path(subj_dir.name) / seq_dir.name
            facs = sorted((base / FACS / rel).glob("*_facs.txt"))
            emo = sorted((base / EMOTION / rel).glob("*_emotion.txt"))
            code = read_emotion_code(emo[0]) if emo else None
            nums = [layout.frame_number(f) for f in frames]
            records.append(
                ClipRecord(
                    dataset="ckplus",
                    subject=subj_dir.name,
                    clip=seq_dir.name,
                    name=f"{subj_dir.name}_{seq_dir.name}",
                    onset=nums[0],
                    apex=nums[-1],
                    offset=nums[-1],
                    aus=read_facs(facs[0]) if facs else frozenset(),
                    emotion="" if code is None else str(code),
                    label=None if code is None else map_emotion("ckplus", code, scheme),
                    frame_dir=seq_dir,
                    frame_paths=tuple(frames),
                )
            )
    if not records:
        raise InputDataError(f"CK+: no image sequences under {base / IMAGES}")
    from data_pipelines.readers import check_records

    return check_records(records, base / IMAGES)


def landmarks_path(record: ClipRecord, frame: Path) -> Path:
    """``Landmarks/S005/001/S005_001_00000001_landmarks.txt`` for a frame of a record."""
    if record.frame_dir is None:
        raise InputDataError(f"CK+ record {record.name} has no frame_dir")
    base = record.frame_dir.parent.parent.parent
    return base / "Landmarks" / record.subject / record.clip / f"{frame.stem}_landmarks.txt"


def read_landmarks(path: Path) -> "list[tuple[float, float]]":
    """The 68 (x, y) points of a CK+ landmark file."""
    pts = [(r[0], r[1]) for r in _numbers(path)]
    if len(pts) != 68:
        raise InputDataError(f"CK+: {path} has {len(pts)} points, expected 68")
    return pts
