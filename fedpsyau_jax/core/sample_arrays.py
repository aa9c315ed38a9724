"""``MESamples``: a whole micro-expression dataset as host (numpy) arrays.

This is the hand-over format between ``data_pipelines`` (which builds it from real
releases, videos or the synthetic generator) and training/federated code (which
slices it into device batches). Every per-sample field has leading axis N.

Fields and shapes:
    flow128   (N, 128, 128, 3) float32  u, v, strain, each per-sample min-max in [0, 1]
    flow28    (N, 28, 28, 3)   float32  the same flow area-resized, in [0, 1]
    landmarks (N, 65, 2)       float32  (x, y) in the 128-px crop frame
    label     (N,)             int32    emotion class
    au        (N, 12)          float32  AU targets {0,1} in AU_ORDER
    au_mask   (N, 12)          float32  1 where the AU label is known
    subject   (N,)             str      subject id (protocol splits)
    name      (N,)             str      sample id, unique within the dataset
    dataset   (N,)             str      source dataset (e.g. "casme2", "samm", "smic")
plus ``class_names`` (tuple of str, index = label) and free-form ``meta``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

ARRAY_FIELDS = ("flow128", "flow28", "landmarks", "label", "au", "au_mask")
STR_FIELDS = ("subject", "name", "dataset")
MODEL_INPUT_KEYS = ("flow128", "flow28", "landmarks")


@dataclasses.dataclass(frozen=True)
class MESamples:
    flow128: np.ndarray
    flow28: np.ndarray
    landmarks: np.ndarray
    label: np.ndarray
    au: np.ndarray
    au_mask: np.ndarray
    subject: np.ndarray
    name: np.ndarray
    dataset: np.ndarray
    class_names: tuple[str, ...]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        n = len(self.label)
        expect = {
            "flow128": (128, 128, 3),
            "flow28": (28, 28, 3),
            "landmarks": (65, 2),
            "label": (),
            "au": (12,),
            "au_mask": (12,),
        }
        for f, tail in expect.items():
            a = getattr(self, f)
            if a.shape != (n, *tail):
                raise ValueError(f"MESamples.{f}: expected shape {(n, *tail)}, got {a.shape}")
        for f in STR_FIELDS:
            if len(getattr(self, f)) != n:
                raise ValueError(f"MESamples.{f}: expected {n} entries, got {len(getattr(self, f))}")
        if n and (self.label.min() < 0 or self.label.max() >= len(self.class_names)):
            raise ValueError(f"MESamples.label outside 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return len(self.label)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def take(self, idx) -> "MESamples":
        """The samples at integer indices or boolean mask ``idx`` (a new object)."""
        idx = np.asarray(idx)
        kw = {f: getattr(self, f)[idx] for f in ARRAY_FIELDS + STR_FIELDS}
        return MESamples(**kw, class_names=self.class_names, meta=dict(self.meta))

    def model_inputs(self, idx=None) -> dict[str, np.ndarray]:
        """The dict the network consumes: flow128, flow28, landmarks."""
        sel = slice(None) if idx is None else np.asarray(idx)
        return {k: getattr(self, k)[sel] for k in MODEL_INPUT_KEYS}

    def batch(self, idx) -> dict[str, np.ndarray]:
        """Model inputs plus targets (label, au, au_mask) for indices ``idx``."""
        idx = np.asarray(idx)
        return {f: getattr(self, f)[idx] for f in ARRAY_FIELDS}

    @staticmethod
    def concatenate(parts: list["MESamples"]) -> "MESamples":
        if not parts:
            raise ValueError("MESamples.concatenate needs at least one part")
        names = parts[0].class_names
        for p in parts[1:]:
            if p.class_names != names:
                raise ValueError(f"class names differ: {names} vs {p.class_names}")
        kw = {f: np.concatenate([getattr(p, f) for p in parts]) for f in ARRAY_FIELDS + STR_FIELDS}
        return MESamples(**kw, class_names=names, meta=dict(parts[0].meta))

    def summary(self) -> dict[str, str]:
        """The ``key: value`` facts that ``fedpsyau data summary`` prints."""
        counts = np.bincount(self.label, minlength=self.num_classes)
        return {
            "samples": str(len(self)),
            "subjects": str(len(np.unique(self.subject))),
            "classes": "/".join(str(int(c)) for c in counts),
            "class_names": "/".join(self.class_names),
            "with_au_labels": str(int((self.au_mask.sum(axis=1) > 0).sum())),
            "datasets": ",".join(f"{d}={int((self.dataset == d).sum())}" for d in np.unique(self.dataset)),
        }
