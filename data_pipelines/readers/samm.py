"""SAMM reader: sheet MICRO_ONLY (13 preamble rows in the official file) +
frames ``006/006_1_2/006_05562.jpg``."""

from __future__ import annotations

from pathlib import Path

from data_pipelines.clip_record import ClipRecord
from data_pipelines.readers import layout
from data_pipelines.readers.annotation_row import read_annotation_row
from data_pipelines.readers.sheet_table import SheetError, row_error, cell_str, read_table

FPS = 200.0
SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes*.xlsx", "SAMM*.xlsx", "SAMM*.csv")
FIELDS = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset Frame", "Onset"),
    "apex": ("Apex Frame", "Apex"),
    "offset": ("Offset Frame", "Offset"),
    "aus": ("Action Units", "AU"),
    "emotion": ("Estimated Emotion", "emotion"),
}


def subject_id(raw: str) -> str:
    s = raw.strip()
    if not s.isdigit():
        raise ValueError(f"SAMM subject {raw!r} is not a number")
    return f"{int(s):03d}"


def read_samm(
    root_or_sheet_path: Path, scheme: str = "megc3", sheet: str | None = "MICRO_ONLY", frames_root: Path | None = None
) -> list[ClipRecord]:
    """One record per coded micro-expression; ``name`` is ``006_006_1_2`` (MEGC2019).

    The header row is found wherever it is (after the official file's 13-row
    preamble or on row 1 of trimmed copies). Duration is a formula column we do not
    read: it is offset - onset + 1 and openpyxl (data_only) gives None when the
    workbook was never recalculated.
    """
    p = Path(root_or_sheet_path)
    sheet_path = layout.find_sheet(p, SHEET_PATTERNS, "SAMM")
    table = read_table(sheet_path, FIELDS, sheet=sheet if sheet_path.suffix != ".csv" else None)
    base: Path | None = None
    searched = False  # find the frames folder once, on the first row
    records = []
    for rownum, row in table.rows:
        where = table.where(rownum)
        try:
            subj = subject_id(cell_str(table, rownum, row, "subject"))
            a = read_annotation_row(table, rownum, row, "samm", scheme)
        except (ValueError, SheetError) as e:
            raise row_error("SAMM", where, e) from e
        if not searched and (frames_root is not None or p.is_dir()):
            base, searched = layout.find_frames_base(Path(frames_root or p), subj), True
        fname = a.filename
        frame_dir = (base / subj / fname) if base else None
        records.append(
            ClipRecord(
                dataset="samm",
                subject=subj,
                clip=fname,
                name=f"{subj}_{fname}",
                onset=a.onset,
                apex=a.apex,
                offset=a.offset,
                aus=a.aus,
                emotion=a.emotion,
                label=a.label,
                frame_dir=frame_dir,
                frame_paths=layout.clip_frame_paths(frame_dir, a.onset, a.offset),
                fps=FPS,
            )
        )
    from data_pipelines.readers import check_records

    return check_records(records, sheet_path)
