"""``fedpsyau evaluate --workdir DIR``: re-evaluate every fold's saved final model.

Restores each fold's model checkpoint, predicts its test subjects, pools the
predictions and prints UF1/UAR (and whether they equal the predictions stored at
training time). Writes DIR/evaluation.json.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, help="a run directory written by `fedpsyau train`")


def run(args) -> int:
    from pathlib import Path

    from fedpsyau_jax.core.atomic_files import write_json_atomic
    from fedpsyau_jax import api
    from fedpsyau_jax.core.errors import InputFileError

    wd = Path(args.workdir)
    if not wd.is_dir():
        raise InputFileError(
            f"--workdir {wd}: does not exist (or is not a folder); give a run directory written by `fedpsyau train`"
        )
    if not (wd / "config.json").is_file():
        raise InputFileError(f"--workdir {wd}: no config.json (not a training run directory)")
    summary = api.evaluate(args.workdir)
    write_json_atomic(Path(args.workdir) / "evaluation.json", summary)
    return 0 if summary["matches_stored_predictions"] else 1
