"""``fedpsyau train --config=configs/x.py --config.train.epochs=30 --workdir=DIR``.

Runs the config's protocol (LOSO / k-fold) in DIR, resuming a partial run there,
and prints pooled UF1/UAR and where the plots, metrics and final model are. The
config and its overrides are checked before anything is written.
"""

from __future__ import annotations

import argparse

USES_CONFIG = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, help="run directory (created; a partial run there resumes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from fedpsyau_jax import api
    from fedpsyau_jax.config_loading import load_config

    cfg = load_config(args.config, args.overrides)
    api.train(cfg, args.workdir, show_progress=not args.no_progress)
    return 0
