"""The cross-database table: every arm's draws, and FED-PsyAU minus every other arm.

    python experiments/cross_database/compare.py [--vs full] [--out experiments/cross_database/results.md]
    python experiments/cross_database/compare.py --study loso     # the LOSO baselines beside FED-PsyAU

Reads the finished draws in ``experiments/cross_database/draws/<arm>_s<seed>`` (written
by ``run_draws.py``) and prints ``training.draws_report.draws_markdown``. ``--study loso``
reads ``experiments/loso_runs/draws/`` (the baselines) with FED-PsyAU's committed LOSO
draws of the current recipe (``LOSO_FEDPSYAU``: mirror-averaged, seeds 0 and 2) and its
flow-only twin as the arms ``full`` and ``flow``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from fedpsyau_jax.core.atomic_files import write_text_atomic
from fedpsyau_jax.training.draws_report import draws_markdown

RUNS = Path(__file__).resolve().parent / "draws"
LOSO = Path(__file__).resolve().parents[1] / "loso_runs"
LOSO_FEDPSYAU = {
    "full": ("megc2019_loso_au_balanced_fliptta", "megc2019_loso_au_balanced_seed2_fliptta"),
    "flow": ("megc2019_loso_flow_fliptta",),
}
ORDER = ("full", "flow", "ststnet", "offapexnet", "sssnet")


def arms_in(folder: Path) -> dict[str, list[Path]]:
    arms: dict[str, list[Path]] = {}
    for run in sorted(folder.glob("*_s*")):
        m = re.fullmatch(r"(.+)_s(\d+)", run.name)
        if m and (run / "summary.json").is_file():
            arms.setdefault(m.group(1), []).append(run)
    rank = {a: i for i, a in enumerate(ORDER)}
    return dict(sorted(arms.items(), key=lambda kv: (rank.get(kv[0], len(ORDER)), kv[0])))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, help="folder of <arm>_s<seed> draws (default: the study's)")
    p.add_argument("--study", choices=("cross_database", "loso"), default="cross_database")
    p.add_argument("--vs", default="full", help="the reference arm of the paired table")
    p.add_argument("--replicates", type=int, default=2000)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    loso = args.study == "loso"
    arms = arms_in(args.runs or (LOSO / "draws" if loso else RUNS))
    if loso:
        arms = {**{a: [LOSO / r for r in runs] for a, runs in LOSO_FEDPSYAU.items()}, **arms}
    text = draws_markdown(arms, args.vs, args.replicates)
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
