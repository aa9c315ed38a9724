"""SAMM Long Videos annotations (spotting): ``SAMM_LongVideos_V3_Release.xlsx``.

The published workbook has a preamble of about ten rows, then a header row with
Subject, Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units,
Notes (the header is located wherever it is, as for SAMM). ``Filename`` is
``<subject>_<video>_<expression>`` (``006_1_2``); the video id is its first two parts
(``006_1``, the frame folder ``006_1/`` of the release). ``Type`` is "Macro" or
"Micro - 1/2" (micro-expressions and the "1/2" ones the coders could not split);
anything else is an error naming the row. An offset of 0 (or blank) means "not
coded": the apex is used. 200 fps.
"""

from __future__ import annotations

from pathlib import Path

from data_pipelines.readers import layout
from data_pipelines.readers.long_video_annotation import LongVideoAnnotation
from data_pipelines.readers.sheet_table import SheetError, cell_int, cell_str, read_table, row_error

FPS = 200.0
SHEET_PATTERNS = ("SAMM_LongVideos*.xlsx", "SAMM_longvideos*.xlsx", "SAMM*Long*.csv")
FIELDS = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset", "Onset Frame"),
    "apex": ("Apex", "Apex Frame"),
    "offset": ("Offset", "Offset Frame"),
    "type": ("Type",),
    "aus": ("Action Units", "AU"),
    "emotion": ("Estimated Emotion", "Emotion"),
}


def read_samm_long(root_or_sheet_path: Path) -> list[LongVideoAnnotation]:
    path = layout.find_sheet(Path(root_or_sheet_path), SHEET_PATTERNS, "SAMM Long Videos")
    table = read_table(path, FIELDS, sheet=None, optional=("aus", "emotion", "apex"))
    out = []
    for rownum, row in table.rows:
        where = table.where(rownum)
        try:
            subj = cell_str(table, rownum, row, "subject")
            fname = cell_str(table, rownum, row, "filename")
            parts = fname.split("_")
            if len(parts) < 3:
                raise SheetError(f"{where}: Filename {fname!r} is not <subject>_<video>_<expression>")
            onset = cell_int(table, rownum, row, "onset")
            assert onset is not None  # cell_int raises on a missing required cell
            apex = cell_int(table, rownum, row, "apex", allow_missing=True)
            offset = cell_int(table, rownum, row, "offset", allow_missing=True)
            if not offset:
                if apex is None:
                    raise SheetError(f"{where}: neither Offset nor Apex coded")
                offset = apex
            t = cell_str(table, rownum, row, "type").lower()
            kind = "macro" if t.startswith("macro") else "micro" if t.startswith("micro") else None
            if kind is None:
                raise SheetError(f"{where}: Type {t!r} is neither Macro nor Micro")
            if offset < onset:
                raise SheetError(f"{where}: Offset {offset} before Onset {onset}")
        except (ValueError, SheetError) as e:
            raise row_error("SAMM Long Videos", where, e) from e
        out.append(
            LongVideoAnnotation(
                "samm_long",
                "_".join(parts[:2]),
                subj.zfill(3) if subj.isdigit() else subj,
                onset,
                apex,
                offset,
                kind,
                cell_str(table, rownum, row, "emotion", required=False),
                cell_str(table, rownum, row, "aus", required=False),
                fname,
            )
        )
    return out
