"""Stage 1 (AU pre-training) of a config's protocol alone, and how its shared models'
scales line up (issue 26): a few minutes instead of a full LOSO.

    python experiments/au_branch/au_stage1_only.py --config=configs/megc2019_composite_loso.py \\
        --workdir=runs/stage1_shared_rng --config.train.fold_rng=shared

Runs exactly the stage 1 that ``fedpsyau train`` would run with the same config (same
plan, settings and fingerprint, resumable, outputs in ``WORKDIR/au_pretrain``; a later
``fedpsyau train`` in the same workdir reuses it), then prints, for a config with
``pretrain.subject_folds`` ≥ 2, each shared stage-1 model's pooled / within-subject mean
AUC on its held-out part and over all parts (``au_scale_by_part.py``, section 2). The
held-out parts are outer test subjects: use it to compare stage-1 designs, not as a
test result.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from fedpsyau_jax import api
    from fedpsyau_jax.config_loading import load_config
    from fedpsyau_jax.training.metrics import au_detection_scores, au_within_subject_auc

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--workdir", required=True, type=Path)
    args, overrides = ap.parse_known_args(argv)
    cfg = load_config(args.config, [o.removeprefix("--config.") for o in overrides])
    plan = api.pretrain_au(cfg, args.workdir)
    samples = api.load_samples(cfg)
    subj = np.asarray(samples.subject).astype(str)
    parts = sorted((args.workdir / "au_pretrain" / "folds").glob("*_part*/predictions.npz"))
    for h in ("gat", "afe"):
        cells, rows, probs = [], [], []
        for p in parts:
            z = np.load(p)
            r, pr = z["test_idx"], z[f"au_prob_{h}"]
            t, m = samples.au[r], samples.au_mask[r]
            cells.append(f"{p.parent.name.split('_')[-1]} {au_detection_scores(t, m, pr)['mean_auc']:.3f}/"
                         f"{au_within_subject_auc(t, m, pr, subj[r])['mean_auc']:.3f}")
            rows.append(r), probs.append(pr)
        if rows:
            r, pr = np.concatenate(rows), np.concatenate(probs)
            t, m = samples.au[r], samples.au_mask[r]
            print(f"head {h} (pooled / within): " + " | ".join(cells) + f" || all parts "
                  f"{au_detection_scores(t, m, pr)['mean_auc']:.3f}/{au_within_subject_auc(t, m, pr, subj[r])['mean_auc']:.3f}")
    print(f"{len(plan.folds)} stage-1 models in {args.workdir / 'au_pretrain'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
