"""What each network costs: parameters, forward FLOPs per sample (XLA's count of the
compiled eval program) and, with --time, the median jitted training step.

Usage: python benchmarks/model_cost.py [--time] [--batch 32] [--repeats 10]

Networks: FED-PsyAU, its flow-stream-only twin and the baselines of ``model.name``
(STSTNet, Off-ApexNet, SSSNet), 3 classes, on the same input batch. Step time is
forward + backward + AdamW at ``--batch``; time it on a quiet machine only.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from fedpsyau_jax.network.baselines import BASELINES, DISPLAY_NAMES
from fedpsyau_jax.network.model import FedPsyAU, count_params, example_batch
from fedpsyau_jax.training.train_state import create_train_state, make_optimizer, make_train_step

NETWORKS = {
    "fedpsyau": dict(use_au_branch=True),
    "fedpsyau_flow_only": dict(use_au_branch=False),
    **{n: dict(use_au_branch=False, architecture=n) for n in BASELINES},
}


def batch_of(b: int, seed: int = 0) -> dict:
    batch = example_batch(b, seed)
    rng = np.random.default_rng(seed + 1)
    batch["label"] = rng.integers(0, 3, b).astype(np.int32)
    batch["au"] = (rng.random((b, 12)) < 0.3).astype(np.float32)
    batch["au_mask"] = np.ones((b, 12), np.float32)
    return jax.tree.map(jnp.asarray, batch)


def flops_per_sample(model, variables, b: int = 32) -> float:
    x = batch_of(b)
    f = jax.jit(lambda v, x: model.apply(v, x, 0.3, train=False)[0])
    cost = f.lower(variables, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan"))) / b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", action="store_true", help="also time the training step (quiet machine only)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "| network | parameters | forward MFLOP / sample |"
        + (f" train step, batch {args.batch} (ms) |" if args.time else "")
    )
    print("|---|---|---|" + ("---|" if args.time else ""))
    tx = make_optimizer(1e-4)
    for name, kw in NETWORKS.items():
        model = FedPsyAU(3, **kw)
        state = create_train_state(model, tx, jax.random.key(0))
        v = {"params": state.params, "batch_stats": state.batch_stats, "priors": state.priors}
        row = f"| {DISPLAY_NAMES[name]} | {count_params(state.params):,} | {flops_per_sample(model, v) / 1e6:.2f} |"
        if args.time:
            batch = batch_of(args.batch)
            step = jax.jit(make_train_step(model, tx), donate_argnums=0)
            state, m = step(state, batch, jnp.float32(0.3))
            jax.block_until_ready(m)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                state, m = step(state, batch, jnp.float32(0.3))
                jax.block_until_ready(m)
                times.append(time.perf_counter() - t0)
            row += f" {1e3 * float(np.median(times)):.1f} |"
        print(row)


if __name__ == "__main__":
    main()
