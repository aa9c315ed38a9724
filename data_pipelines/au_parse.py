"""The one AU-string parser for every dataset's annotation sheets.

Coders write AU combinations in many styles; all of these occur in the real sheets:
``12``, ``"12.0"`` (a number stored as float or text), ``R12``, ``L2+L1``, ``T28+14``,
``B23``, ``15A+17``, ``A1B+A2C``, ``4A/B``, ``A/L12``, ``(R6 or R12)+R15``,
``ref(7B)+43C``, ``7B+ ref(43)``, ``R14+17+soft focus``, ``12+15 `` (trailing space).

Decisions (checked against the "au" column that the FED-PsyAU reference derived from
the same sheets, which agrees with this parser on every real row):
- Letters around a number are side/intensity modifiers, not part of the AU:
  prefixes L/R (side), B (bilateral), T (top/tongue in SAMM), A (asymmetric) and
  suffixes A–E (FACS intensity). "12A" is AU12 at intensity A.
- "or" alternatives and "/" alternatives keep every AU named: a coder who wrote
  "(R6 or R12)" saw one of them, and the reference keeps both.
- ``ref(...)`` marks an AU the coder references as co-occurring; it is kept.
- "?" (uncertain) is dropped as a marker; the AU it decorates is kept.
- Free-text words (``soft focus``) carry no AU and are skipped, but a string whose
  only content is unrecognised text is an error: that is a wrong column or a typo.
- Empty, None, NaN and a lone "/" (no coding) give the empty set.
"""

from __future__ import annotations

import math
import re

import numpy as np

from fedpsyau_jax.core.errors import InputDataError
from fedpsyau_jax.core.au_groups import AU_ORDER, AU_TO_NODE

# One AU token: optional side/asymmetry prefix letters, the number, optional
# intensity letter. A float written as "12.0" is the same AU.
_AU_TOKEN = re.compile(r"^(?:[LRBTA]{1,2})?(\d{1,3})(?:\.0+)?[A-E]?$")
# Modifier letters that may stand alone after splitting "4A/B" -> "4A", "B".
_LONE_MODIFIERS = set("LRBTAE") | {"C", "D"}
# Words that may appear between AUs without meaning an AU.
_SEPARATOR_WORDS = re.compile(r"\b(?:or|and)\b", re.IGNORECASE)


class AUParseError(InputDataError):
    """An AU string that cannot be read as FACS codes."""


def parse_au_string(s: object) -> frozenset[int]:
    """Bare AU numbers in an annotation cell (see the module docstring for the rules)."""
    if s is None:
        return frozenset()
    if isinstance(s, bool):
        raise AUParseError(f"AU cell holds a boolean ({s!r}), not an AU code")
    if isinstance(s, (int, np.integer)):
        return _checked(frozenset({int(s)}), s)
    if isinstance(s, (float, np.floating)):
        if math.isnan(s):
            return frozenset()
        if float(s).is_integer():
            return _checked(frozenset({int(s)}), s)
        raise AUParseError(f"AU cell {s!r} is a non-integer number")
    if not isinstance(s, str):
        raise AUParseError(f"AU cell has unsupported type {type(s).__name__}: {s!r}")

    text = s.strip()
    if text in ("", "/", "-") or text.lower() in ("nan", "none", "n/a", "na"):
        return frozenset()
    # ref(7B) -> 7B: the referenced AU is kept. Parentheses and "?" only group/mark.
    text = re.sub(r"ref\s*\(", "(", text, flags=re.IGNORECASE)
    text = text.replace("(", " ").replace(")", " ").replace("?", " ")
    text = _SEPARATOR_WORDS.sub("+", text)
    aus: set[int] = set()
    free_text: list[str] = []
    for part in re.split(r"[+/,;&]", text):
        for tok in part.split():
            tok = tok.upper()
            m = _AU_TOKEN.match(tok)
            if m:
                aus.add(int(m.group(1)))
            elif tok in _LONE_MODIFIERS:
                continue
            elif tok.isalpha():
                free_text.append(tok)
            else:
                raise AUParseError(f"cannot read AU token {tok!r} in AU string {s!r}")
    if not aus and free_text:
        raise AUParseError(f"AU string {s!r} names no AU number (only text {free_text})")
    return _checked(frozenset(aus), s)


def _checked(aus: frozenset[int], raw: object) -> frozenset[int]:
    # FACS numbers run 1..99 (action descriptors reach the 80s); 0 or more is a typo.
    bad = [a for a in aus if not 1 <= a <= 99]
    if bad:
        raise AUParseError(f"AU number(s) {bad} out of the FACS range 1..99 in {raw!r}")
    return aus


def au_targets(aus) -> tuple[np.ndarray, np.ndarray]:
    """(au, au_mask), each (12,) float32 over ``AU_ORDER``; AUs outside the 12 are ignored.

    The mask is all ones: a coded clip tells us both which of the 12 AUs are present
    and that the others are absent. Callers with no AU coding use a zero mask instead.
    """
    au = np.zeros(len(AU_ORDER), np.float32)
    for a in aus:
        node = AU_TO_NODE.get(int(a))
        if node is not None:
            au[node] = 1.0
    return au, np.ones(len(AU_ORDER), np.float32)
