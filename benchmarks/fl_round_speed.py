"""Federated round speed: K clients vmapped vs a Python loop over clients, and K scaling.

Usage: python benchmarks/fl_round_speed.py [--ks 2 4 8 16 32] [--loop-k 5]
           [--samples-per-client 16] [--batch 8] [--repeats 3] [--flow-only]

One round = 1 local epoch of every client (padded batches, example masks) + one
FedAvg communication step, on synthetic data (``make_synthetic``). Timings exclude
compilation (reported separately) and are medians over ``--repeats`` rounds.
- "vmapped": ``make_local_trainer(mode="step")`` with all K clients stacked;
- "loop": the same compiled single-client (C=1) program called once per client, then
  the same aggregation (what a framework without a client axis does);
- "scan" (optional, --scan): the whole round as one lax.scan program.
"""
from __future__ import annotations

import argparse
import os
import platform
import time


import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines.synthetic import make_synthetic
from fedpsyau_jax.training.batching import device_data
from fedpsyau_jax.federated import make_algorithm
from fedpsyau_jax.federated.client_stack import stack_states, unstack_states
from fedpsyau_jax.federated.local_training import make_local_trainer
from fedpsyau_jax.federated.partitions import partition_clients
from fedpsyau_jax.federated.runner import init_row_states, plan_rows, round_plans
from fedpsyau_jax.federated.settings import fl_settings
from fedpsyau_jax.federated.server_round import make_communicate
from fedpsyau_jax.network.model import FedPsyAU
from fedpsyau_jax.training.train_state import make_optimizer


def setup(k: int, per_client: int, batch: int, model, tx, trainer):
    s = make_synthetic(num_subjects=k, samples_per_subject=per_client, seed=0)
    clients = partition_clients(s, "equal_subjects", k, seed=0)
    st = fl_settings(batch_size=batch, oversample=False, train_fraction=0.75)
    rows = plan_rows(s, clients, [0], "random", st)
    states = init_row_states(model, tx, rows, trainer)
    idx, mask, _ = round_plans(rows, s.label, 0, st)
    return s, rows, states, idx, mask


def timed(fn, repeats: int):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", type=int, nargs="*", default=[2, 4, 8, 16, 32])
    ap.add_argument("--loop-k", type=int, default=5)
    ap.add_argument("--samples-per-client", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--flow-only", action="store_true", help="flow-stream-only network")
    ap.add_argument("--scan", action="store_true", help="also time mode='scan' at --loop-k")
    args = ap.parse_args()

    model = FedPsyAU(3, use_au_branch=not args.flow_only)
    tx = make_optimizer(5e-4)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"jax {jax.__version__} {jax.devices()[0].platform}; network "
          f"{'flow-only' if args.flow_only else 'full FedPsyAU'}; {args.samples_per_client} samples/client "
          f"(75 % train), batch {args.batch}", flush=True)
    trainer = make_local_trainer(model, tx, mode="step")
    fedavg = make_algorithm("fedavg")
    betas_for = lambda idx: np.full(idx.shape[1], 0.1, np.float32)

    def vmapped_round(k):
        """K synthetic clients' states and a callable running one vmapped round + FedAvg."""
        s, rows, states, idx, mask = setup(k, args.samples_per_client, args.batch, model, tx, trainer)
        data = device_data(s)
        comm = make_communicate(fedavg, 1)
        groups = jnp.zeros(k, jnp.int32)
        n = jnp.asarray(rows.num_samples)
        box = {"st": states}

        def vmapped():
            st, _, _ = trainer.train(box["st"], jax.tree.map(jnp.copy, box["st"].params), 0.0, data, idx, mask,
                                     betas_for(idx))
            box["st"], _ = comm(st, n, groups)
            jax.block_until_ready(box["st"].params)

        return box, vmapped, data, idx, mask, comm, n, groups

    if args.loop_k:
        k = args.loop_k
        box, vmapped, data, idx, mask, comm, n, groups = vmapped_round(k)
        c_v, t_v = timed(vmapped, args.repeats)
        box1 = {"st": unstack_states(box["st"])}

        def loop():
            outs = []
            for c in range(k):
                one = jax.tree.map(lambda x: x[None], box1["st"][c])
                st, ml, _ = trainer.train(one, jax.tree.map(jnp.copy, one.params), 0.0, data, idx[c:c + 1], mask[c:c + 1],
                                          betas_for(idx))
                outs.append(jax.tree.map(lambda x: x[0], st))
            st, _ = comm(stack_states(outs), n, groups)
            box1["st"] = unstack_states(st)
            jax.block_until_ready(jax.tree.leaves(box1["st"][0].params))

        c_l, t_l = timed(loop, args.repeats)
        print(f"K={k}: vmapped round {t_v:.2f} s (first {c_v:.0f} s incl. compile) | loop over clients "
              f"{t_l:.2f} s (first {c_l:.0f} s) | loop/vmapped = {t_l / t_v:.2f}x", flush=True)
        if args.scan:
            scan = make_local_trainer(model, tx, mode="scan")
            box2 = {"st": jax.tree.map(jnp.array, box["st"])}

            def scanned():
                st, ml, _ = scan.train(box2["st"], jax.tree.map(jnp.copy, box2["st"].params), 0.0, data, idx, mask, betas_for(idx))
                box2["st"], _ = comm(st, n, groups)
                jax.block_until_ready(box2["st"].params)
            c_s, t_s = timed(scanned, args.repeats)
            print(f"K={k}: scan-mode round {t_s:.2f} s (first {c_s:.0f} s) | scan/step = {t_s / t_v:.2f}x",
                  flush=True)

    for k in args.ks:
        box, vmapped, data, idx, mask, comm, n, groups = vmapped_round(k)
        c_v, t_v = timed(vmapped, args.repeats)
        live = int(mask.sum())
        print(f"K={k:3d}: round {t_v:7.2f} s | {t_v / k:.3f} s/client | {t_v / live * 1e3:.1f} ms/sample "
              f"| first {c_v:.0f} s incl. compile", flush=True)


if __name__ == "__main__":
    main()
