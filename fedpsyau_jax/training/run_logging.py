"""Run logs: an append-only JSONL metrics file and a tqdm progress bar factory.

Every record is one JSON object per line with an ``event`` field (e.g. "epoch",
"fold_done", "summary") and a wall-clock ``time``. Appending line by line keeps the
file valid after a kill (at worst the last line is partial; ``read_jsonl`` skips it).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def _plain(x):
    """JSON-safe copy of numpy scalars/arrays inside dicts and lists."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


class JsonlLog:
    """Append records to ``path`` (created with its folder)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields) -> None:
        rec = {"event": event, "time": round(time.time(), 3), **_plain(fields)}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
            fh.flush()


def read_jsonl(path) -> list[dict]:
    """All complete records of a JSONL file ([] if it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return out


def progress(total: int | None, desc: str, enabled: bool = True, initial: int = 0):
    """A tqdm bar on stderr (disabled -> a no-op bar with the same interface)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, initial=initial, disable=not enabled, file=sys.stderr, dynamic_ncols=True, leave=True
    )
