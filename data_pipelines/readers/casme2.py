"""CASME II reader: ``CASME2-coding-*.xlsx`` Sheet1 + ``sub01/EP02_01f/img46.jpg``."""

from __future__ import annotations

from pathlib import Path

from data_pipelines.clip_record import ClipRecord
from data_pipelines.readers import layout
from data_pipelines.readers.annotation_row import read_annotation_row
from data_pipelines.readers.sheet_table import SheetError, row_error, cell_str, read_table


FPS = 200.0
SHEET_PATTERNS = ("CASME2-coding*.xlsx", "CASME2*.xlsx", "CASME2*.csv")
FIELDS = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "aus": ("Action Units", "AU"),
    "emotion": ("Estimated Emotion", "emotion"),
}


def subject_id(raw: str) -> str:
    """Sheet subject ("01", 1, "sub01") -> the two-digit id the folders use ("01")."""
    s = raw.strip().lower().removeprefix("sub")
    if not s.isdigit():
        raise ValueError(f"CASME II subject {raw!r} is not a number")
    return f"{int(s):02d}"


def read_casme2(
    root_or_sheet_path: Path, scheme: str = "megc3", sheet: str | None = "Sheet1", frames_root: Path | None = None
) -> list[ClipRecord]:
    """One record per sheet row. ``name`` is ``sub01_EP02_01f`` (the MEGC2019 spelling).

    When a dataset root is given, ``frame_dir`` is ``<base>/sub01/EP02_01f`` where
    ``<base>`` is the folder holding the ``subXX`` folders (searched below the root,
    or ``frames_root``). Sheet filenames sometimes lack the trailing "f" that the
    folder has (or the reverse); the spelling that exists on disk wins.
    """
    p = Path(root_or_sheet_path)
    sheet_path = layout.find_sheet(p, SHEET_PATTERNS, "CASME II")
    table = read_table(sheet_path, FIELDS, sheet=sheet if sheet_path.suffix != ".csv" else None)
    base = None
    if frames_root is not None or p.is_dir():
        first = _first_subject(table)
        base = layout.find_frames_base(Path(frames_root or p), f"sub{first}") if first else None
    records = []
    for rownum, row in table.rows:
        where = table.where(rownum)
        try:
            subj = subject_id(cell_str(table, rownum, row, "subject"))
            a = read_annotation_row(table, rownum, row, "casme2", scheme)
        except (ValueError, SheetError) as e:
            raise row_error("CASME II", where, e) from e
        fname, onset, offset = a.filename, a.onset, a.offset
        frame_dir = None
        if base is not None:
            stem = fname[:-1] if fname.endswith("f") else fname
            frame_dir = (
                layout.existing_variant(base / f"sub{subj}", fname, stem + "f", stem) or base / f"sub{subj}" / fname
            )
        records.append(
            ClipRecord(
                dataset="casme2",
                subject=subj,
                clip=fname,
                name=f"sub{subj}_{fname}",
                onset=onset,
                apex=a.apex,
                offset=offset,
                aus=a.aus,
                emotion=a.emotion,
                label=a.label,
                frame_dir=frame_dir,
                frame_paths=layout.clip_frame_paths(frame_dir, onset, offset),
                fps=FPS,
            )
        )
    from data_pipelines.readers import check_records

    return check_records(records, sheet_path)


def _first_subject(table) -> str | None:
    for rownum, row in table.rows:
        try:
            return subject_id(cell_str(table, rownum, row, "subject"))
        except ValueError:
            continue
    return None
