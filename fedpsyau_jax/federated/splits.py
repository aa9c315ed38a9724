"""Per-client train/test splits of the federated protocols.

- ``random``: the paper's protocol — a random ``train_fraction`` (70 %) / rest split of
  each client's samples, redrawn for every repeat seed;
- ``subject``: the stricter variant — a random 70/30 split of each client's SUBJECTS,
  so no test subject is seen in training.
Seeds are combined with the client index (``default_rng([seed, client])``), so a
client's split does not depend on how many other clients there are.
"""

from __future__ import annotations

import numpy as np

SPLITS = ("random", "subject")


def client_split(
    indices: np.ndarray, subjects: np.ndarray, kind: str, seed: int, client: int, train_fraction: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of one client; both non-empty, except that a
    one-sample client (a person with one clip in a subject-level partition) of the
    ``random`` split only trains: its test split is empty and its score is NaN, left
    out of every per-client mean."""
    indices = np.asarray(indices)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    rng = np.random.default_rng([seed, client])
    if kind == "random":
        if len(indices) == 0:
            raise ValueError(f"client {client}: no samples")
        if len(indices) == 1:
            return indices.copy(), indices[:0]
        perm = rng.permutation(indices)
        n_train = min(max(int(round(train_fraction * len(perm))), 1), len(perm) - 1)
        return np.sort(perm[:n_train]), np.sort(perm[n_train:])
    if kind == "subject":
        subs = np.asarray(subjects)[indices].astype(str)
        uniq = np.unique(subs)
        if len(uniq) < 2:
            raise ValueError(f"client {client}: a subject-level split needs >= 2 subjects, has {len(uniq)}")
        perm = rng.permutation(uniq)
        n_train = min(max(int(round(train_fraction * len(perm))), 1), len(perm) - 1)
        train_subs = set(perm[:n_train].tolist())
        is_train = np.array([s in train_subs for s in subs])
        return indices[is_train], indices[~is_train]
    raise ValueError(f"unknown split {kind!r}; choose from {', '.join(SPLITS)}")
