"""Markdown report of finished training runs (pooled test predictions of every fold).

    python scripts/loso_report.py runs/megc2019_loso [runs/megc2019_loso_flow ...]
        [--paired-vs runs/megc2019_loso_flow]

For each run: pooled UF1/UAR with 95 % subject-bootstrap intervals, per-dataset
scores, the confusion matrix, per-AU detection F1 (threshold 0.5) and ROC AUC of both
AU heads on the AU-labelled test samples (full model), and the training time; all
recomputed from the folds' stored predictions. ``--paired-vs B`` adds, for every other run A, the paired subject
bootstrap interval of A − B (same samples, same resampled subjects).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fedpsyau_jax import api
from fedpsyau_jax.network.au_groups import AU_ORDER
from fedpsyau_jax.training.metrics import au_detection_scores, subject_bootstrap
from fedpsyau_jax.training.run_logging import read_jsonl


def pooled(run: Path):
    """(cfg, samples, test_idx (n,), preds (n,), AU probabilities per head) of a run."""
    cfg, samples, _, preds = api.run_predictions(run)
    idx = np.concatenate([p["test_idx"] for p in preds])
    au = {h: np.concatenate([p[k] for p in preds]) for h, k in (("gat", "au_prob_gat"), ("afe", "au_prob_afe"))
          if all(k in p for p in preds)}
    return cfg, samples, idx, np.concatenate([p["pred"] for p in preds]), au


def fmt_ci(s, k):
    lo, hi = s[f"{k}_ci95"]
    return f"{s[k]:.4f} [{lo:.4f}, {hi:.4f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--paired-vs", type=Path)
    ap.add_argument("--replicates", type=int, default=2000)
    args = ap.parse_args(argv)
    out = []
    got = {}
    for run in args.runs + ([args.paired_vs] if args.paired_vs and args.paired_vs not in args.runs else []):
        got[run] = pooled(run)
    for run in args.runs:
        cfg, samples, idx, preds, au_probs = got[run]
        summ = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
        b = subject_bootstrap(samples.label[idx], preds, samples.subject[idx], samples.num_classes,
                              n=args.replicates)
        out.append(f"### {run.name}\n")
        out.append(f"- pooled UF1 {fmt_ci(b, 'uf1')}, UAR {fmt_ci(b, 'uar')} "
                   f"(95 % intervals: {b['replicates']} bootstrap resamples of the {b['subjects']} subjects)")
        for d, s in summ.get("per_dataset", {}).items():
            out.append(f"- {d}: UF1 {s['uf1']:.4f}, UAR {s['uar']:.4f} ({s['num_samples']} samples)")
        if "pooled" in summ:
            cm = summ["pooled"]["confusion"]
            names = summ.get("class_names", [str(i) for i in range(len(cm))])
            out.append("\n| true \\ predicted | " + " | ".join(names) + " |")
            out.append("|---" * (len(names) + 1) + "|")
            out += [f"| {n} | " + " | ".join(str(v) for v in row) + " |" for n, row in zip(names, cm)]
        au_key = lambda k: int(k.removeprefix("AU"))
        known = samples.au_mask[idx].sum(1) > 0
        for head, prob in au_probs.items():
            s = au_detection_scores(samples.au[idx][known], samples.au_mask[idx][known], prob[known],
                                    au_names=[f"AU{a}" for a in AU_ORDER])
            names = sorted((k for k in s["f1_per_au"] if k not in s["excluded_aus"]), key=au_key)
            per = ", ".join(f"{k} {s['f1_per_au'][k]:.2f}/{s['auc_per_au'][k]:.2f}" for k in names)
            out.append(f"\n- AU detection, head {head.upper()} ({s['num_samples']} AU-labelled test samples): "
                       f"mean F1 (threshold 0.5) {s['mean_f1']:.4f}, mean ROC AUC {s['mean_auc']:.4f}; "
                       f"per AU F1/AUC: {per}")
        epochs = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("event") == "epoch"]
        if epochs:
            out.append(f"- training time {sum(r['seconds'] for r in epochs) / 60:.1f} min (sum of "
                       f"{len(epochs)} fold-epochs; a resumed run's calls added up)")
        out.append("")
        if args.paired_vs and run != args.paired_vs:
            _, sb, idx_b, preds_b, _ = got[args.paired_vs]
            order = {int(i): k for k, i in enumerate(idx_b)}
            pb = preds_b[[order[int(i)] for i in idx]]
            d = subject_bootstrap(samples.label[idx], preds, samples.subject[idx], samples.num_classes,
                                  n=args.replicates, y_pred_b=pb)
            out.append(f"- paired {run.name} − {args.paired_vs.name}: ΔUF1 {fmt_ci(d, 'uf1')}, "
                       f"ΔUAR {fmt_ci(d, 'uar')}\n")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
