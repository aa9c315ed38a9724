"""Where the time of one training step goes: forward + backward of each part, timed alone.

    python benchmarks/step_profile.py [--batch 32] [--rounds 7]

Each part of the network is jitted on its own with its real input shapes (train mode:
BatchNorm batch statistics, dropout on) and timed forward + backward (the gradient of the
sum of its outputs w.r.t. its parameters and inputs); the full step with AdamW, the full
forward + backward and the flow-only model are timed the same way. The parts run
interleaved, round after round, and the median per part is printed with its share of the
full forward + backward. Parts timed alone do not add up exactly to the whole (XLA fuses
across part boundaries inside the whole step), so the table says where time goes, not a
budget that sums to 100 %. Compile time of each program is printed too. Run it on a quiet
machine: every figure is wall-clock time.
"""

from __future__ import annotations

import argparse
import os
import time


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fedpsyau_jax.core.au_groups import GROUP_TOKEN_SETS
from fedpsyau_jax.network.gat import DPKGAT
from fedpsyau_jax.network.model import (
    GRAPH_GLOB,
    GRAPH_LOW,
    GRAPH_UP,
    LFE,
    SSE,
    AUHead,
    DualStreamInception,
    FedPsyAU,
    GroupAFE,
    split_blocks,
)
from fedpsyau_jax.network.priors import LOWER, UPPER, reference_prior
from fedpsyau_jax.network.roi_patches import cut_patches_batch
from fedpsyau_jax.training.train_state import create_train_state, make_optimizer, make_train_step

from step_time import full_batch


class AUGraph(nn.Module):
    """GSE/AFE of the four groups, the three DPK-GATs and both AU heads on Z (B, 65, 75)."""

    @nn.compact
    def __call__(self, z, train: bool):
        nodes = [
            GroupAFE(len(au), name=f"afe_{g}")(z[:, np.asarray(tok)], train)
            for g, (au, tok) in GROUP_TOKEN_SETS["paper"].items()
        ]
        f = jnp.concatenate(nodes, axis=1)
        d = jnp.asarray(reference_prior())
        d_up, d_low = split_blocks(d)
        u = DPKGAT(GRAPH_UP)(f[:, UPPER], d_up, 0.3, train) + f[:, UPPER]
        lo = DPKGAT(GRAPH_LOW)(f[:, LOWER], d_low, 0.3, train) + f[:, LOWER]
        h = jnp.concatenate([u, lo], axis=1)
        g = DPKGAT(GRAPH_GLOB)(h, d, 0.3, train) + h
        return AUHead()(f, train).sum() + AUHead()(g, train).sum() + g.sum()


def part_program(module: nn.Module, *inputs):
    """jitted fwd+bwd of ``module`` on ``inputs`` and its variables."""
    key = jax.random.key(0)
    v = module.init({"params": key, "dropout": key}, *inputs, train=True)

    def loss(params, *xs):
        out, _ = module.apply(
            {**v, "params": params}, *xs, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
        )
        return jnp.sum(jax.tree.leaves(out)[0]) if not isinstance(out, jax.Array) else jnp.sum(out)

    fn = jax.jit(jax.grad(loss, argnums=tuple(range(1 + len(inputs)))))
    return fn, (v["params"], *inputs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    b = args.batch
    batch = full_batch(b, 3)
    patches = cut_patches_batch(batch["flow28"], batch["landmarks"] * (28 / 128))
    phi = jnp.asarray(np.random.default_rng(0).random((b, 65, 75)), jnp.float32)
    g = jnp.asarray(np.random.default_rng(1).random((b, 12, 25)), jnp.float32)

    model = FedPsyAU(3, roi_source="flow28")
    tx = make_optimizer(1e-3)
    state = create_train_state(model, tx, jax.random.key(0))
    step = jax.jit(make_train_step(model, tx, hflip=0.5, au_norm="examples"))
    flow_only = FedPsyAU(3, use_au_branch=False)
    fo_state = create_train_state(flow_only, tx, jax.random.key(0))
    fo_step = jax.jit(make_train_step(flow_only, tx))

    def fwd_bwd(m, st):
        def loss(params):
            out, _ = m.apply(
                {"params": params, "batch_stats": st.batch_stats, "priors": st.priors},
                batch,
                0.3,
                train=True,
                rngs={"dropout": jax.random.key(0)},
                mutable=["batch_stats"],
            )
            return sum(jnp.sum(o) for o in out if o is not None)

        return jax.jit(jax.grad(loss)), (st.params,)

    parts = {
        "full step (fwd+bwd+AdamW)": (lambda s=state: step(s, batch, jnp.float32(0.3)), None),
        "full fwd+bwd": fwd_bwd(model, state),
        "flow-only step": (lambda s=fo_state: fo_step(s, batch, jnp.float32(0.3)), None),
        "ROI patches (cut, fwd)": (jax.jit(lambda f, lm: cut_patches_batch(f, lm * (28 / 128))),
                                   (batch["flow28"], batch["landmarks"])),
        f"LFE ({65 * b} maps of 5x5)": part_program(LFE(), patches),
        "SSE (attention + FFN 2048)": part_program(SSE(), phi),
        "GSE/AFE + 3 DPK-GAT + AU heads": part_program(AUGraph(), phi),
        "DSI (AU + flow Inception streams)": part_program(DualStreamInception(3), g, batch["flow28"]),
    }
    compiled, compile_s = {}, {}
    for name, (fn, inputs) in parts.items():
        t0 = time.perf_counter()
        call = fn if inputs is None else (lambda fn=fn, inputs=inputs: fn(*inputs))
        jax.block_until_ready(call())
        compile_s[name] = time.perf_counter() - t0
        compiled[name] = call
    times = {n: [] for n in parts}
    for _ in range(args.rounds):
        for name, call in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(call())
            times[name].append(time.perf_counter() - t0)
    whole = float(np.median(times["full fwd+bwd"]))
    print(f"batch {b}, {args.rounds} interleaved rounds, jax {jax.__version__}, {os.cpu_count()} cores")
    print("| part | median ms | min ms | share of full fwd+bwd | first call (compile) s |")
    print("|---|---|---|---|---|")
    for name, ts in times.items():
        med = float(np.median(ts))
        print(f"| {name} | {1e3 * med:.1f} | {1e3 * min(ts):.1f} | {100 * med / whole:.0f} % | {compile_s[name]:.1f} |")


if __name__ == "__main__":
    main()
