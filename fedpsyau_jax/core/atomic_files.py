"""Atomic file writes: a temp file in the same folder, then ``os.replace``.

A killed run therefore never leaves a truncated file under the final name (caches,
predictions, manifests, run metadata). Core modules use these without importing the
video pipeline (cv2, dlib).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def _atomic(path: Path, mode: str):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed .npz at ``path`` atomically."""
    with _atomic(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub: a **dict might name allow_pickle


def write_json_atomic(path: Path, obj) -> None:
    """Write ``obj`` as indented, key-sorted UTF-8 JSON at ``path`` atomically."""
    with _atomic(path, "w") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True, ensure_ascii=False)
        fh.write("\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 at ``path`` atomically."""
    with _atomic(path, "w") as fh:
        fh.write(text)
