"""CAS(ME)^3 Part C long-video annotations (spotting): ``CAS(ME)3_part_C_ME.xlsx``.

What public code that reads the released file shows (and all this reader relies on):
a header row naming ``sub`` (subject number), ``count`` (expression number within
the subject), ``onset``, ``offset``, ``emotion`` and ``PHY`` (the physiological
recording's file name); frames of the one long video per subject live in
``part_C/<sub as two digits>/a/color/<n>.jpg`` (depth in ``.../depth/<n>.png``),
numbered as in the sheet; 30 fps. An ``apex`` and an AU column are read when present
(not checked against the release). The file is the micro-expression (ME) list, so
every row is a micro-expression; a macro-expression list, if the release has one, is
read with ``kind="macro"``. The video id is the two-digit subject (``01``).
"""

from __future__ import annotations

from pathlib import Path

from data_pipelines.readers import layout
from data_pipelines.readers.long_video_annotation import LongVideoAnnotation
from data_pipelines.readers.sheet_table import SheetError, cell_int, cell_str, read_table, row_error

FPS = 30.0
SHEET_PATTERNS = ("CAS(ME)3_part_C_ME*.xlsx", "CAS(ME)3_part_C*.xlsx", "*part_C*.csv")
FIELDS = {
    "subject": ("sub", "Subject"),
    "count": ("count",),
    "onset": ("onset", "Onset"),
    "apex": ("apex", "Apex"),
    "offset": ("offset", "Offset"),
    "emotion": ("emotion", "Emotion"),
    "aus": ("AU", "AUs", "Action Units"),
}


def read_casme3_long(root_or_sheet_path: Path, kind: str = "micro") -> list[LongVideoAnnotation]:
    if kind not in ("micro", "macro"):
        raise ValueError(f"kind {kind!r}: micro or macro")
    path = layout.find_sheet(Path(root_or_sheet_path), SHEET_PATTERNS, "CAS(ME)^3 Part C")
    table = read_table(path, FIELDS, sheet=None, optional=("count", "apex", "emotion", "aus"))
    out = []
    for rownum, row in table.rows:
        where = table.where(rownum)
        try:
            subj = cell_str(table, rownum, row, "subject")
            if not subj.isdigit():
                raise SheetError(f"{where}: sub {subj!r} is not a subject number")
            onset = cell_int(table, rownum, row, "onset")
            offset = cell_int(table, rownum, row, "offset")
            assert onset is not None and offset is not None  # cell_int raises on a missing required cell
            apex = cell_int(table, rownum, row, "apex", allow_missing=True)
            if offset < onset:
                raise SheetError(f"{where}: offset {offset} before onset {onset}")
            count = cell_str(table, rownum, row, "count", required=False)
        except (ValueError, SheetError) as e:
            raise row_error("CAS(ME)^3 Part C", where, e) from e
        vid = f"{int(subj):02d}"
        out.append(
            LongVideoAnnotation(
                "casme3_long",
                vid,
                vid,
                onset,
                apex,
                offset,
                kind,
                cell_str(table, rownum, row, "emotion", required=False),
                cell_str(table, rownum, row, "aus", required=False),
                f"{vid}_{count or onset}",
            )
        )
    return out
