"""CAS(ME)^3 Part A reader: ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``
sheet ``label`` (all cells text) + frames ``spNO.1/b/color/175.jpg``."""

from __future__ import annotations

from pathlib import Path

from data_pipelines.clip_record import ClipRecord
from data_pipelines.readers import layout
from data_pipelines.readers.annotation_row import read_annotation_row
from data_pipelines.readers.sheet_table import SheetError, row_error, cell_str, read_table

FPS = 30.0
SHEET_PATTERNS = ("cas(me)3_part_A_ME_label*.xlsx", "cas(me)*part_A*.xlsx", "cas(me)3_part_A*.csv")
FIELDS = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset",),
    "apex": ("Apex",),
    "offset": ("Offset",),
    "aus": ("AU", "Action Units"),
    "emotion": ("emotion", "Estimated Emotion"),
}


def read_casme3(
    root_or_sheet_path: Path, scheme: str = "megc3", sheet: str | None = "label", frames_root: Path | None = None
) -> list[ClipRecord]:
    """One record per row; ``name`` is ``spNO.1_b_166`` (subject, task, onset).

    One (subject, task) video holds several micro-expressions, so the onset frame is
    part of the key. Task letters are a–m; the sheet writes one of them as "J", which
    we fold to lower case (the folder name) for ``clip`` and ``name``. Frames live in
    ``<base>/<subject>/<task>/color/<n>.jpg``.
    """
    p = Path(root_or_sheet_path)
    sheet_path = layout.find_sheet(p, SHEET_PATTERNS, "CAS(ME)^3")
    table = read_table(sheet_path, FIELDS, sheet=sheet if sheet_path.suffix != ".csv" else None)
    base: Path | None = None
    searched = False  # find the frames folder once, on the first row
    records = []
    for rownum, row in table.rows:
        where = table.where(rownum)
        try:
            subj = cell_str(table, rownum, row, "subject")
            a = read_annotation_row(table, rownum, row, "casme3", scheme)
        except (ValueError, SheetError) as e:
            raise row_error("CAS(ME)^3", where, e) from e
        task_raw, onset, offset = a.filename, a.onset, a.offset
        task = task_raw.lower()
        if not searched and (frames_root is not None or p.is_dir()):
            base, searched = layout.find_frames_base(Path(frames_root or p), subj), True
        frame_dir = None
        if base:
            clip_dir = layout.existing_variant(base / subj, task, task_raw) or base / subj / task
            frame_dir = clip_dir / "color"
        records.append(
            ClipRecord(
                dataset="casme3",
                subject=subj,
                clip=task,
                name=f"{subj}_{task}_{onset}",
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
