"""Seconds per DP round of the simulator with subject-level clients (one per person).

Usage: python benchmarks/dp_round_time.py [--rounds 5] [--rate 0.1] [--flow-only]
           [--algorithm pfedprox] [--batch 8] [--local-epochs 1]

The MEGC2019 composite (442 samples, 68 subjects; read from the shared data folder,
``FEDPSYAU_SHARED_DATA``) with ``per_subject`` clients, fixed-size sampling of
round(rate·68) clients per round, client-level DP (C = 1, z = 1), the recipe's local
step (AdamW with a per-step rate, class-weighted CE, flip 0.5, paper groups, flow28
ROIs). Prints every round's wall time (round 1 includes compilation), the median of
the later rounds, ε after the last round, and the machine (cores, load average).
Goal (privacy issue): under 30 s per round at 68 clients and 10 % sampling on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import os
import platform


import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rate", type=float, default=0.1)
    ap.add_argument("--algorithm", default="pfedprox")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--local-epochs", type=int, default=1)
    ap.add_argument("--flow-only", action="store_true")
    a = ap.parse_args(argv)

    import jax
    from fedpsyau_jax.compile_cache import enable_compilation_cache
    enable_compilation_cache()
    from data_pipelines.datasets import load_dataset
    from fedpsyau_jax.federated import make_algorithm
    from fedpsyau_jax.federated.rounds import run_dp_federation
    from fedpsyau_jax.federated.local_training import make_local_trainer
    from fedpsyau_jax.federated.partitions import partition_clients
    from fedpsyau_jax.federated.privacy import DPSettings
    from fedpsyau_jax.federated.runner import plan_rows
    from fedpsyau_jax.federated.settings import fl_settings
    from fedpsyau_jax.network.model import FedPsyAU
    from fedpsyau_jax.training.batching import device_data
    from fedpsyau_jax.training.train_state import make_optimizer

    samples = load_dataset("megc2019_composite")
    clients = partition_clients(samples, "per_subject")
    k = len(clients)
    per_round = max(1, int(round(a.rate * k)))
    settings = fl_settings(rounds=a.rounds, local_epochs=a.local_epochs, batch_size=a.batch,
                             eval_batch_size=32, oversample=False, weighted_ce=True, learning_rate=3e-4,
                             lr_schedule="warmup_cosine", warmup_epochs=1.0, hflip=0.5,
                             au_norm="examples", checkpoint_every=0)
    model = FedPsyAU(samples.num_classes, use_au_branch=not a.flow_only, roi_source="flow28")
    tx = make_optimizer(1.0, 0.01, True)
    trainer = make_local_trainer(model, tx, mode="step", hflip=0.5, au_norm="examples")
    rows = plan_rows(samples, clients, (0,), "random", settings)
    dp = DPSettings(clip_norm=1.0, noise_multiplier=1.0, sampling="fixed", per_round=per_round)
    res = run_dp_federation(trainer=trainer, algorithm=make_algorithm(a.algorithm), model=model, tx=tx,
                            samples=samples, data=device_data(samples), rows=rows, settings=settings,
                            dp=dp, progress=True)
    secs = res["seconds_per_round"]
    print(f"{k} subject-level clients, {per_round} sampled per round ({a.algorithm}, "
          f"{'flow-only' if a.flow_only else 'full'} model, batch {a.batch}, "
          f"{a.local_epochs} local epoch(s)); jax {jax.__version__} on {platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for i, s in enumerate(secs, 1):
        print(f"  round {i}: {s:.1f} s{'  (includes compilation)' if i == 1 else ''}")
    if len(secs) > 1:
        print(f"median of rounds 2..{len(secs)}: {np.median(secs[1:]):.1f} s per round")
    print(f"epsilon after {len(secs)} rounds (C=1, z=1, delta=1e-5): {res['epsilon_per_round'][-1]:.3f}")
    print(f"whole run incl. evaluation of all {k} clients: {res['train_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
