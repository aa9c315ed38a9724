"""AU node order and the four landmark/AU groups of SPEC §3."""
from __future__ import annotations

import numpy as np

# Node index 0..11 -> AU number.
AU_ORDER: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17)
NUM_AUS = len(AU_ORDER)
AU_TO_NODE: dict[int, int] = {au: i for i, au in enumerate(AU_ORDER)}
UPPER_NODES = np.arange(0, 6)
LOWER_NODES = np.arange(6, 12)


def _r(a: int, b: int) -> list[int]:
    return list(range(a, b + 1))


# Group name -> (AU node indices, token indices of SPEC §2).
GROUPS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "G1": ((0, 1, 2), tuple(_r(0, 22))),
    "G2": ((3, 4, 5), tuple(_r(0, 21) + _r(32, 51) + _r(59, 64))),
    "G3": ((6, 7), tuple(_r(0, 51))),
    "G4": ((8, 9, 10, 11), tuple(_r(27, 64))),
}
GROUP_NAMES = tuple(GROUPS)

assert [len(t) for _, t in GROUPS.values()] == [23, 48, 52, 38]
assert sum(len(n) for n, _ in GROUPS.values()) == NUM_AUS
