"""``fedpsyau federate --config=configs/fl_x.py --config.fl.rounds=3 --workdir=DIR``.

Runs ``fedpsyau_jax.federated.federate``: every split × algorithm × seed chunk of the
config, resumable (re-running the same command continues where it stopped), and
writes DIR/results.json, DIR/results.md and DIR/fl_<split>.png.
"""

from __future__ import annotations

import argparse
import sys

USES_CONFIG = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, help="output folder (resumable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--summarise-only",
        action="store_true",
        help="train nothing: summarise the chunks already finished in --workdir",
    )


def run(args) -> int:
    from fedpsyau_jax.config_loading import load_config

    cfg = load_config(args.config, args.overrides)
    from fedpsyau_jax.federated.experiment import federate
    from fedpsyau_jax.federated.report import write_markdown

    summary = federate(
        cfg,
        args.workdir,
        progress=not args.no_progress,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        summarise_only=args.summarise_only,
    )
    print(write_markdown(summary))
    print(f"results: {args.workdir}/results.json")
    return 0
