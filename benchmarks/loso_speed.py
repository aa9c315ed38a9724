"""LOSO epoch speed: sequential folds vs vectorised (vmapped) folds, and peak memory.

Usage:
    python benchmarks/loso_speed.py [--dataset megc2019_composite] [--chunks 1 4 8]
        [--folds 8] [--batch 32] [--no-au-branch] [--model ststnet]

For each fold-chunk width K it compiles the fold-vmapped epoch of ``fold_training``
once (first call: compile + one step), then times one epoch over ``--folds`` LOSO folds of the dataset (in chunks of
K; K=1 is the sequential run), and extrapolates to all folds of the protocol. Prints
compile time, epoch seconds, seconds per fold-step, the ratio against K=1, and the
peak resident memory of the process (``resource.getrusage``; cumulative, so widths are
run in increasing order). Records the machine load (``os.getloadavg``) because the
machine is shared.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import time


import jax
import jax.numpy as jnp

from data_pipelines.datasets import load_dataset
from fedpsyau_jax.training import protocols
from fedpsyau_jax.training.batching import device_data, stack_plans
from fedpsyau_jax.training.fold_training import FoldPrograms, epoch_key, fold_epoch_plan, fold_key, steps_per_epoch
from fedpsyau_jax.training.settings import TrainSettings
from fedpsyau_jax.network.model import FedPsyAU


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="megc2019_composite")
    ap.add_argument("--chunks", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--folds", type=int, default=8, help="folds timed per width (extrapolated)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--oversample", type=int, default=0)
    ap.add_argument("--no-au-branch", action="store_true")
    ap.add_argument("--model", default="fedpsyau", help="model.name: fedpsyau or a baseline (no AU branch)")
    args = ap.parse_args()

    kw = {"num_subjects": 12, "samples_per_subject": 12} if args.dataset == "synthetic" else {}
    samples = load_dataset(args.dataset, **kw)
    folds = protocols.loso_folds(samples.subject)
    au_branch = not args.no_au_branch and args.model == "fedpsyau"
    model = FedPsyAU(samples.num_classes, use_au_branch=au_branch, architecture=args.model)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
          f"({jax.devices()[0].platform}); load avg {os.getloadavg()[0]:.2f}")
    print(f"dataset {args.dataset}: {len(samples)} samples, {len(folds)} LOSO folds; "
          f"model {args.model}, batch {args.batch}, oversample {bool(args.oversample)}, au_branch {au_branch}")
    data = device_data(samples)
    base = None
    for k in sorted(args.chunks):
        s = TrainSettings(batch_size=args.batch, class_balance="oversample" if args.oversample else "none",
                          fold_chunk=k,
                          learning_rate=1e-3, epochs=1)
        steps = steps_per_epoch(s, folds, samples.label)
        prog = FoldPrograms(model, s)
        timed = folds[:max(k, (args.folds // k) * k)]
        chunks = [timed[i:i + k] for i in range(0, len(timed), k)]

        def inputs(chunk):
            idx, mask = stack_plans([fold_epoch_plan(s, f, samples.label, 0, steps) for f in chunk])
            keys = jnp.stack([epoch_key(0, f.index, 0) for f in chunk])
            return idx, mask, jnp.full((k,), 0.3, jnp.float32), keys

        states = prog.init(jnp.stack([fold_key(0, f.index) for f in chunks[0]]),
                           jnp.tile(jnp.eye(12)[None], (k, 1, 1)))
        idx0, mask0, beta0, _ = inputs(chunks[0])
        t0 = time.perf_counter()   # first call = compile + one step
        states, m = prog.train_step(states, data, jnp.asarray(idx0[:, 0]), jnp.asarray(mask0[:, 0]), beta0,
                                    jnp.full((k,), 1e-3, jnp.float32), jnp.ones((k, model.num_classes)),
                                    jnp.ones((k, 12)), jnp.ones((k, data["au_mask"].shape[0])))
        jax.block_until_ready(m)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for chunk in chunks:
            states, m, n = prog.train_epoch(states, data, *inputs(chunk))
        dt = time.perf_counter() - t0
        fold_steps = len(timed) * steps
        per_fold_step = dt / fold_steps
        full = per_fold_step * len(folds) * steps
        base = base or per_fold_step
        print(f"K={k:3d}: compile {compile_s:6.1f} s | {len(timed)} folds x {steps} steps in {dt:7.1f} s "
              f"| {per_fold_step * 1e3:7.1f} ms/fold-step | full LOSO epoch ~{full:7.0f} s "
              f"| speed-up vs K=1 {base / per_fold_step:5.2f}x | peak RSS {peak_rss_mib():7.0f} MiB "
              f"| load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
