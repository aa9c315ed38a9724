"""AU node order and the four landmark/AU groups of the paper."""

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


# Group name -> (AU node indices, token indices of the 65 keypoints), as the paper's Table 1
# assigns them: G3 (AU9, 10) reads the lower nose, mouth, chin and cheeks (27–64),
# G4 (AU12–17) the brows, eyes, nose and mouth (0–51).
PAPER_GROUPS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "G1": ((0, 1, 2), tuple(_r(0, 22))),
    "G2": ((3, 4, 5), tuple(_r(0, 21) + _r(32, 51) + _r(59, 64))),
    "G3": ((6, 7), tuple(_r(27, 64))),
    "G4": ((8, 9, 10, 11), tuple(_r(0, 51))),
}
# The reference code gives G3 and G4 each other's token sets (kept as an option for
# the ablation).
REFERENCE_GROUPS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    **PAPER_GROUPS,
    "G3": ((6, 7), PAPER_GROUPS["G4"][1]),
    "G4": ((8, 9, 10, 11), PAPER_GROUPS["G3"][1]),
}
GROUP_TOKEN_SETS = {"paper": PAPER_GROUPS, "reference": REFERENCE_GROUPS}
GROUPS = PAPER_GROUPS  # the default
GROUP_NAMES = tuple(GROUPS)

assert [len(t) for _, t in PAPER_GROUPS.values()] == [23, 48, 38, 52]
assert sum(len(n) for n, _ in GROUPS.values()) == NUM_AUS
