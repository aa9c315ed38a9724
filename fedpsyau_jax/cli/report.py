"""``fedpsyau report RUN [RUN ...] [--paired-vs RUN]``: the Markdown report of finished runs.

For each run, recomputed from the folds' stored test predictions: pooled UF1/UAR with
95 % subject-bootstrap intervals, per-dataset scores, the confusion matrix, AU detection
of both heads against the linear probe (paired intervals), and the training time.
``--paired-vs B`` adds the paired interval of every other run minus B. ``--out FILE``
also writes the report to FILE.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", type=Path, help="run directories written by `fedpsyau train`")
    p.add_argument("--paired-vs", type=Path, help="a run to compare every other run with, paired by subject")
    p.add_argument("--replicates", type=int, default=2000, help="subject resamples of the emotion intervals")
    p.add_argument("--au-replicates", type=int, default=1000, help="subject resamples of the AU intervals")
    p.add_argument("--no-probe", action="store_true", help="leave the linear AU probe out")
    p.add_argument(
        "--probe-c",
        default="inner",
        help='the probe\'s regularisation C, or "inner" (default: chosen in every fold on its inner validation subjects)',
    )
    p.add_argument("--out", type=Path, help="also write the report to this Markdown file")


def run(args) -> int:
    from fedpsyau_jax.core.atomic_files import write_text_atomic
    from fedpsyau_jax.core.errors import InputFileError
    from fedpsyau_jax.training.report import runs_markdown

    for r in args.runs + ([args.paired_vs] if args.paired_vs else []):
        if not (r / "config.json").is_file():
            raise InputFileError(f"{r}: no config.json (not a run directory written by `fedpsyau train`)")
    try:
        probe_c = args.probe_c if args.probe_c == "inner" else float(args.probe_c)
    except ValueError:
        from fedpsyau_jax.core.errors import UserError

        raise UserError(f"--probe-c {args.probe_c!r}: a positive number or inner") from None
    text = runs_markdown(
        args.runs, args.paired_vs, args.replicates, args.au_replicates, probe=not args.no_probe, probe_c=probe_c
    )
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    return 0
