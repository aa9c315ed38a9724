"""Cold compile time of what a training run needs, per program, and the recompilation count.

    python benchmarks/compile_time.py [--config configs/synthetic_demo.py] [--epochs 2]
        [--init-opt-level default] [-- --config.overrides ...]

Runs ``api.train`` on the config (the README demo by default, with fewer epochs) in this
process with the persistent compile cache off, so every program compiles from scratch,
and listens to JAX's compile events:

- XLA compile seconds per program (``jit(init_one)``, ``jit(step_one)``, ...);
- lowerings (in-memory cache misses) before and after the first fold finished: after
  it, a run that recompiles nothing across folds, epochs and β values has none;
- the run's wall time, and the share of it spent compiling.

``--init-opt-level default`` compiles the model-initialisation programs at XLA's default
optimisation level instead of ``INIT_COMPILER_OPTIONS`` (the before/after of that change).
Run it on a quiet machine: every figure is wall-clock time.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path

os.environ["FEDPSYAU_XLA_CACHE"] = "off"  # before fedpsyau_jax configures jax
ROOT = Path(__file__).resolve().parent.parent

from jax._src import dispatch, monitoring

from fedpsyau_jax import api
from fedpsyau_jax.config_loading import load_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "synthetic_demo.py"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--init-opt-level", choices=("0", "default"), default="0")
    ap.add_argument("overrides", nargs="*", help="config overrides a.b=v")
    args = ap.parse_args()
    if args.init_opt_level == "default":
        from fedpsyau_jax.network.model import INIT_COMPILER_OPTIONS

        INIT_COMPILER_OPTIONS.clear()  # shared dict: every init program sees the change

    compile_s: dict[str, float] = collections.defaultdict(float)
    lowered: list[tuple[str, str]] = []
    phase = ["before the first fold finished"]

    def listener(event, duration, **kw):
        name = str(kw.get("fun_name", "?"))
        if event == dispatch.BACKEND_COMPILE_EVENT:
            compile_s[name] += duration
        elif event == dispatch.JAXPR_TO_MLIR_MODULE_EVENT:
            lowered.append((phase[0], name))

    def on_fold_done(fold, predictions):
        phase[0] = "after it"

    monitoring.register_event_duration_secs_listener(listener)
    cfg = load_config(args.config, [f"train.epochs={args.epochs}", *args.overrides])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        api.train(
            cfg, Path(tmp) / "run", show_progress=False, verbose=False, hooks=api.RunHooks(on_fold_done=on_fold_done)
        )
        wall = time.perf_counter() - t0
    total = sum(compile_s.values())
    print(f"config {Path(args.config).name}, {args.epochs} epochs, init programs at opt level {args.init_opt_level}")
    print("| program | XLA compile s |")
    print("|---|---|")
    for name, sec in sorted(compile_s.items(), key=lambda kv: -kv[1]):
        if sec >= 0.05:
            print(f"| {name} | {sec:.1f} |")
    small = sum(s for s in compile_s.values() if s < 0.05)
    print(f"| {sum(1 for s in compile_s.values() if s < 0.05)} small programs | {small:.1f} |")
    print(f"compile total {total:.1f} s of the run's {wall:.1f} s wall ({100 * total / wall:.0f} %)")
    for p in ("before the first fold finished", "after it"):
        names = collections.Counter(n for q, n in lowered if q == p)
        print(f"lowerings {p}: {sum(names.values())} {dict(names.most_common(6))}")


if __name__ == "__main__":
    main()
