"""The fields every micro-expression label sheet shares, read from one row.

CASME II, SAMM, CAS(ME)^3 and DFME sheets all carry a clip name, onset/apex/offset
frames, an AU string and an emotion word; only the subject spelling and the frame
layout differ, and those stay in each reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from data_pipelines.au_parse import parse_au_string
from data_pipelines.label_maps import map_emotion
from data_pipelines.readers.sheet_table import SheetError, Table, cell, cell_int, cell_str


@dataclass(frozen=True)
class AnnotationRow:
    filename: str
    onset: int | None
    apex: int | None
    offset: int | None
    aus: frozenset[int]
    emotion: str
    label: int | None


def read_annotation_row(
    table: Table, rownum: int, row: tuple, dataset: str, scheme: str | None, onset_required: bool = True
) -> AnnotationRow:
    """Parse the shared fields; errors are ``SheetError``/``ValueError`` for the caller
    to wrap with the dataset's name and the row's location."""
    emotion = cell_str(table, rownum, row, "emotion")
    return AnnotationRow(
        filename=cell_str(table, rownum, row, "filename"),
        onset=cell_int(table, rownum, row, "onset", allow_missing=not onset_required),
        apex=cell_int(table, rownum, row, "apex", allow_missing=True),
        offset=cell_int(table, rownum, row, "offset", allow_missing=True),
        aus=parse_au_string(cell(table, row, "aus")),
        emotion=emotion,
        label=map_emotion(dataset, emotion, scheme),
    )


__all__ = ["AnnotationRow", "read_annotation_row", "SheetError"]
