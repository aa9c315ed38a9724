"""``fedpsyau federate --config CONFIG --workdir DIR [--set key=value ...]``.

Runs ``fedpsyau_jax.federated.federate``: every split × algorithm × seed chunk of the
config, resumable (re-running the same command continues where it stopped), and
writes DIR/results.json, DIR/results.md and DIR/fl_<split>.png.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="config file (configs/fl_*.py)")
    p.add_argument("--workdir", required=True, help="output folder (resumable)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config entry, e.g. --set fl.rounds=3 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--summarise-only", action="store_true",
                   help="train nothing: summarise the chunks already finished in --workdir")


def run(args) -> int:
    from fedpsyau_jax.config_loading import ConfigError, load_config
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"fedpsyau federate: {e}", file=sys.stderr)
        return 2
    from fedpsyau_jax.federated.experiment import federate
    from fedpsyau_jax.federated.report import write_markdown
    try:
        summary = federate(cfg, args.workdir, progress=not args.no_progress,
                           log=lambda m: print(m, file=sys.stderr, flush=True),
                           summarise_only=args.summarise_only)
    except (ValueError, FileNotFoundError) as e:
        print(f"fedpsyau federate: {e}", file=sys.stderr)
        return 2
    print(write_markdown(summary))
    print(f"results: {args.workdir}/results.json")
    return 0
