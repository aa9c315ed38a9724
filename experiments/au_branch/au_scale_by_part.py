"""Where the heads' pooled-vs-within-subject AUC gap sits, and how noisy a per-model
calibration on about ten held-out subjects is (issue 26).

    python experiments/au_branch/au_scale_by_part.py experiments/loso_runs/megc2019_loso_au_shared

Reads only stored predictions (a run with ``pretrain.subject_folds`` ≥ 2). Prints:

1. For the final heads of the run's LOSO folds, grouped by the stage-1 part that holds
   each test subject (the ~10 fold models that started from the same stage-1 model):
   pooled and within-subject mean ROC AUC per part, and over all parts. A gap that
   appears only when parts are pooled comes from the stage-1 models' scales, not from
   the fold-to-fold training noise within a part.
2. The same for each shared stage-1 model on its own held-out part.
3. A calibration check on the stage-1 models' held-out predictions: each subject's
   scores mapped by a per-AU balanced Platt map (``training.au_calibration``) fitted on
   the other subjects of its part (the held-out-subject calibration the recipe uses),
   for ridge 1, 10, 100; and the same maps fitted on the whole part including the
   subject itself, which a real run cannot do (the best a per-part map could reach).
4. With ``--workdir`` (the run's directory with its stage-1 checkpoints): the stage-1
   models' head-B logits standardised per AU by their mean and standard deviation over
   the SMIC samples (unlabelled for AUs, never seen by a stage-1 model): an alignment
   of the parts' scales that needs no label.

5. Also with ``--workdir``: the run's *final* head-B logits, each fold's standardised by
   the SMIC mean and standard deviation of the stage-1 model it started from (fixed
   before stage 2 has seen any SMIC sample, so no fold model's own training colours the
   reference). One affine map per AU and stage-1 part: it leaves every decision made
   with the recipe's thresholds (transported to the same units) unchanged, and the
   pooled AUC inside a part too; only the parts' scales are aligned. For a run stored
   with calibrated heads the uncalibrated probabilities (``au_prob_uncal_gat``) are used.
   (Rule written down before it was first computed, issue 26.)

    python experiments/au_branch/au_scale_by_part.py experiments/loso_runs/megc2019_loso_au_shared \
        --workdir runs/megc2019_loso_au_shared
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fedpsyau_jax import api
from fedpsyau_jax.training.au_alignment import reference_stats, standardise
from fedpsyau_jax.training.au_calibration import apply_platt, fit_platt, logit
from fedpsyau_jax.training.metrics import au_detection_scores, au_within_subject_auc


def scores(samples, rows, prob, subj):
    t, m = samples.au[rows], samples.au_mask[rows]
    k = m.sum(1) > 0
    return (au_detection_scores(t[k], m[k], prob[k])["mean_auc"],
            au_within_subject_auc(t[k], m[k], prob[k], subj[rows][k])["mean_auc"],
            au_detection_scores(t[k], m[k], prob[k])["mean_f1"])


def reference_standardised(samples, workdir: Path):
    """(rows, raw logits, SMIC-standardised logits, {part: (2, 12) mean/std}) of head B of every
    shared stage-1 model on its held-out part, from the checkpoints in ``workdir`` (loaded
    and applied as any exported model: ``api.load_model`` / ``api.model_probabilities``);
    mean and std (12,) are over the SMIC samples."""
    from fedpsyau_jax.training.fold_training import MODEL_CHECKPOINT

    ref = np.flatnonzero(np.asarray(samples.dataset).astype(str) == "smic")
    inputs = ("flow128", "flow28", "landmarks")

    def logits(model, v, meta, rows):
        return logit(api.model_probabilities(model, v, meta, {k: getattr(samples, k)[rows] for k in inputs})[1])

    out_rows, raw, std, stats = [], [], [], {}
    for d in sorted((workdir / "au_pretrain" / "folds").glob("*_part*")):
        rows = np.load(d / "predictions.npz")["test_idx"]
        model, v, meta = api.load_model(d / MODEL_CHECKPOINT)
        lr, lt = logits(model, v, meta, ref), logits(model, v, meta, rows)
        stats[d.name] = reference_stats(lr)
        out_rows.append(rows), raw.append(lt), std.append(standardise(lt, stats[d.name]))
    return np.concatenate(out_rows), np.concatenate(raw), np.concatenate(std), stats


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="finished run (stored predictions) with pretrain.subject_folds >= 2")
    ap.add_argument("--workdir", type=Path, help="the run's directory with its stage-1 checkpoints (section 4)")
    args = ap.parse_args(argv)
    run = args.run
    cfg, samples, folds, preds = api.run_predictions(run)
    subj = np.asarray(samples.subject).astype(str)
    parts = {p.parent.name: np.load(p) for p in sorted((run / "au_pretrain" / "folds").glob("*_part*/predictions.npz"))}
    if not parts:
        sys.exit(f"{run}: no shared stage-1 parts (au_pretrain/folds/*_part*/predictions.npz)")
    part_of = {s: name for name, z in parts.items() for s in np.unique(subj[z["test_idx"]])}
    idx = np.concatenate([p["test_idx"] for p in preds])
    keep = np.array([s in part_of for s in subj[idx]])
    idx = idx[keep]
    ps = np.array([part_of[s] for s in subj[idx]])
    print(f"1. final heads by stage-1 part (pooled AUC / within-subject AUC); {run}")
    for h in ("gat", "afe"):
        prob = np.concatenate([p[f"au_prob_{h}"] for p in preds])[keep]
        cells = [f"{n.split('_')[-1]} {a:.3f}/{w:.3f}" for n in parts for a, w, _ in [scores(samples, idx[ps == n], prob[ps == n], subj)]]
        a, w, _ = scores(samples, idx, prob, subj)
        print(f"  head {h}: " + " | ".join(cells) + f" || all parts {a:.3f}/{w:.3f}")
    print("2. stage-1 models on their held-out parts (pooled / within)")
    for h in ("gat", "afe"):
        cells, rows, probs = [], [], []
        for n, z in parts.items():
            a, w, _ = scores(samples, z["test_idx"], z[f"au_prob_{h}"], subj)
            cells.append(f"{n.split('_')[-1]} {a:.3f}/{w:.3f}")
            rows.append(z["test_idx"]), probs.append(z[f"au_prob_{h}"])
        a, w, _ = scores(samples, np.concatenate(rows), np.concatenate(probs), subj)
        print(f"  head {h}: " + " | ".join(cells) + f" || all parts {a:.3f}/{w:.3f}")
    print("3. stage-1 scores calibrated per part (pooled AUC / F1 at 0.5 over all parts)")
    for h in ("gat", "afe"):
        rows = np.concatenate([z["test_idx"] for z in parts.values()])
        raw = np.concatenate([z[f"au_prob_{h}"] for z in parts.values()])
        a, _, f = scores(samples, rows, raw, subj)
        line = [f"raw {a:.3f}/{f:.3f}"]
        for ridge in (1.0, 10.0, 100.0):
            for mode in ("held-out", "whole part"):
                out_rows, out_p = [], []
                for z in parts.values():
                    r, p = z["test_idx"], z[f"au_prob_{h}"]
                    if mode == "whole part":
                        ab = fit_platt(logit(p), samples.au[r], samples.au_mask[r], ridge=ridge)
                        out_rows.append(r), out_p.append(apply_platt(p, ab))
                        continue
                    for s in np.unique(subj[r]):
                        te = subj[r] == s
                        ab = fit_platt(logit(p[~te]), samples.au[r[~te]], samples.au_mask[r[~te]], ridge=ridge)
                        out_rows.append(r[te]), out_p.append(apply_platt(p[te], ab))
                a, _, f = scores(samples, np.concatenate(out_rows), np.concatenate(out_p), subj)
                line.append(f"ridge {ridge:g} {mode} {a:.3f}/{f:.3f}")
        print(f"  head {h}: " + " | ".join(line))
    if args.workdir is not None:
        rows, raw, std, stats = reference_standardised(samples, args.workdir)
        a, w, _ = scores(samples, rows, raw, subj)
        a2, w2, _ = scores(samples, rows, std, subj)
        print("4. stage-1 head B on the held-out parts, logits raw / standardised on the SMIC samples "
              f"(pooled / within): {a:.3f}/{w:.3f} -> {a2:.3f}/{w2:.3f}")
        key = "au_prob_uncal_gat" if "au_prob_uncal_gat" in preds[0] else "au_prob_gat"
        z = logit(np.concatenate([p[key] for p in preds])[keep])
        zs = np.empty_like(z)
        for n in parts:
            zs[ps == n] = standardise(z[ps == n], stats[n])
        a, w, _ = scores(samples, idx, z, subj)
        a2, w2, _ = scores(samples, idx, zs, subj)
        print(f"5. final head B ({key}), logits raw / standardised by their stage-1 model's SMIC statistics "
              f"(pooled / within): {a:.3f}/{w:.3f} -> {a2:.3f}/{w2:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
