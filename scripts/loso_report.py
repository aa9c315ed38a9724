"""Markdown report of finished training runs (pooled test predictions of every fold).

    python scripts/loso_report.py runs/megc2019_loso [runs/megc2019_loso_flow ...]
        [--paired-vs runs/megc2019_loso_flow]

For each run: pooled UF1/UAR with 95 % subject-bootstrap intervals, per-dataset
scores, the confusion matrix, AU detection on the AU-labelled test samples, and the
training time; all recomputed from the folds' stored predictions.

AU detection (per AU F1 and ROC AUC, their means with 95 % subject-bootstrap
intervals) of both AU heads (full model) and of the linear probe
(``fedpsyau_jax.training.au_probe``: class-balanced logistic regression on the
standardised flow pixels), which is trained here on the training samples of every
fold of the run and scored on the same held-out samples: the floor the heads must
clear. The heads' decisions are the stored ``au_pred_*`` (per-AU thresholds chosen on
inner validation subjects) where a run has them, else probability ≥ 0.5; the probe
thresholds at 0.5 (its classes are balanced in the loss). ``--paired-vs B`` adds, for every other run A, the paired subject
bootstrap interval of A − B (same samples, same resampled subjects). Every head is
also compared with the probe by a paired subject bootstrap of the mean AUC and F1.
Beside the pooled AUC the table gives the within-subject AUC
(``metrics.au_within_subject_auc``: pairs of one subject only, the part of the pooled
AUC that does not depend on how the 52 fold models' score scales agree) and every
detector's F1 at the probe's threshold 0.5. A second table splits the same figures by
source dataset (CASME II, SAMM): the heads and the probe can win on different ones.

A run with shared stage-1 models whose ``au_pretrain/reference_stats.json`` exists
(written by ``fedpsyau train``; for older runs by ``benchmarks/au_combined_score.py
--workdir``) also gets each head aligned by that label-free reference and the combined
score of both heads (``fedpsyau_jax.training.au_alignment``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fedpsyau_jax import api
from fedpsyau_jax.network.au_groups import AU_ORDER
from fedpsyau_jax.training.au_alignment import aligned_detectors
from fedpsyau_jax.training.metrics import (au_detection_scores, au_subject_bootstrap, au_within_subject_auc,
                                           subject_bootstrap)
from fedpsyau_jax.training.run_logging import read_jsonl


def pooled(run: Path):
    """(cfg, samples, test_idx (n,), preds (n,), AU outputs per head, folds) of a run.

    AU outputs: {head: (probabilities (n, 12), decisions (n, 12) or None)}; a run whose
    heads were calibrated (``pretrain.au_calibration=platt``) also gives
    "<head>_uncal": the heads before calibration, decided at 0.5."""
    cfg, samples, folds, preds = api.run_predictions(run)
    idx = np.concatenate([p["test_idx"] for p in preds])
    au = {}
    for h in ("gat", "afe"):
        if all(f"au_prob_{h}" in p for p in preds):
            dec = (np.concatenate([p[f"au_pred_{h}"] for p in preds])
                   if all(f"au_pred_{h}" in p for p in preds) else None)
            au[h] = (np.concatenate([p[f"au_prob_{h}"] for p in preds]), dec)
        if all(f"au_prob_uncal_{h}" in p for p in preds):
            au[f"{h}_uncal"] = (np.concatenate([p[f"au_prob_uncal_{h}"] for p in preds]), None)
    au.update(aligned_detectors(run, samples.subject, preds))
    return cfg, samples, idx, np.concatenate([p["pred"] for p in preds]), au, folds


def probe_predictions(samples, folds, idx) -> np.ndarray:
    """Held-out AU probabilities (len(idx), 12) of the linear probe, fitted per fold on
    that fold's training samples (only folds with AU-labelled test samples); cached
    under ``$FEDPSYAU_CACHE/au_probe`` (keyed by the inputs and the folds)."""
    from data_pipelines.cache_dirs import default_cache_dir
    from fedpsyau_jax.training.au_probe import probe_predictions as fit

    return fit(samples.flow28, samples.au, samples.au_mask, folds, idx, cache_dir=default_cache_dir() / "au_probe")


def au_lines(samples, idx, detectors: dict, replicates: int) -> list[str]:
    """Markdown table of AU detection for {name: (prob, decisions or None)} on the
    AU-labelled samples among ``idx``."""
    known = samples.au_mask[idx].sum(1) > 0
    if not known.any():
        return []
    au_t, au_m, subj = samples.au[idx][known], samples.au_mask[idx][known], samples.subject[idx][known]
    names = [f"AU{a}" for a in AU_ORDER]
    rows = []
    for name, (prob, dec) in detectors.items():
        d = (prob[known] >= 0.5) if dec is None else dec[known] > 0.5
        per = auc = au_detection_scores(au_t, au_m, prob[known], au_names=names, decisions=d)
        b = au_subject_bootstrap(au_t, au_m, prob[known], subj, au_pred=d, n=replicates)
        within = au_within_subject_auc(au_t, au_m, prob[known], subj)["mean_auc"]
        f1_half = au_detection_scores(au_t, au_m, prob[known])["mean_f1"]
        thr = "0.5" if dec is None else ("0.5, calibrated" if "calibrated" in name else "inner-validation thresholds")
        rows.append((name, per, auc, b, thr, within, f1_half))
    out = [f"\nAU detection on {int(known.sum())} AU-labelled test samples ({len(np.unique(subj))} subjects; "
           f"95 % intervals: {replicates} subject resamples):\n",
           "| detector | threshold | mean ROC AUC | within-subject AUC | mean F1 | F1 at 0.5 | " + " | ".join(names) + " |",
           "|---" * (6 + len(names)) + "|"]
    for name, per, auc, b, thr, within, f1_half in rows:
        cells = [f"{per['f1_per_au'][n]:.2f} / {auc['auc_per_au'][n]:.2f}" for n in names]
        out.append(f"| {name} | {thr} | {b['mean_auc']:.3f} [{b['mean_auc_ci95'][0]:.3f}, {b['mean_auc_ci95'][1]:.3f}] | "
                   f"{within:.3f} | {b['mean_f1']:.3f} [{b['mean_f1_ci95'][0]:.3f}, {b['mean_f1_ci95'][1]:.3f}] | "
                   f"{f1_half:.3f} | " + " | ".join(cells) + " |")
    out.append("\n(per AU: F1 / ROC AUC. Within-subject AUC: only pairs of samples of the same subject, so "
               "score-scale differences between the folds' models do not count; F1 at 0.5: every detector "
               "at the probe's threshold.)")
    datasets = np.asarray(samples.dataset)[idx][known].astype(str)
    if len(np.unique(datasets)) > 1:
        out += ["\nBy source dataset (pooled AUC / within-subject AUC / mean F1 / F1 at 0.5):\n",
                "| detector | " + " | ".join(np.unique(datasets)) + " |", "|---" * (1 + len(np.unique(datasets))) + "|"]
        for name, (prob, dec) in detectors.items():
            cells = []
            for ds in np.unique(datasets):
                k = datasets == ds
                d = (prob[known][k] >= 0.5) if dec is None else dec[known][k] > 0.5
                sc = au_detection_scores(au_t[k], au_m[k], prob[known][k], decisions=d)
                w = au_within_subject_auc(au_t[k], au_m[k], prob[known][k], subj[k])["mean_auc"]
                half = au_detection_scores(au_t[k], au_m[k], prob[known][k])["mean_f1"]
                cells.append(f"{sc['mean_auc']:.3f} / {w:.3f} / {sc['mean_f1']:.3f} / {half:.3f}")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
    probe = detectors.get(PROBE)
    if probe is not None:
        for name, (prob, dec) in detectors.items():
            if name == PROBE:
                continue
            d = (prob[known] >= 0.5) if dec is None else dec[known] > 0.5
            pb = au_subject_bootstrap(au_t, au_m, prob[known], subj, au_pred=d, n=replicates,
                                      au_prob_b=probe[0][known])
            out.append(f"- paired {name} − probe: ΔAUC {pb['mean_auc']:+.3f} [{pb['mean_auc_ci95'][0]:+.3f}, "
                       f"{pb['mean_auc_ci95'][1]:+.3f}], ΔF1 {pb['mean_f1']:+.3f} [{pb['mean_f1_ci95'][0]:+.3f}, "
                       f"{pb['mean_f1_ci95'][1]:+.3f}]")
    return out


PROBE = "linear probe (flow pixels)"


def head_name(h: str, calibrated: bool) -> str:
    base = f"head {'B (GAT)' if h.startswith('gat') else 'A (AFE)'}"
    if h.endswith("_uncal"):
        return base + ", before calibration"
    return base + (", calibrated" if calibrated else "")


def fmt_ci(s, k):
    lo, hi = s[f"{k}_ci95"]
    return f"{s[k]:.4f} [{lo:.4f}, {hi:.4f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--paired-vs", type=Path)
    ap.add_argument("--replicates", type=int, default=2000)
    ap.add_argument("--au-replicates", type=int, default=1000)
    ap.add_argument("--no-probe", action="store_true", help="leave the linear AU probe out")
    args = ap.parse_args(argv)
    out = []
    got = {}
    for run in args.runs + ([args.paired_vs] if args.paired_vs and args.paired_vs not in args.runs else []):
        got[run] = pooled(run)
    for run in args.runs:
        cfg, samples, idx, preds, au_probs, folds = got[run]
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
        calibrated = any(h.endswith("_uncal") for h in au_probs)
        detectors = {(head_name(h, calibrated) if h.split("_")[0] in ("gat", "afe") else h): v
                     for h, v in au_probs.items()}
        if not args.no_probe:
            detectors[PROBE] = (probe_predictions(samples, folds, idx), None)
        out += au_lines(samples, idx, detectors, args.au_replicates)
        epochs = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("event") == "epoch"]
        if epochs:
            out.append(f"- training time {sum(r['seconds'] for r in epochs) / 60:.1f} min (sum of "
                       f"{len(epochs)} fold-epochs; a resumed run's calls added up)")
        out.append("")
        if args.paired_vs and run != args.paired_vs:
            _, sb, idx_b, preds_b, _, _ = got[args.paired_vs]
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
