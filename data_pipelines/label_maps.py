"""Emotion word/code -> class index, per dataset and class scheme.

Schemes:
- ``"megc3"``: negative=0, positive=1, surprise=2. The same order as the ``label``
  column of the MEGC2019 composite CSV, so our labels and the released ones agree.
- ``"emotion7"``: anger, contempt, disgust, fear, happiness, sadness, surprise (the
  DFME order; CK+ codes 1..7 follow the same order, so code k -> class k-1).

A class that the protocol drops ("others", "repression" under emotion7, ...) maps to
None. A word that is neither a class nor a known dropped word raises
``UnknownEmotion`` naming the dataset and the word: silently dropping it would change
class counts without anyone noticing.
"""

from __future__ import annotations

from fedpsyau_jax.core.errors import InputDataError, NameChoiceError, unknown_name

MEGC3_CLASSES: tuple[str, ...] = ("negative", "positive", "surprise")
EMOTION7_CLASSES: tuple[str, ...] = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
DFME_CLASSES = EMOTION7_CLASSES

SCHEMES: dict[str, tuple[str, ...]] = {"megc3": MEGC3_CLASSES, "emotion7": EMOTION7_CLASSES}

_NEG, _POS, _SUR = 0, 1, 2
_E7 = {name: i for i, name in enumerate(EMOTION7_CLASSES)}

# dataset -> scheme -> {normalised word: class index or None (dropped)}.
_MAPS: dict[str, dict[str, dict[str, int | None]]] = {
    "casme2": {
        # Fear and sadness are dropped under MEGC 3-class (too few samples,
        # MEGC2019 practice), repression counts as negative.
        "megc3": {
            "happiness": _POS,
            "surprise": _SUR,
            "disgust": _NEG,
            "repression": _NEG,
            "fear": None,
            "sadness": None,
            "others": None,
        },
        "emotion7": {
            "happiness": _E7["happiness"],
            "surprise": _E7["surprise"],
            "disgust": _E7["disgust"],
            "fear": _E7["fear"],
            "sadness": _E7["sadness"],
            "repression": None,
            "others": None,
        },
    },
    "samm": {
        "megc3": {
            "happiness": _POS,
            "surprise": _SUR,
            "anger": _NEG,
            "contempt": _NEG,
            "disgust": _NEG,
            "fear": _NEG,
            "sadness": _NEG,
            "other": None,
        },
        "emotion7": {**{w: _E7[w] for w in EMOTION7_CLASSES}, "other": None},
    },
    "casme3": {
        "megc3": {
            "happy": _POS,
            "surprise": _SUR,
            "disgust": _NEG,
            "fear": _NEG,
            "anger": _NEG,
            "sad": _NEG,
            "others": None,
        },
        "emotion7": {
            "happy": _E7["happiness"],
            "surprise": _E7["surprise"],
            "disgust": _E7["disgust"],
            "fear": _E7["fear"],
            "anger": _E7["anger"],
            "sad": _E7["sadness"],
            "others": None,
        },
    },
    "dfme": {
        "emotion7": {**{w: _E7[w] for w in EMOTION7_CLASSES}, "others": None, "other": None},
        "megc3": {
            "happiness": _POS,
            "surprise": _SUR,
            "anger": _NEG,
            "contempt": _NEG,
            "disgust": _NEG,
            "fear": _NEG,
            "sadness": _NEG,
            "others": None,
            "other": None,
        },
    },
    "smic": {
        # SMIC-HS ships its labels as folder names, already the three MEGC classes.
        "megc3": {"negative": _NEG, "positive": _POS, "surprise": _SUR},
    },
    "ckplus": {
        # CK+ Emotion/*.txt: 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy,
        # 6 sadness, 7 surprise; 0 (neutral) is not an emotion class.
        "emotion7": {**{str(k): k - 1 for k in range(1, 8)}, "0": None},
        "megc3": {"1": _NEG, "2": _NEG, "3": _NEG, "4": _NEG, "5": _POS, "6": _NEG, "7": _SUR, "0": None},
    },
}
# Spelling variants seen across releases, folded before lookup.
_ALIASES = {
    "happy": "happiness",
    "sad": "sadness",
    "angry": "anger",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
    "other": "others",
}

DEFAULT_SCHEME = {
    "casme2": "megc3",
    "samm": "megc3",
    "casme3": "megc3",
    "smic": "megc3",
    "dfme": "emotion7",
    "ckplus": "emotion7",
}


class UnknownEmotion(InputDataError):
    """An emotion word/code that the dataset's mapping does not know."""


def class_names(scheme: str) -> tuple[str, ...]:
    if scheme not in SCHEMES:
        raise unknown_name("class scheme", scheme, sorted(SCHEMES))
    return SCHEMES[scheme]


def _normalise(word: object) -> str:
    if isinstance(word, float) and word.is_integer():
        word = int(word)
    w = " ".join(str(word).strip().lower().split())
    # CK+ codes arrive as "3.0000000e+00"; make them "3".
    try:
        f = float(w)
        if f.is_integer():
            return str(int(f))
    except ValueError:
        pass
    return w


def map_emotion(dataset: str, word: object, scheme: str | None = None) -> int | None:
    """Class index of ``word`` for ``dataset`` under ``scheme`` (None = dropped class)."""
    if dataset not in _MAPS:
        raise ValueError(f"no emotion mapping for dataset {dataset!r}; known: {sorted(_MAPS)}")
    scheme = scheme or DEFAULT_SCHEME[dataset]
    table = _MAPS[dataset].get(scheme)
    if table is None:
        raise NameChoiceError(f"dataset {dataset!r} has no {scheme!r} mapping; available: {sorted(_MAPS[dataset])}")
    # Compare canonical spellings on both sides so "happy" and "happiness" (or
    # "Other"/"others") mean the same class whichever one a release uses.
    w = _ALIASES.get(_normalise(word), _normalise(word))
    canon = {_ALIASES.get(k, k): v for k, v in table.items()}
    if w in canon:
        return canon[w]
    raise UnknownEmotion(f"{dataset}: unknown emotion {word!r} (scheme {scheme}); known: {sorted(table)}")
