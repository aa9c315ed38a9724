"""Rewrites of the two hot spots of the train step, timed against what the model does now.

    python benchmarks/kernel_alternatives.py [--rounds 9]

The LFE (three 3×3 convolutions with BatchNorm on the 2,080 maps of 5×5 of a batch of
32) and the SSE's 75→2048→75 FFN over 2,080 tokens take most of a step
(``step_profile.py``). For each, forward + backward (gradients w.r.t. inputs and
weights) of the current form and of rewrites with the same numerics, interleaved round
after round, median ms:

- LFE: XLA's convolution (NHWC, the model's form), im2col (9 shifted copies, one
  matmul), a dense "Toeplitz" matmul per layer (the 5×5 map flattened, the 3×3 kernel
  spread over a (25·Cin, 25·Cout) matrix) and NCHW convolutions;
- the 32→64 convolution alone: forward, input gradient and weight gradient, and the
  achieved GFLOP/s of each (how close the current form is to the machine);
- FFN: autodiff of the plain form against a hand-written backward (``custom_vjp``).

Each rewrite's largest difference from the current form is printed. Run it on a quiet
machine: every figure is wall-clock time.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

N_MAPS = 32 * 65  # batch 32 × 65 landmark patches
DN = ("NHWC", "HWIO", "NHWC")


def bn_relu(y):
    axes = tuple(range(y.ndim - 1))
    m = y.mean(axes)
    v = ((y - m) ** 2).mean(axes)
    return jax.nn.relu((y - m) * lax.rsqrt(v + 1e-5))


def conv_xla(x, k):
    return lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=DN)


def conv_im2col(x, k):
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = jnp.concatenate([xp[:, i : i + 5, j : j + 5] for i in range(3) for j in range(3)], -1)
    return cols @ k.reshape(-1, k.shape[-1])


def _toeplitz_selector() -> np.ndarray:
    """S[p, q, t] = 1 where input position p feeds output position q through tap t."""
    s = np.zeros((25, 25, 9), np.float32)
    for qi in range(5):
        for qj in range(5):
            for di in range(3):
                for dj in range(3):
                    pi, pj = qi + di - 1, qj + dj - 1
                    if 0 <= pi < 5 and 0 <= pj < 5:
                        s[pi * 5 + pj, qi * 5 + qj, di * 3 + dj] = 1
    return s


SELECTOR = jnp.asarray(_toeplitz_selector())


def conv_toeplitz(x, k):
    cin, cout = k.shape[2:]
    w = jnp.einsum("pqt,tio->piqo", SELECTOR, k.reshape(9, cin, cout)).reshape(25 * cin, 25 * cout)
    return (x.reshape(x.shape[0], -1) @ w).reshape(x.shape[0], 5, 5, cout)


def conv_nchw(x, k):
    y = lax.conv_general_dilated(
        x.transpose(0, 3, 1, 2), k, (1, 1), "SAME", dimension_numbers=("NCHW", "HWIO", "NCHW")
    )
    return y.transpose(0, 2, 3, 1)


LFE_FORMS = {"conv NHWC (model)": conv_xla, "im2col": conv_im2col, "Toeplitz matmul": conv_toeplitz, "conv NCHW": conv_nchw}

KEEP_SCALE = 1 / 0.9


def ffn_plain(y, w1, b1, w2, b2, keep):
    h = jax.nn.relu(y @ w1 + b1)
    return jnp.where(keep, h * KEEP_SCALE, 0) @ w2 + b2


@jax.custom_vjp
def ffn_custom(y, w1, b1, w2, b2, keep):
    return ffn_plain(y, w1, b1, w2, b2, keep)


def _ffn_fwd(y, w1, b1, w2, b2, keep):
    a = y @ w1 + b1
    h = jnp.where(keep & (a > 0), a * KEEP_SCALE, 0)
    return h @ w2 + b2, (y, w1, w2, h, keep, a)


def _ffn_bwd(res, g):
    y, w1, w2, h, keep, a = res
    dh = g @ w2.T
    da = jnp.where(keep & (a > 0), dh * KEEP_SCALE, 0)
    # (gᵀh)ᵀ instead of hᵀg: transposes the small operand, not the 2080×2048 one.
    return da @ w1.T, y.T @ da, da.sum(0), (g.T @ h).T, g.sum(0), None


ffn_custom.defvjp(_ffn_fwd, _ffn_bwd)


def timed(fns: dict, rounds: int) -> dict:
    for f in fns.values():
        jax.block_until_ready(f())
    times: dict = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(f())
            times[k].append(time.perf_counter() - t)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def max_rel_diff(a, b) -> float:
    return max(
        float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(x)) + 1e-12))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    normal = lambda *shape, scale=1.0: jnp.asarray(rng.standard_normal(shape) * scale, jnp.float32)
    print(f"jax {jax.__version__}, {jax.device_count()} CPU device(s), {args.rounds} interleaved rounds")

    x0 = normal(N_MAPS, 5, 5, 3)
    kernels = [normal(3, 3, 3, 32, scale=1 / np.sqrt(27)), normal(3, 3, 32, 64, scale=1 / np.sqrt(288))]
    kernels.append(normal(3, 3, 64, 3, scale=1 / np.sqrt(576)))

    def lfe_grad(conv):
        def loss(ks, x):
            for k in ks:
                x = bn_relu(conv(x, k))
            return jnp.sum(x**2)

        g = jax.jit(jax.grad(loss, argnums=(0, 1)))
        return lambda: g(kernels, x0)

    fns = {name: lfe_grad(conv) for name, conv in LFE_FORMS.items()}
    ref = fns["conv NHWC (model)"]()
    ms = timed(fns, args.rounds)
    print("\nLFE forward + backward (3 conv + BN + ReLU layers, 2,080 maps of 5×5)")
    print("| form | median ms | max rel. diff of gradients |")
    print("|---|---|---|")
    for name, f in fns.items():
        print(f"| {name} | {ms[name]:.1f} | {max_rel_diff(ref, f()):.1e} |")

    x = normal(N_MAPS, 5, 5, 32)
    k = normal(3, 3, 32, 64)
    dy = normal(N_MAPS, 5, 5, 64)
    vjp = lambda x, k: jax.vjp(conv_xla, x, k)[1]
    parts = {
        "forward": jax.jit(conv_xla),
        "input gradient": jax.jit(lambda dy, x, k: vjp(x, k)(dy)[0]),
        "weight gradient": jax.jit(lambda dy, x, k: vjp(x, k)(dy)[1]),
    }
    calls = {
        "forward": lambda: parts["forward"](x, k),
        "input gradient": lambda: parts["input gradient"](dy, x, k),
        "weight gradient": lambda: parts["weight gradient"](dy, x, k),
    }
    ms = timed(calls, args.rounds)
    flop = 2 * N_MAPS * 25 * 9 * 32 * 64
    print("\nLFE's 32→64 convolution alone (the largest layer)")
    print("| part | median ms | GFLOP/s |")
    print("|---|---|---|")
    for name, t in ms.items():
        print(f"| {name} | {t:.1f} | {flop / t / 1e6:.0f} |")

    y = normal(N_MAPS, 75)
    w1, b1 = normal(75, 2048, scale=0.1), jnp.zeros(2048)
    w2, b2 = normal(2048, 75, scale=0.02), jnp.zeros(75)
    keep = jnp.asarray(rng.random((N_MAPS, 2048)) > 0.1)
    grads = {
        name: jax.jit(jax.grad(lambda *a, f=f: jnp.sum(f(*a) ** 2), argnums=(0, 1, 2, 3, 4)))
        for name, f in (("autodiff (model)", ffn_plain), ("custom_vjp", ffn_custom))
    }
    calls = {name: (lambda g=g: g(y, w1, b1, w2, b2, keep)) for name, g in grads.items()}
    ms = timed(calls, args.rounds)
    ref = calls["autodiff (model)"]()
    print("\nSSE FFN 75→2048→75 with dropout 0.1, forward + backward over 2,080 tokens")
    print("| form | median ms | max rel. diff of gradients |")
    print("|---|---|---|")
    for name, f in calls.items():
        print(f"| {name} | {ms[name]:.1f} | {max_rel_diff(ref, f()):.1e} |")


if __name__ == "__main__":
    main()
