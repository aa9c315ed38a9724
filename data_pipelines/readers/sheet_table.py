"""Reading label sheets (.xlsx via openpyxl, or .csv) as rows addressed by column name.

Real sheets differ from their documentation: the CASME II copy says "Onset Frame" where
the manual says "OnsetFrame", SAMM's official file has a 13-row preamble before the
header while the reference's copy has none, CAS(ME)^3 stores every number as text
(but a few as real numbers). So the header row is *found* (the first row that names
every required column), column names are compared after dropping case, spaces and
punctuation, and each field accepts a list of aliases in priority order.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from fedpsyau_jax.core.errors import InputDataError, InputFileError


class SheetError(InputDataError):
    """A label sheet that does not have the expected layout or holds a bad cell
    (a ``UserError``/ValueError; the message names the file and row)."""


def norm_header(h: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(h).lower()) if h is not None else ""


@dataclass
class Table:
    path: Path
    sheet: str | None
    header_row: int  # 1-based row number of the header (as Excel shows it)
    columns: dict[str, int]  # field -> column index
    rows: list[tuple[int, tuple]]  # (1-based row number, cells) for non-empty body rows

    def where(self, rownum: int) -> str:
        s = f"{self.path}" + (f" sheet {self.sheet!r}" if self.sheet else "")
        return f"{s} row {rownum}"


def row_error(what: str, where: str, err: Exception) -> "SheetError":
    """``<what> <file> row N: <problem>`` (the location only once)."""
    msg = str(err)
    if msg.startswith(where):
        msg = msg[len(where) :].lstrip(": ")
    return SheetError(f"{what} {where}: {msg}")


def load_raw_rows(path: Path, sheet: str | None = None) -> tuple[str | None, list[tuple]]:
    """All rows of ``sheet`` (default: the first) of an .xlsx, or of a .csv."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"label sheet {path}: does not exist")
    if path.suffix.lower() == ".csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                return None, [tuple(r) for r in csv.reader(f)]
        except (UnicodeDecodeError, csv.Error) as e:
            raise SheetError(f"label sheet {path}: not a readable UTF-8 CSV ({e})") from None
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        raise SheetError(f"{path}: expected an .xlsx or .csv label sheet")
    import openpyxl

    # data_only=True returns the cached value of formula cells (SAMM's Duration);
    # a workbook never opened in Excel has no cached value, which reads as None.
    try:
        wb = openpyxl.load_workbook(path, data_only=True, read_only=True)
    except Exception as e:  # zipfile.BadZipFile, InvalidFileException, KeyError ...
        raise SheetError(f"label sheet {path}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from None
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        elif sheet in wb.sheetnames:
            ws = wb[sheet]
        else:
            raise SheetError(f"{path}: no sheet {sheet!r} (sheets: {wb.sheetnames})")
        return ws.title, [tuple(r) for r in ws.iter_rows(values_only=True)]
    finally:
        wb.close()


def read_table(
    path: Path,
    fields: dict[str, tuple[str, ...]],
    sheet: str | None = None,
    optional: tuple[str, ...] = (),
    max_header_row: int = 30,
) -> Table:
    """Locate the header naming every non-optional field; map fields to columns.

    ``fields``: field -> accepted header names (compared via ``norm_header``), first
    match wins. Body rows that are entirely empty are skipped (sheets carry trailing
    blank rows).
    """
    title, raw = load_raw_rows(path, sheet)
    wanted = {f: [norm_header(a) for a in al] for f, al in fields.items()}
    for i, row in enumerate(raw[:max_header_row]):
        names = [norm_header(c) for c in row]
        cols: dict[str, int] = {}
        for f, aliases in wanted.items():
            for a in aliases:
                if a in names:
                    cols[f] = names.index(a)
                    break
        if all(f in cols for f in fields if f not in optional):
            body = [(i + 2 + k, r) for k, r in enumerate(raw[i + 1 :]) if any(not _blank(c) for c in r)]
            return Table(Path(path), title, i + 1, cols, body)
    need = {f: fields[f] for f in fields if f not in optional}
    raise SheetError(
        f"{Path(path).name}{f' sheet {title!r}' if title else ''}: no header row "
        f"naming all of {need} in the first {max_header_row} rows"
    )


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v))


def cell(table: Table, row: tuple, field: str):
    col = table.columns.get(field)
    if col is None or col >= len(row):
        return None
    return row[col]


def cell_str(table: Table, rownum: int, row: tuple, field: str, required: bool = True) -> str:
    v = cell(table, row, field)
    if _blank(v):
        if required:
            raise SheetError(f"{table.where(rownum)}: empty {field!r} cell")
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def cell_int(table: Table, rownum: int, row: tuple, field: str, allow_missing: bool = False) -> int | None:
    """An integer cell that may be stored as text ("175"), float (175.0) or int.

    "/" (and blank) mean "not annotated": None when ``allow_missing``, else an error.
    """
    v = cell(table, row, field)
    if _blank(v) or (isinstance(v, str) and v.strip() in ("/", "-")):
        if allow_missing:
            return None
        raise SheetError(f"{table.where(rownum)}: {field!r} is missing ({v!r})")
    try:
        f = float(str(v).strip()) if not isinstance(v, (int, float)) else float(v)
    except ValueError:
        raise SheetError(f"{table.where(rownum)}: {field!r} is not a number: {v!r}") from None
    if not f.is_integer() or f < 0:
        raise SheetError(f"{table.where(rownum)}: {field!r} is not a frame number: {v!r}")
    return int(f)
