"""Our jitted training step against the reference PyTorch model's forward + backward, interleaved.

    python benchmarks/reference_step_time.py --reference-dir ~/FED-PsyAU [--torch-python PATH]
        [--batch 32] [--rounds 5] [--steps 10] [--warmup 3] [--threads 2]

What is timed, per step, at the same batch size (32 by default) on the CPU:

- ours: one call of the jitted, donated training step of ``benchmarks/step_time.py``
  (forward, backward and the AdamW update), on the same random batch as that script;
- the reference: forward, loss and ``loss.backward()`` of the public PyTorch code
  (github.com/MELABIPCAS/FED-PsyAU, timed at commit 991e940fb018, file
  ``FED-PsyAU/model/model_ensamble.py``, class ``au_graph_mer`` built as its
  ``FED-PsyAU/train_v2_161_landmark/train.py`` builds it: ``'au_graph_mer_softmax'``,
  7 classes, train mode). Its optimiser step is not timed (as in shared/PERF_NOTES.md),
  so the comparison is our whole step against its forward + backward alone.
  The inputs have the shapes its data set class produces: the global flow image
  (B, 3, 28, 28), the 161 landmark ROI patches of the flow as (B, 483, 5, 5) (three
  channels per landmark), 12 AU labels and the emotion label; the loss is the one of its
  training script (0.2 · cross-entropy + 0.8 · (BCE of the AU head + BCE of the auxiliary
  head)), its prior ratio is 0.3 and its weights get the Kaiming-normal initialisation
  its training script applies. Float32 throughout (its ``autocast`` is a no-op on CPU).

The reference is not part of this repository and nothing of it is copied here: pass the
path of your own clone (its root, or its ``FED-PsyAU`` folder) and the model class is
imported from there; it needs no changes to run on the CPU (its tensors are created on
the device it is given, here ``cpu``). No bytecode is written into the clone.

The reference runs in a worker process of this same script (``--torch-python``, by
default this interpreter), so torch may live in another environment than the project's
(e.g. a Python 3.11 venv with a CPU wheel of torch when none exists for the project's
Python) and the two runtimes' thread pools never share a process. The rounds alternate:
ours ``--steps`` steps, then the reference ``--steps`` steps, ``--rounds`` times, after a
warm-up of each (compile and ``--warmup`` steps for ours, ``--warmup`` steps for the
reference); only one side computes at a time. Printed: per-round medians, the median over
all timed steps of each side, the ratio reference / ours, the min and max of the round
medians, torch and jax versions, thread settings and the load average before and after.
Run it on a quiet machine: every figure is wall-clock time.

Needs torch (CPU build) in the interpreter given by ``--torch-python``; without it the
script prints how to install one and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

INSTALL_HINT = (
    "torch is not importable by {python}: install a CPU build with "
    "`{python} -m pip install torch --index-url https://download.pytorch.org/whl/cpu`, "
    "or pass --torch-python PATH of an interpreter that has torch"
)
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")


def reference_model_dir(path: str) -> str | None:
    """The folder holding the reference's ``model/`` package: the clone root's ``FED-PsyAU`` or the path itself."""
    for cand in (os.path.join(path, "FED-PsyAU"), path):
        if os.path.isfile(os.path.join(cand, "model", "model_ensamble.py")):
            return os.path.abspath(cand)
    return None


def git_commit(path: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


# ---------------------------------------------------------------- reference worker (torch only)


def worker(args: argparse.Namespace) -> None:
    """Build the reference model, warm it up, then time ``run N`` requests read from stdin.

    Speaks one JSON object per line on stdout; imports torch, never jax.
    """
    sys.dont_write_bytecode = True
    try:
        import torch
    except ImportError:
        print(json.dumps({"error": "no_torch"}), flush=True)
        return
    import warnings

    warnings.filterwarnings("ignore", message=".*enable_nested_tensor.*")
    torch.set_num_threads(args.threads)
    model_dir = reference_model_dir(args.reference_dir)
    # the worker is started with the clone on PYTHONPATH (see ``main``)
    from model.model_ensamble import au_graph_mer  # the reference's own module, from the user's clone

    torch.manual_seed(0)
    model = au_graph_mer("au_graph_mer_softmax", torch.device("cpu"), out_channels=args.classes)
    for mod in model.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(mod.weight)
            if mod.bias is not None:
                torch.nn.init.zeros_(mod.bias)
    model.train()

    b = args.batch
    g = torch.Generator().manual_seed(1)
    flow = torch.randn(b, 3, 28, 28, generator=g)
    patches = torch.randn(b, 483, 5, 5, generator=g)
    au = (torch.rand(b, 12, generator=g) < 0.3).float()
    label = torch.randint(0, args.classes, (b,), generator=g)
    bce, ce = torch.nn.BCEWithLogitsLoss(), torch.nn.CrossEntropyLoss()
    gamma, ratio = 0.8, 0.3

    def step() -> float:
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        emo, au_pred, aux_pred = model(flow, patches, ratio)
        loss = (1 - gamma) * ce(emo, label) + gamma * (bce(au_pred, au) + bce(aux_pred, au))
        loss.backward()
        return time.perf_counter() - t0

    first = [step() for _ in range(max(args.warmup, 1))]
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "python": platform.python_version(),
                "threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(),
                "mkldnn": torch.backends.mkldnn.is_available(),
                "params": sum(p.numel() for p in model.parameters()),
                "model_dir": model_dir,
                "warmup_ms": [round(t * 1e3, 1) for t in first],
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] != "run":
            break
        print(json.dumps([step() for _ in range(int(cmd[1]))]), flush=True)


# ---------------------------------------------------------------- driver (jax, the project)


def driver(args: argparse.Namespace) -> int:
    model_dir = reference_model_dir(args.reference_dir)
    if model_dir is None:
        print(
            f"{args.reference_dir} does not look like a clone of MELABIPCAS/FED-PsyAU "
            "(no FED-PsyAU/model/model_ensamble.py under it)",
            file=sys.stderr,
        )
        return 2
    torch_python = args.torch_python or sys.executable
    cmd = [torch_python, os.path.abspath(__file__), "--worker", "--reference-dir", model_dir]
    cmd += ["--batch", str(args.batch), "--classes", str(args.classes), "--threads", str(args.threads)]
    cmd += ["--warmup", str(args.warmup)]
    load_before = os.getloadavg()
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (model_dir, os.environ.get("PYTHONPATH")) if p)}
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    except OSError as e:
        print(f"cannot start {torch_python}: {e}", file=sys.stderr)
        return 2
    assert proc.stdin is not None and proc.stdout is not None
    try:
        # the reference builds and warms up in its process while nothing else runs here
        hello_line = proc.stdout.readline()
        if not hello_line:
            print(f"the reference worker ({torch_python}) exited with status {proc.wait()}", file=sys.stderr)
            return 1
        hello = json.loads(hello_line)
        if hello.get("error") == "no_torch":
            print(INSTALL_HINT.format(python=torch_python))
            return 2

        import jax
        import jax.numpy as jnp
        import numpy as np
        from step_time import full_batch

        from fedpsyau_jax.network.model import FedPsyAU, count_params
        from fedpsyau_jax.training.train_state import create_train_state, make_optimizer, make_train_step

        model, tx = FedPsyAU(args.classes), make_optimizer()
        batch = full_batch(args.batch, args.classes)
        state = create_train_state(model, tx, jax.random.key(0))
        n_params = count_params(state.params)
        beta = jnp.float32(0.3)
        t0 = time.perf_counter()
        compiled = jax.jit(make_train_step(model, tx), donate_argnums=0).lower(state, batch, beta).compile()
        compile_s = time.perf_counter() - t0
        box = {"state": state}

        def ours(n: int) -> list[float]:
            times = []
            for _ in range(n):
                t = time.perf_counter()
                box["state"], m = compiled(box["state"], batch, beta)
                jax.block_until_ready((box["state"].params, m))
                times.append(time.perf_counter() - t)
            return times

        def ref(n: int) -> list[float]:
            proc.stdin.write(f"run {n}\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the reference worker exited with status {proc.wait()}")
            return json.loads(line)

        ours(max(args.warmup, 1))
        env = ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in THREAD_ENV)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {env}")
        print(
            f"ours: jax {jax.__version__} on {jax.devices()[0].platform}, Python {platform.python_version()}, "
            f"{n_params:,} parameters, compile {compile_s:.1f} s; XLA:CPU uses all cores"
        )
        print(
            f"reference: torch {hello['torch']}, Python {hello['python']}, {hello['params']:,} parameters, "
            f"threads {hello['threads']} (interop {hello['interop_threads']}), mkldnn {hello['mkldnn']}; "
            f"commit {git_commit(model_dir)} ({hello['model_dir']}); warm-up ms {hello['warmup_ms']}"
        )
        print(
            f"batch {args.batch}, {args.rounds} rounds x {args.steps} steps, interleaved ours / reference; "
            f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}",
            flush=True,
        )

        all_ours: list[float] = []
        all_ref: list[float] = []
        med_ours: list[float] = []
        med_ref: list[float] = []
        for r in range(args.rounds):
            a, b = ours(args.steps), ref(args.steps)
            all_ours += a
            all_ref += b
            med_ours.append(statistics.median(a))
            med_ref.append(statistics.median(b))
            print(
                f"round {r + 1}: ours {med_ours[-1] * 1e3:7.1f} ms | reference {med_ref[-1] * 1e3:7.1f} ms | "
                f"ratio {med_ref[-1] / med_ours[-1]:.2f}x",
                flush=True,
            )
        mo, mr = float(np.median(all_ours)), float(np.median(all_ref))
        load_after = os.getloadavg()
        print(
            f"ours (jitted step incl. AdamW): median {mo * 1e3:.1f} ms, round medians "
            f"{min(med_ours) * 1e3:.1f}-{max(med_ours) * 1e3:.1f} ms, fastest step {min(all_ours) * 1e3:.1f} ms"
        )
        print(
            f"reference (forward + backward, no optimiser step): median {mr * 1e3:.1f} ms, round medians "
            f"{min(med_ref) * 1e3:.1f}-{max(med_ref) * 1e3:.1f} ms, fastest step {min(all_ref) * 1e3:.1f} ms"
        )
        print(
            f"ratio reference / ours: {mr / mo:.2f}x (per round {min(med_ref[i] / med_ours[i] for i in range(args.rounds)):.2f}-"
            f"{max(med_ref[i] / med_ours[i] for i in range(args.rounds)):.2f}x); "
            f"load average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}"
        )
        return 0
    finally:
        if proc.poll() is None:
            try:
                proc.stdin.write("quit\n")
                proc.stdin.close()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-dir", required=True, help="your clone of github.com/MELABIPCAS/FED-PsyAU")
    ap.add_argument("--torch-python", default=None, help="interpreter with torch for the reference (default: this one)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--classes", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="timed steps of each side per round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps of each side before the rounds")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for the reference")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    sys.exit(driver(args))


if __name__ == "__main__":
    main()
