"""AU detection of the two heads aligned by a label-free reference, and of their
combined score, for runs that predate ``au_pretrain/reference_stats.json`` (issue 26).

    python experiments/au_branch/au_combined_score.py experiments/loso_runs/megc2019_loso_au_balanced \
        --workdir runs/megc2019_loso_au_balanced

For a finished run with shared stage-1 models (``pretrain.subject_folds`` ≥ 2):
``--workdir`` (the run's directory, with the stage-1 checkpoints) computes the
reference statistics as ``fedpsyau train`` now does at the end of stage 1
(``api.write_au_reference_stats``: each stage-1 model's logits of both heads over the
samples without AU labels, SMIC in the composite, which no stage-1 model sees) and
copies them beside the run's stored predictions (``au_pretrain/reference_stats.json``,
derived numbers only). Then it prints the AU table of ``fedpsyau report``, which
adds each head standardised by the statistics of the stage-1 model its fold started
from, and the combined score (mean of the two heads' standardised logits; decisions:
mean of the heads' probabilities against the mean of their inner-validation
thresholds). The rule was written down in RESULTS.md before it was first computed. The
aligned scores are logits in reference units shown through a sigmoid, so their "F1 at
0.5" column is not a decision of the recipe.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from fedpsyau_jax.training import report as loso_report

from fedpsyau_jax import api
from fedpsyau_jax.training.au_alignment import STATS_FILE


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="finished run (stored predictions) with pretrain.subject_folds >= 2")
    ap.add_argument("--workdir", type=Path, help="the run's directory with its stage-1 checkpoints (first time only)")
    ap.add_argument("--au-replicates", type=int, default=1000)
    args = ap.parse_args(argv)
    stats = args.run / "au_pretrain" / STATS_FILE
    if args.workdir is not None:
        cfg, samples, _, _ = api.run_predictions(args.run)
        made = api.write_au_reference_stats(args.workdir, samples, flip_tta=bool(cfg.train.get("eval_flip", False)))
        if made is None:
            sys.exit(f"{args.workdir}: no shared stage-1 checkpoints or no sample without AU labels")
        if made.resolve() != stats.resolve():
            tmp = stats.with_suffix(".tmp")
            shutil.copyfile(made, tmp)
            tmp.replace(stats)
    elif not stats.is_file():
        sys.exit(f"{stats}: not there; give --workdir (the run's directory with its stage-1 checkpoints)")
    print(loso_report.runs_markdown([args.run], au_replicates=args.au_replicates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
