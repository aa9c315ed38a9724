"""Local only: no communication; each client trains on its own data (baseline)."""
from __future__ import annotations

from fedpsyau_jax.federated.algorithms.base import Algorithm, ServerMessage


def make(**_) -> Algorithm:
    return Algorithm(name="local", mu=0.0,
                     aggregate=lambda upload, groups, num_groups: ServerMessage(params=None),
                     description="no communication")
