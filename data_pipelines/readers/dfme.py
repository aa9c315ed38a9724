"""DFME reader. The label sheet ``DFME_data_coding.xlsx`` is not public; its
layout as the reference code reads it: column 0 Subject (``sub0001``), column 1
Filename, column 6 emotion, and a column named ``fps`` (200 or 500).

Frames: ``<part folder>/micro_static_aligned_croped/<emotion>/<Filename>/`` where the
part folder follows from the subject number (and, for part D, the fps column).
"""

from __future__ import annotations

import re
from pathlib import Path

from data_pipelines.clip_record import ClipRecord
from data_pipelines.readers import layout
from data_pipelines.readers.annotation_row import read_annotation_row
from data_pipelines.readers.sheet_table import SheetError, row_error, cell_int, cell_str, read_table
from fedpsyau_jax.core.errors import InputDataError

SHEET_PATTERNS = ("DFME_data_coding*.xlsx", "DFME*.xlsx", "DFME*.csv")
FRAMES_SUBDIR = "micro_static_aligned_croped"  # sic: the release spells it so
SUBJECT_COL, FILENAME_COL, EMOTION_COL = 0, 1, 6
# Optional columns read by name when the sheet has them.
OPTIONAL_FIELDS = {
    "onset": ("Onset", "OnsetFrame", "Onset Frame"),
    "apex": ("Apex", "ApexFrame", "Apex Frame"),
    "offset": ("Offset", "OffsetFrame", "Offset Frame"),
    "aus": ("Action Units", "AU"),
}


def subject_number(raw: str) -> int:
    m = re.fullmatch(r"(?:sub)?0*(\d+)", raw.strip().lower())
    if not m:
        raise InputDataError(f"DFME subject {raw!r} is not like 'sub0001'")
    return int(m.group(1))


def part_folder(subject: int, fps: float) -> str:
    """Release folder of a subject: parts A–C by subject range, part D also by fps."""
    if 1 <= subject <= 15:
        return "USTC_MEv4_partA_sub0001_sub0015"
    if 16 <= subject <= 110:
        return "USTC_MEv4_partB_sub0016_sub0110"
    if 111 <= subject <= 300:
        return "USTC_MEv4_partC_sub0111_sub0300"
    if 301 <= subject <= 671:
        if int(fps) not in (200, 500):
            raise InputDataError(f"DFME subject {subject}: part D needs fps 200 or 500, got {fps}")
        return f"USTC_MEv4_partD_sub0301_sub0671_{int(fps)}fps"
    raise InputDataError(f"DFME subject number {subject} outside 1..671")


def read_dfme(
    root_or_sheet_path: Path, scheme: str = "emotion7", sheet: str | None = None, frames_root: Path | None = None
) -> list[ClipRecord]:
    """One record per sheet row; ``name`` is ``sub0001_<Filename>``.

    Subject, Filename and emotion are positional (columns 0, 1, 6, as the
    reference code reads them); ``fps`` is found by name because its position is not documented. Onset,
    apex, offset and AU columns are read when present (by name), else None / empty.
    """
    p = Path(root_or_sheet_path)
    sheet_path = layout.find_sheet(p, SHEET_PATTERNS, "DFME")
    table = read_table(sheet_path, {"fps": ("fps",), **OPTIONAL_FIELDS}, sheet=sheet, optional=tuple(OPTIONAL_FIELDS))
    table.columns.update(subject=SUBJECT_COL, filename=FILENAME_COL, emotion=EMOTION_COL)
    base = Path(frames_root or p) if (frames_root is not None or p.is_dir()) else None
    records = []
    for rownum, row in table.rows:
        where = table.where(rownum)
        try:
            if len(row) <= EMOTION_COL:
                raise SheetError(f"only {len(row)} columns; the emotion is column {EMOTION_COL}")
            subj_raw = cell_str(table, rownum, row, "subject")
            num = subject_number(subj_raw)
            subj = f"sub{num:04d}"
            fps = float(cell_int(table, rownum, row, "fps") or 0)  # never None: allow_missing=False raises
            a = read_annotation_row(table, rownum, row, "dfme", scheme, onset_required=False)
            fname, emotion, onset, offset = a.filename, a.emotion, a.onset, a.offset
            part = part_folder(num, fps)
        except (ValueError, SheetError) as e:
            raise row_error("DFME", where, e) from e
        frame_dir = None
        if base is not None:
            pbase = layout.find_frames_base(base, part) or base
            emo_root = pbase / part / FRAMES_SUBDIR
            # The emotion folder's capitalisation is not documented; take what exists.
            emo_dir = (
                layout.existing_variant(emo_root, emotion, emotion.lower(), emotion.capitalize())
                or emo_root / emotion.lower()
            )
            frame_dir = emo_dir / fname
        records.append(
            ClipRecord(
                dataset="dfme",
                subject=subj,
                clip=fname,
                name=f"{subj}_{fname}",
                onset=onset,
                apex=a.apex,
                offset=offset,
                aus=a.aus,
                emotion=emotion,
                label=a.label,
                frame_dir=frame_dir,
                frame_paths=layout.clip_frame_paths(frame_dir, onset, offset),
                fps=fps,
            )
        )
    from data_pipelines.readers import check_records

    return check_records(records, sheet_path)
