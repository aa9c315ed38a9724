"""Prior knowledge: psychological adjacency A, data co-occurrence D, β schedules.

Matrices are indexed in the AU node order of ``au_groups.AU_ORDER``; row = receiving
node i, column = sending node j (A_ij = 1 means node i attends to node j).
"""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np

from fedpsyau_jax.core.au_groups import AU_ORDER, AU_TO_NODE, NUM_AUS

UPPER_AUS = AU_ORDER[:6]
LOWER_AUS = AU_ORDER[6:]

_UP_PAIRS = [(1, 2), (1, 4), (1, 5), (2, 4), (2, 5), (6, 7)]
_LOW_PAIRS = [(9, 10), (12, 14), (15, 17)]
# Cross edges of the global graph, row AU -> the AUs it receives from. Kept as data,
# including the one asymmetry of the reference (9 -> 2 without 2 -> 9).
_GLOB_CROSS: dict[int, tuple[int, ...]] = {
    1: (12, 14, 15),
    2: (12, 14, 15, 17),
    4: (9, 10, 14, 15, 17),
    5: (12,),
    6: (9, 12, 14),
    7: (9, 10, 12, 14, 15, 17),
    9: (2, 4, 6, 7),
    10: (4, 7),
    12: (1, 2, 5, 6, 7),
    14: (1, 2, 4, 6, 7),
    15: (1, 2, 4, 7),
    17: (2, 4, 7),
}


def _symmetric(aus: tuple[int, ...], pairs) -> np.ndarray:
    idx = {a: i for i, a in enumerate(aus)}
    a = np.eye(len(aus), dtype=np.float32)
    for p, q in pairs:
        a[idx[p], idx[q]] = a[idx[q], idx[p]] = 1.0
    return a


A_UP = _symmetric(UPPER_AUS, _UP_PAIRS)
A_LOW = _symmetric(LOWER_AUS, _LOW_PAIRS)
A_GLOB = np.eye(NUM_AUS, dtype=np.float32)
for _row, _cols in _GLOB_CROSS.items():
    for _c in _cols:
        A_GLOB[AU_TO_NODE[_row], AU_TO_NODE[_c]] = 1.0
for _a in (A_UP, A_LOW, A_GLOB):
    _a.setflags(write=False)

UPPER = slice(0, 6)
LOWER = slice(6, 12)


def cooccurrence_prior(au: np.ndarray, au_mask: np.ndarray | None = None) -> np.ndarray:
    """The data co-occurrence prior D from multi-hot AU labels ``au`` (N, 12) -> (12, 12) float32.

    D_ij = N(i∧j) / Σ_k N(i∧k), with N(i∧i) = N(i). With partial labels (``au_mask``
    (N, 12), 1 = known) each pair is counted on the samples where BOTH AUs are known:
    an unknown AU counts neither as present nor as absent. Concretely, the rate
    c_ij = N(i∧j | i, j known) / N(i | i, j known) — how often j accompanies i — is
    estimated pairwise, with c_ii = 1, and D_ij = c_ij / Σ_k c_ik. On fully labelled
    data this is exactly N(i∧j) / Σ_k N(i∧k). An AU that never occurs (where known)
    has no evidence; its row falls back to the identity (attend to itself only).
    """
    au = np.asarray(au, np.float64)
    if au.ndim != 2 or au.shape[1] != NUM_AUS:
        raise ValueError(f"AU labels must be (N, {NUM_AUS}), got {au.shape}")
    m = np.ones_like(au) if au_mask is None else (np.asarray(au_mask, np.float64) > 0).astype(np.float64)
    if m.shape != au.shape:
        raise ValueError(f"au_mask must have the shape of the AU labels {au.shape}, got {m.shape}")
    a = au * m  # unknown entries are not "present"
    both = a.T @ a  # N(i∧j) where both are known
    i_where_j_known = a.T @ m  # N(i) on samples where j is known
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(i_where_j_known > 0, both / np.where(i_where_j_known > 0, i_where_j_known, 1.0), 0.0)
    occurs = np.diag(both) > 0
    c[np.diag_indices(NUM_AUS)] = np.where(occurs, 1.0, 0.0)
    rows = c.sum(axis=1, keepdims=True)
    d = np.where(occurs[:, None], c / np.where(rows > 0, rows, 1.0), np.eye(NUM_AUS))
    return d.astype(np.float32)


def renormalise_rows(m: np.ndarray) -> np.ndarray:
    """Rows scaled to sum 1; an all-zero row becomes the identity row."""
    m = np.asarray(m, np.float64)
    s = m.sum(axis=1, keepdims=True)
    eye = np.eye(m.shape[0])
    return np.where(s > 0, m / np.where(s > 0, s, 1.0), eye).astype(np.float32)


def split_prior(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(D_up, D_low): the diagonal 6×6 blocks, each re-normalised per row."""
    d = np.asarray(d)
    return renormalise_rows(d[UPPER, UPPER]), renormalise_rows(d[LOWER, LOWER])


def reference_prior() -> np.ndarray:
    """The 12×12 D published with the reference code (preset ``reference_dfme``)."""
    text = resources.files("fedpsyau_jax").joinpath("data/reference_D.csv").read_text()
    rows = list(csv.reader(text.splitlines()))
    header = [int(h.removeprefix("AU")) for h in rows[0][1:]]
    if tuple(header) != AU_ORDER:
        raise ValueError(f"reference_D.csv columns {header} are not in AU order {AU_ORDER}")
    return np.array([[float(v) for v in r[1:]] for r in rows[1:]], np.float32)


PRIOR_PRESETS = {"reference_dfme": reference_prior}


# ---------------------------------------------------------------- β schedules
def beta_schedule(name: str, epochs: int, beta0: float = 0.3) -> np.ndarray:
    """β for epochs 1..E as a float32 array of length E (index e-1 = epoch e).

    ``reference``: β_e = β0 · Π_{k≤e}(1 − k/E), reaching 0 at the last epoch;
    ``linear``: β0·(1 − e/E); ``cosine``: β0·½(1 + cos(π e/E)); ``constant``: β0.
    Values are host data fed to the compiled step as an argument, so changing the
    schedule never recompiles.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    e = np.arange(1, epochs + 1, dtype=np.float64)
    if name == "reference":
        r = np.cumprod(1.0 - e / epochs)
    elif name == "linear":
        r = 1.0 - e / epochs
    elif name == "cosine":
        r = 0.5 * (1.0 + np.cos(np.pi * e / epochs))
    elif name == "constant":
        r = np.ones_like(e)
    else:
        raise ValueError(f"unknown β schedule {name!r}; choose reference, linear, cosine, constant")
    return (beta0 * r).astype(np.float32)
