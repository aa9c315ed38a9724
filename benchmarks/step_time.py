"""Median time of one jitted FED-PsyAU training step (forward, backward, AdamW).

Usage: python benchmarks/step_time.py [--batch 32 256] [--repeats 10] [--classes 7]
Prints compile time, median/min step time per batch size and the parameter count.
The reference PyTorch model needs about 0.478 s for forward+backward alone at batch 32
on the 2-core CPU machine (shared/PERF_NOTES.md); the ratio is printed against that.
"""
from __future__ import annotations

import argparse
import os
import platform
import time


import jax
import jax.numpy as jnp
import numpy as np

from fedpsyau_jax.network.model import FedPsyAU, count_params, example_batch
from fedpsyau_jax.training.train_state import create_train_state, make_optimizer, make_train_step

REFERENCE_FWD_BWD_B32_S = 0.478


def full_batch(b: int, classes: int, seed: int = 0) -> dict:
    batch = example_batch(b, seed)
    rng = np.random.default_rng(seed + 1)
    batch["label"] = rng.integers(0, classes, b).astype(np.int32)
    batch["au"] = (rng.random((b, 12)) < 0.3).astype(np.float32)
    batch["au_mask"] = np.ones((b, 12), np.float32)
    return jax.tree.map(jnp.asarray, batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--classes", type=int, default=7)
    args = ap.parse_args()

    model = FedPsyAU(args.classes)
    tx = make_optimizer()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    for b in args.batch:
        batch = full_batch(b, args.classes)
        state = create_train_state(model, tx, jax.random.key(0))
        if b == args.batch[0]:
            print(f"parameters: {count_params(state.params):,}")
        step = jax.jit(make_train_step(model, tx), donate_argnums=0)
        t0 = time.perf_counter()
        compiled = step.lower(state, batch, jnp.float32(0.3)).compile()
        compile_s = time.perf_counter() - t0
        state, m = compiled(state, batch, jnp.float32(0.3))
        jax.block_until_ready(m)
        times = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            state, m = compiled(state, batch, jnp.float32(0.3 * (1 - r / args.repeats)))
            jax.block_until_ready((state.params, m))
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        line = (f"batch {b:4d}: compile {compile_s:6.1f} s | step median {med * 1e3:8.1f} ms "
                f"(min {min(times) * 1e3:.1f}) | {med / b * 1e3:.2f} ms/sample")
        if b == 32:
            line += f" | vs reference fwd+bwd 478 ms: {REFERENCE_FWD_BWD_B32_S / med:.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
