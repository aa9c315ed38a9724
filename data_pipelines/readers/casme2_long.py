"""CAS(ME)^2 long-video annotations (spotting): ``CAS(ME)^2code_final(Updated).xlsx``.

Layout of the published workbook (as read by public spotting code, e.g. the MEGC
baselines): the first sheet has no header row and one expression per row, columns
participant number, "<video name>_<expression number>", onset, apex, offset, AUs,
estimated emotion, expression type ("macro-expression" / "micro-expression"),
self-reported emotion. The second sheet maps subject folder numbers (column 1, e.g.
15 for ``rawpic/s15``) to participant numbers (column 3); the third maps video codes
(column 1, e.g. "0101", stored as text) to video names (column 2). Frames live in
``rawpic/s<subject>/<subject>_<code><name>/img<n>.jpg`` with n from 1, the numbering
of the sheet. An offset of 0 means "not coded": the apex is used as offset (the
convention of the MEGC baseline code). 30 fps.
"""

from __future__ import annotations

from pathlib import Path

from data_pipelines.readers import layout
from data_pipelines.readers.long_video_annotation import LongVideoAnnotation
from data_pipelines.readers.sheet_table import SheetError, load_raw_rows
from fedpsyau_jax.core.errors import InputDataError

FPS = 30.0
SHEET_PATTERNS = ("CAS(ME)^2code_final*.xlsx", "CAS(ME)*code*.xlsx")
KINDS = {"micro-expression": "micro", "macro-expression": "macro"}


def _sheets(path: Path) -> list[list[tuple]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, data_only=True, read_only=True)
    except Exception as e:
        raise SheetError(f"label sheet {path}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from None
    try:
        if len(wb.worksheets) < 3:
            raise SheetError(
                f"{path}: expected 3 sheets (expressions, subject naming, video naming), "
                f"found {len(wb.worksheets)} ({wb.sheetnames})"
            )
        return [[tuple(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets[:3]]
    finally:
        wb.close()


def _text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return "" if v is None else str(v).strip()


def _int(v, where: str, what: str) -> int:
    try:
        f = float(_text(v))
    except ValueError:
        raise SheetError(f"{where}: {what} is not a frame number: {v!r}") from None
    if not f.is_integer() or f < 0:
        raise SheetError(f"{where}: {what} is not a frame number: {v!r}")
    return int(f)


def read_casme2_long(root_or_sheet_path: Path) -> list[LongVideoAnnotation]:
    """One annotation per expression row; ``video`` is ``<subject>_<code>`` (``15_0101``)."""
    path = layout.find_sheet(Path(root_or_sheet_path), SHEET_PATTERNS, "CAS(ME)^2")
    if path.suffix.lower() == ".csv":
        raise SheetError(f"{path}: the CAS(ME)^2 annotation is a 3-sheet .xlsx workbook")
    if not path.is_file():
        load_raw_rows(path)  # raises the "does not exist" error
    expr, subj_rows, video_rows = _sheets(path)
    subject_of = {}
    for r in subj_rows:
        if len(r) >= 3 and _text(r[0]).isdigit() and _text(r[2]).isdigit():
            subject_of[_text(r[2])] = f"{int(_text(r[0])):02d}"
    code_of = {}
    for r in video_rows:
        if len(r) >= 2 and _text(r[0]) and _text(r[1]):
            code = _text(r[0])
            code_of[_text(r[1])] = code.zfill(4) if code.isdigit() else code
    out = []
    for i, r in enumerate(expr, start=1):
        where = f"CAS(ME)^2 {path} sheet 1 row {i}"
        if not r or all(_text(c) == "" for c in r):
            continue
        if len(r) < 8:
            raise SheetError(f"{where}: {len(r)} columns, expected at least 8")
        participant = _text(r[0])
        if not participant.isdigit():
            if i == 1:
                continue  # a header row some copies add
            raise SheetError(f"{where}: participant {r[0]!r} is not a number")
        if participant not in subject_of:
            raise InputDataError(f"{where}: participant {participant} is not in the subject naming sheet")
        name = _text(r[1])
        vname = name.rsplit("_", 1)[0]
        if vname not in code_of:
            raise InputDataError(f"{where}: video {vname!r} is not in the video naming sheet")
        onset = _int(r[2], where, "onset")
        apex = _int(r[3], where, "apex") if _text(r[3]) not in ("", "/") else None
        offset = _int(r[4], where, "offset")
        if offset == 0:
            if apex is None:
                raise SheetError(f"{where}: neither offset nor apex coded")
            offset = apex
        kind_raw = _text(r[7]).lower()
        if kind_raw not in KINDS:
            raise SheetError(f"{where}: expression type {r[7]!r} (expected one of {sorted(KINDS)})")
        if offset < onset:
            raise SheetError(f"{where}: offset {offset} before onset {onset}")
        subj = subject_of[participant]
        out.append(
            LongVideoAnnotation(
                "casme2_long",
                f"{subj}_{code_of[vname]}",
                subj,
                onset,
                apex,
                offset,
                KINDS[kind_raw],
                _text(r[6]),
                _text(r[5]),
                name,
            )
        )
    return out
