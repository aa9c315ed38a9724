"""Registry of federated algorithms: ``make_algorithm(name, **hparams)``.

Each algorithm is one module exposing ``make(**hparams) -> Algorithm``; hyper-parameters
it does not use are ignored, so one config section can serve all of them.
``register_algorithm(name, make)`` adds one more: every driver (the simulator's
``federate``, the command line, the Flower ServerApp and ClientApps) builds its
algorithm through ``make_algorithm``, so a registered name works wherever the module
that registers it has been imported.
"""

from __future__ import annotations

from typing import Callable

from fedpsyau_jax.federated.algorithms import fedavg, fedprox, fedrep, local, pfedprox
from fedpsyau_jax.federated.algorithms.base import Algorithm, ServerMessage

ALGORITHMS: dict[str, Callable[..., Algorithm]] = {
    "local": local.make,
    "fedavg": fedavg.make,
    "fedprox": fedprox.make,
    "pfedprox": pfedprox.make,
    "fedrep": fedrep.make,
}


def make_algorithm(name: str, **hparams) -> Algorithm:
    """The registered algorithm ``name`` built with ``hparams`` (e.g. ``mu``, ``theta``;
    each algorithm takes what it uses and ignores the rest)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown federated algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name](**hparams)


def register_algorithm(name: str, make: Callable[..., Algorithm]) -> None:
    """Make ``make_algorithm(name, **hparams)`` return ``make(**hparams)``.

    name: a new, non-empty registry name (a name already registered, built-in or
      not, is an error: re-registering would silently change what a config means).
    make: called with every hyper-parameter of the run (``mu``, ``theta``, ...); it
      should accept ``**_`` for the ones it does not use and return an ``Algorithm``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"algorithm name must be a non-empty string, got {name!r}")
    if not callable(make):
        raise TypeError(f"register_algorithm({name!r}, make): make must be callable, got {type(make).__name__}")
    if name in ALGORITHMS:
        raise ValueError(f"federated algorithm {name!r} is already registered; choose another name")
    ALGORITHMS[name] = make


__all__ = ["ALGORITHMS", "Algorithm", "ServerMessage", "make_algorithm", "register_algorithm"]
