"""Federated FED-PsyAU: clients as one stacked pytree, vmapped local training.

Modules, one concern each:
- ``client_stack``     stack/unstack client states (leading client axis C)
- ``upload``           ``ClientUpload`` — the only thing the server side receives
- ``aggregation``      per-group (segment-wise) FedAvg means and P-FedProx mixing
- ``algorithms/``      ``Algorithm`` interface + Local, FedAvg, FedProx, P-FedProx, FedRep
- ``server_round``     one jitted communication step (upload → aggregate → client update)
- ``local_training``   vmapped local epochs (lax.scan over padded batches), evaluation,
                       client-axis sharding
- ``partitions``       clients from subjects / source datasets / a user mapping
- ``splits``           per-client 70/30 sample split (paper) or subject-level split
- ``runner``           the (seed × client) rows of a chunk, their plans, plain rounds
- ``dp_runner``        the rounds under client-level DP (sampling, clipping, noisy release)
- ``rounds``           the one round loop over a chunk, plain or DP; resumable
- ``settings``         ``FLSettings`` and the model / optimiser / trainer of a config
- ``experiment``       ``federate(cfg, workdir)``: all splits × algorithms × seed chunks
- ``report``           mean ± std tables, JSON summary, Fig. 5-style PNG
"""

from fedpsyau_jax.federated.algorithms import ALGORITHMS, Algorithm, ServerMessage, make_algorithm, register_algorithm
from fedpsyau_jax.federated.client_stack import broadcast_state, stack_states, unstack_states
from fedpsyau_jax.federated.upload import ClientUpload, make_upload


def federate(cfg, workdir, progress: bool = True, log=print, summarise_only: bool = False) -> dict:
    """Python mirror of ``fedpsyau federate`` (see ``experiment.federate``)."""
    from fedpsyau_jax.federated.experiment import federate as _federate

    return _federate(cfg, workdir, progress=progress, log=log, summarise_only=summarise_only)


__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "ClientUpload",
    "ServerMessage",
    "broadcast_state",
    "federate",
    "make_algorithm",
    "make_upload",
    "register_algorithm",
    "stack_states",
    "unstack_states",
]
