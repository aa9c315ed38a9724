"""Local only: no communication; each client trains on its own data (baseline).

Nothing is uploaded but the sample count (no params, no BN statistics)."""

from __future__ import annotations

from fedpsyau_jax.federated.algorithms.base import Algorithm


def make(**_) -> Algorithm:
    return Algorithm(
        name="local", mu=0.0, reduce=None, shares_param=None, shares_batch_stats=False, description="no communication"
    )
