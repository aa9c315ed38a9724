"""``ClipRecord``: one annotated micro-expression clip as a dataset's sheet describes it.

Readers (``data_pipelines.readers.*``) turn a release's real annotation files into
lists of these; the video pipeline turns a record plus its frames into model inputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One clip.

    dataset:   short name ("casme2", "samm", "casme3", "dfme", "smic", "disfa", "ckplus")
    subject:   subject id as the dataset spells it (protocol splits use it)
    clip:      clip/file name from the sheet (e.g. "EP02_01f", "006_1_2", "b")
    name:      unique sample id within the dataset (e.g. "sub01_EP02_01f"; CAS(ME)^3 adds onset)
    onset, apex, offset: frame numbers as in the sheet (apex may be None when not annotated)
    aus:       bare AU numbers present (all of them, also outside the 12 of ``AU_ORDER``)
    emotion:   raw emotion word/code from the sheet
    label:     class index under the chosen mapping, or None if the class is dropped
    frame_dir: folder holding the frames, when the layout is known (None otherwise)
    frame_paths: optional explicit list of frame files in temporal order
    fps:       frames per second if known
    """

    dataset: str
    subject: str
    clip: str
    name: str
    onset: int | None
    apex: int | None
    offset: int | None
    aus: frozenset[int]
    emotion: str
    label: int | None
    frame_dir: Path | None = None
    frame_paths: tuple[Path, ...] | None = None
    fps: float | None = None

    def au_multi_hot(self, known: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(au, au_mask) over the 12 AUs of ``AU_ORDER``; mask all 0 when ``known`` is False."""
        from fedpsyau_jax.core.au_groups import AU_ORDER

        au = np.array([1.0 if a in self.aus else 0.0 for a in AU_ORDER], np.float32)
        mask = np.full(len(AU_ORDER), 1.0 if known else 0.0, np.float32)
        return au, mask
