"""AU-string parser: every quirk of the data README and every AU cell of the real sheets."""
import math

import numpy as np
import pytest

from data_pipelines.au_parse import AUParseError, au_targets, parse_au_string
from fedpsyau_jax.core.au_groups import AU_ORDER

README_QUIRKS = {
    "R12": {12}, "L2+L1": {1, 2}, "T28+14": {14, 28}, "15A+17": {15, 17},
    "(R6 or R12)+R15": {6, 12, 15}, "ref(7B)+43C": {7, 43},
}
MORE = {
    "12": {12}, "12.0": {12}, 12: {12}, 12.0: {12}, " 12+15 ": {12, 15}, "4A/B": {4},
    "A/L12": {12}, "A1B+A2C": {1, 2}, "7B+ ref(43)": {7, 43}, "R14+17+soft focus": {14, 17},
    "R14A or 17A or 24A": {14, 17, 24}, "B23": {23}, "1,2": {1, 2}, "4?": {4},
    "(R6 or R12) + R15": {6, 12, 15}, "ref(L10)+A12B": {10, 12}, "4D+ref(6)+7C+43E": {4, 6, 7, 43},
    "": set(), "/": set(), None: set(), float("nan"): set(), "NaN": set(), "?": set(),
}


@pytest.mark.parametrize("s,want", list(README_QUIRKS.items()) + list(MORE.items()),
                         ids=lambda v: repr(v))
def test_quirk_strings(s, want):
    assert parse_au_string(s) == frozenset(want)


@pytest.mark.parametrize("bad", ["happy", "12x", "0", "4+100", 12.5, "R-12", True])
def test_bad_strings_raise_naming_the_input(bad):
    with pytest.raises(AUParseError) as e:
        parse_au_string(bad)
    assert repr(bad) in str(e.value) or str(bad) in str(e.value)


SHEETS = [("CASME2-coding.xlsx", "Sheet1", "Action Units", "au"),
          ("SAMM-coding.xlsx", "MICRO_ONLY", "Action Units", "au"),
          ("cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", "label", "AU", "AU_Split")]


@pytest.mark.parametrize("fname,sheet,col,ref_col", SHEETS)
def test_every_real_au_cell_parses_and_matches_reference_split(shared_root, fname, sheet, col, ref_col):
    # The reference copies carry a column with the AU numbers its authors extracted by
    # hand ("4,10" for "4+L10"): an independent oracle for every real string.
    import openpyxl
    ws = openpyxl.load_workbook(shared_root / "annotations" / fname, data_only=True,
                                read_only=True)[sheet]
    rows = list(ws.iter_rows(values_only=True))
    i, j = rows[0].index(col), rows[0].index(ref_col)
    n = 0
    for r in rows[1:]:
        if r[i] is None and r[j] is None:
            continue
        want = frozenset(int(v) for v in str(r[j]).split(","))
        assert parse_au_string(r[i]) == want, (fname, r[i])
        n += 1
    assert n == {"CASME2-coding.xlsx": 250, "SAMM-coding.xlsx": 159}.get(fname, 860)


def test_au_targets_order_and_ignored_aus():
    au, mask = au_targets({1, 12, 17, 43, 25})
    assert au.dtype == np.float32 and au.shape == (12,) and mask.shape == (12,)
    assert [AU_ORDER[k] for k in np.flatnonzero(au)] == [1, 12, 17]
    assert mask.sum() == 12
    au0, _ = au_targets(set())
    assert au0.sum() == 0 and not math.isnan(au0.sum())
