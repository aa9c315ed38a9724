"""Train every arm of the cross-database study for a range of seeds (draws), resumably.

    python experiments/cross_database/run_draws.py --draws 10
    python experiments/cross_database/run_draws.py --draws 10 --arms full,flow
    python experiments/cross_database/run_draws.py --study loso --draws 3   # LOSO baselines

Each (arm, seed) trains in ``runs/cross_database/<arm>_s<seed>`` with
``fedpsyau train`` and, once finished, its config, log, summary and every fold's test
predictions are copied to ``experiments/cross_database/draws/<arm>_s<seed>`` (models are
not copied: they are trained on the licensed composite). A draw already copied is
skipped, a draw interrupted resumes from its checkpoints. Draws are interleaved over the
arms (seed 0 of every arm, then seed 1, ...) so an interrupted study stays balanced.

The arms (all on ``protocol.kind=leave_dataset_out``, settings fixed before any run):
    full        configs/megc2019_cross_database.py (FED-PsyAU, stage 1 in every fold)
    flow        the same with model.use_au_branch=false (flow-stream-only twin)
    ststnet, offapexnet, sssnet
                configs/megc2019_baseline_loso.py (each network's published recipe)

``--study loso``: the three baselines on the composite's LOSO folds (the folds of
FED-PsyAU's committed LOSO runs), copied to ``experiments/loso_runs/draws/``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "draws"
LOSO_OUT = ROOT / "experiments" / "loso_runs" / "draws"
XDB = "configs/megc2019_cross_database.py"
BASE = "configs/megc2019_baseline_loso.py"
LDO = "--config.protocol.kind=leave_dataset_out"
ARMS = {
    "full": [f"--config={XDB}"],
    "flow": [f"--config={XDB}", "--config.model.use_au_branch=false"],
    "ststnet": [f"--config={BASE}", LDO, "--config.model.name=ststnet"],
    "offapexnet": [f"--config={BASE}", LDO, "--config.model.name=offapexnet"],
    "sssnet": [f"--config={BASE}", LDO, "--config.model.name=sssnet"],
}
#: The LOSO arms beside FED-PsyAU's committed LOSO draws (``--study loso``).
LOSO_ARMS = {name: [f"--config={BASE}", f"--config.model.name={name}"] for name in ("ststnet", "sssnet", "offapexnet")}
# Off-ApexNet's epoch runs 1.2x faster 4 folds at a time than 68 at once (and in 1 GiB
# instead of 6); the fold width changes the speed, not the result.
LOSO_ARMS["offapexnet"].append("--config.runtime.fold_chunk=4")
KEEP = ("config.json", "summary.json", "metrics.jsonl")


def copy_results(src: Path, dst: Path) -> None:
    """The committable part of a finished run, written to a temporary folder first and
    renamed, so ``dst`` exists only when complete."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in KEEP:
        shutil.copy2(src / name, tmp / name)
    for pred in sorted(src.glob("folds/*/predictions.npz")):
        (tmp / pred.parent.relative_to(src)).mkdir(parents=True, exist_ok=True)
        shutil.copy2(pred, tmp / pred.relative_to(src))
    tmp.rename(dst)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=10, help="seeds 0 .. draws-1")
    p.add_argument("--first", type=int, default=0, help="first seed")
    p.add_argument("--study", choices=("cross_database", "loso"), default="cross_database")
    p.add_argument("--arms", help="comma-separated arms of the study (default: all)")
    p.add_argument("--workroot", type=Path, help="where runs train (default runs/<study>)")
    args = p.parse_args(argv)
    table, out = (ARMS, OUT) if args.study == "cross_database" else (LOSO_ARMS, LOSO_OUT)
    workroot = args.workroot or ROOT / "runs" / args.study
    arms = [a.strip() for a in (args.arms or ",".join(table)).split(",") if a.strip()]
    unknown = [a for a in arms if a not in table]
    if unknown:
        p.error(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    fedpsyau = [sys.executable, "-m", "fedpsyau_jax.cli"]
    for seed in range(args.first, args.first + args.draws):
        for arm in arms:
            name = f"{arm}_s{seed}"
            dst = out / name
            if (dst / "summary.json").is_file():
                continue
            work = workroot / name
            t0 = time.time()
            cmd = fedpsyau + ["train", *table[arm], f"--config.seed={seed}", f"--workdir={work}", "--no-progress"]
            print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[3:])}", flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)
            copy_results(work, dst)
            print(f"[{time.strftime('%H:%M:%S')}] {name} done in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
