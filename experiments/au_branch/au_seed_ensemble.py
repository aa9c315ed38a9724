"""AU detection of a seed ensemble of finished runs of one recipe (issue 26).

    python experiments/au_branch/au_seed_ensemble.py experiments/loso_runs/megc2019_loso_au_flowframe \
        experiments/loso_runs/megc2019_loso_au_flowframe_seed1

The runs must share their folds (same protocol and data; only ``seed`` differs). Per
head and test sample the ensemble's AU probability is the mean of the runs'
probabilities; its decisions compare that mean with the mean of the runs'
inner-validation thresholds of the sample's fold (``au_threshold_*``; 0.5 where a run
stored none). Printed: the table of ``fedpsyau report`` (pooled and
within-subject AUC, F1, per dataset, paired intervals against the linear probe) for
each run alone and for the ensemble. The rule was fixed before the second run of the
issue-26 pair produced any output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fedpsyau_jax.training import report as loso_report

from fedpsyau_jax import api


def head_outputs(run: Path) -> tuple[object, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]], list]:
    """(samples, test rows (n,), {head: (probabilities (n, 12), thresholds (n, 12))}, folds)."""
    _, samples, folds, preds = api.run_predictions(run)
    idx = np.concatenate([p["test_idx"] for p in preds])
    out = {}
    for h in ("gat", "afe"):
        if all(f"au_prob_{h}" in p for p in preds):
            prob = np.concatenate([p[f"au_prob_{h}"] for p in preds])
            thr = np.concatenate(
                [np.broadcast_to(p.get(f"au_threshold_{h}", np.full(12, 0.5)), (len(p["test_idx"]), 12)) for p in preds]
            )
            out[h] = (prob, thr)
    return samples, idx, out, folds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished runs of one recipe (two or more)")
    ap.add_argument("--au-replicates", type=int, default=1000)
    args = ap.parse_args(argv)
    if len(args.runs) < 2:
        sys.exit("au_seed_ensemble: give at least two runs")
    got = [head_outputs(r) for r in args.runs]
    samples, idx, _, folds = got[0]
    order = np.argsort(idx)
    for run, (_, other, _, _) in zip(args.runs, got):
        if not np.array_equal(np.sort(other), idx[order]):
            sys.exit(f"{run}: its test samples differ from {args.runs[0]}'s (not the same folds)")
    aligned = []  # every run's outputs in the first run's sample order
    for _, other, heads, _ in got:
        pos = {int(r): k for k, r in enumerate(other)}
        take = np.array([pos[int(r)] for r in idx])
        aligned.append({h: (p[take], t[take]) for h, (p, t) in heads.items()})
    detectors = {}
    for h in aligned[0]:
        name = loso_report.head_name(h, False)
        for run, a in zip(args.runs, aligned):
            detectors[f"{name}, {run.name}"] = (a[h][0], (a[h][0] >= a[h][1]).astype(np.int8))
        mean_p = np.mean([a[h][0] for a in aligned], axis=0)
        mean_t = np.mean([a[h][1] for a in aligned], axis=0)
        detectors[f"{name}, ensemble of {len(aligned)}"] = (mean_p, (mean_p >= mean_t).astype(np.int8))
    detectors[loso_report.PROBE] = (loso_report.probe_predictions(samples, folds, idx), None)
    print("\n".join(loso_report.au_lines(samples, idx, detectors, args.au_replicates)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
