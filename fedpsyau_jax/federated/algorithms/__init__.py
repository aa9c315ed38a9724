"""Registry of federated algorithms: ``make_algorithm(name, **hparams)``.

Each algorithm is one module exposing ``make(**hparams) -> Algorithm``; hyper-parameters
it does not use are ignored, so one config section can serve all of them.
"""

from __future__ import annotations

from fedpsyau_jax.federated.algorithms import fedavg, fedprox, fedrep, local, pfedprox
from fedpsyau_jax.federated.algorithms.base import Algorithm, ServerMessage

ALGORITHMS = {
    "local": local.make,
    "fedavg": fedavg.make,
    "fedprox": fedprox.make,
    "pfedprox": pfedprox.make,
    "fedrep": fedrep.make,
}


def make_algorithm(name: str, **hparams) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown federated algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name](**hparams)


__all__ = ["ALGORITHMS", "Algorithm", "ServerMessage", "make_algorithm"]
