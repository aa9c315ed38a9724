"""What a run reports: its summary (written when training ends: ``summarise_run``,
``format_summary``, ``learning_curves``) and the Markdown report of finished runs
(``runs_markdown``, the ``fedpsyau report`` verb), recomputed from the pooled test
predictions of every fold.

    fedpsyau report runs/megc2019_loso [runs/megc2019_loso_flow ...] [--paired-vs runs/megc2019_loso_flow]

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
(written by ``fedpsyau train``; for older runs by ``experiments/au_branch/au_combined_score.py
--workdir``) also gets each head aligned by that label-free reference and the combined
score of both heads (``fedpsyau_jax.training.au_alignment``).
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_collections
import numpy as np

from fedpsyau_jax.core.atomic_files import write_json_atomic
from fedpsyau_jax.core.errors import InputFileError
from fedpsyau_jax.core.au_groups import AU_ORDER
from fedpsyau_jax.core.sample_arrays import MESamples
from fedpsyau_jax.network.baselines import display_name
from fedpsyau_jax.training import protocols
from fedpsyau_jax.training.au_alignment import aligned_detectors
from fedpsyau_jax.training.exported_model import FINAL_MODEL
from fedpsyau_jax.training.fold_training import fold_dir, load_fold_predictions
from fedpsyau_jax.training.metrics import (
    au_detection_scores,
    au_subject_bootstrap,
    au_within_subject_auc,
    subject_bootstrap,
)
from fedpsyau_jax.training.run_inputs import load_samples
from fedpsyau_jax.training.run_logging import read_jsonl


# ------------------------------------------------------------------ a run's summary
def summarise_run(workdir: Path, samples: MESamples, eval_folds, results, cfg, wall: float) -> dict:
    """The run's summary (pooled and per-dataset/per-fold scores, subject-bootstrap
    intervals, AU detection of both heads, plots, file locations, wall time), written to
    ``workdir/summary.json``."""
    from fedpsyau_jax.training.plots import plot_confusion, plot_learning_curves

    summary = {
        "workdir": str(workdir),
        "dataset": cfg.data.name,
        "protocol": cfg.protocol.kind,
        "folds": len(eval_folds),
        "samples": len(samples),
        "epochs": int(cfg.train.epochs),
        "wall_seconds": round(wall, 1),
    }
    if eval_folds:
        idx = np.concatenate([results[f.index]["test_idx"] for f in eval_folds])
        preds = np.concatenate([results[f.index]["pred"] for f in eval_folds])
        fold_of = np.concatenate([np.full(len(f.test_idx), k) for k, f in enumerate(eval_folds)])
        report = protocols.pooled_report(
            samples.label[idx], preds, fold_of, samples.dataset[idx], [f.name for f in eval_folds], samples.class_names
        )
        summary.update(report)
        summary["pooled_bootstrap"] = subject_bootstrap(
            samples.label[idx], preds, samples.subject[idx], samples.num_classes
        )
        if all("au_prob_gat" in results[f.index] for f in eval_folds):
            known = samples.au_mask[idx].sum(1) > 0  # AU-labelled test samples only
            pooled = lambda key: np.concatenate([results[f.index][key] for f in eval_folds])[known]
            # F1 at the per-AU thresholds chosen on inner-validation subjects where the run
            # has them (AU pre-training), else at 0.5.
            tuned = lambda head: all(f"au_pred_{head}" in results[f.index] for f in eval_folds)
            summary["au_detection"] = {
                head: au_detection_scores(
                    samples.au[idx][known],
                    samples.au_mask[idx][known],
                    pooled(f"au_prob_{head}"),
                    au_names=[f"AU{a}" for a in AU_ORDER],
                    decisions=pooled(f"au_pred_{head}") if tuned(head) else None,
                )
                for head in ("gat", "afe")
            }
        summary["confusion_png"] = str(
            plot_confusion(
                report["pooled"]["confusion"],
                samples.class_names,
                workdir / "confusion.png",
                f"{cfg.data.name} {cfg.protocol.kind}: UF1 {report['pooled']['uf1']:.3f} "
                f"UAR {report['pooled']['uar']:.3f}",
            )
        )
    curves = learning_curves(read_jsonl(workdir / "metrics.jsonl"), int(cfg.train.epochs))
    if curves:
        summary["learning_curves_png"] = str(
            plot_learning_curves(curves, workdir / "learning_curves.png", f"{cfg.data.name}: training losses per fold")
        )
    summary["metrics_jsonl"] = str(workdir / "metrics.jsonl")
    if (workdir / FINAL_MODEL).is_dir():
        summary["final_model"] = str(workdir / FINAL_MODEL)
    write_json_atomic(workdir / "summary.json", summary)
    return summary


def learning_curves(records: list[dict], epochs: int) -> dict[str, np.ndarray]:
    """(F, E) arrays of per-fold training losses from the JSONL "epoch" records
    (the last record wins for a fold-epoch, e.g. after a resume)."""
    rows = {}
    for r in records:
        if r.get("event") == "epoch":
            rows[(r["fold_index"], r["epoch"])] = r
    if not rows:
        return {}
    folds = sorted({f for f, _ in rows})
    fpos = {f: i for i, f in enumerate(folds)}
    out = {}
    for m in ("loss", "ce", "bce_afe", "bce_gat"):
        a = np.full((len(folds), epochs), np.nan)
        for (f, e), r in rows.items():
            if m in r and 1 <= e <= epochs:
                a[fpos[f], e - 1] = r[m]
        if not np.all(np.isnan(a)) and not (m.startswith("bce") and np.nanmax(a) == 0):
            out[m] = a
    return out


def format_summary(summary: dict) -> str:
    """The summary as the few lines ``fedpsyau train`` and ``evaluate`` print."""
    lines = [
        (
            f"== {summary['dataset']} / {summary['protocol']}: {summary['folds']} folds, "
            f"{summary['samples']} samples, {summary['epochs']} epochs, {summary['wall_seconds']:.0f} s"
        )
    ]
    if "pooled" in summary:
        p = summary["pooled"]
        lines.append(
            f"pooled UF1 {p['uf1']:.4f}  UAR {p['uar']:.4f}  accuracy {p['accuracy']:.4f}"
            + (f"  (absent classes {p['absent_classes']})" if p["absent_classes"] else "")
        )
        for d, sc in summary.get("per_dataset", {}).items():
            if len(summary.get("per_dataset", {})) > 1:
                lines.append(f"  {d:<10s} n={sc['num_samples']:4d}  UF1 {sc['uf1']:.4f}  UAR {sc['uar']:.4f}")
        lines.append(f"confusion (rows true {'/'.join(summary['class_names'])}): {p['confusion']}")
    for key, label in (
        ("confusion_png", "confusion plot"),
        ("learning_curves_png", "learning curves"),
        ("metrics_jsonl", "metrics"),
        ("final_model", "final model (all data)"),
    ):
        if key in summary:
            lines.append(f"{label}: {summary[key]}")
    lines.append(f"summary: {Path(summary['workdir']) / 'summary.json'}")
    return "\n".join(lines)


# ------------------------------------------------------------------ report of finished runs
def run_predictions(workdir) -> tuple:
    """(cfg, samples, folds, predictions) of a run directory's finished test folds:
    the resolved config, the dataset, the folds with test samples and each fold's
    stored predictions (``predictions.npz`` dict). A fold without predictions is an
    ``InputFileError`` naming it."""
    workdir = Path(workdir)
    cfg = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text(encoding="utf-8")))
    samples = load_samples(cfg)
    folds = [f for f in protocols.folds_from_config(cfg, samples) if len(f.test_idx)]
    preds = [load_fold_predictions(fold_dir(workdir, f) / "predictions.npz") for f in folds]
    missing = [f.name for f, p in zip(folds, preds) if p is None]
    if missing:
        raise InputFileError(f"{workdir}: {len(missing)} fold(s) unfinished (e.g. {missing[0]})")
    return cfg, samples, folds, preds


def pooled(run: Path):
    """(cfg, samples, test_idx (n,), preds (n,), AU outputs per head, folds) of a run.

    AU outputs: {head: (probabilities (n, 12), decisions (n, 12) or None)}; a run whose
    heads were calibrated (``pretrain.au_calibration=platt``) also gives
    "<head>_uncal": the heads before calibration, decided at 0.5."""
    cfg, samples, folds, preds = run_predictions(run)
    idx = np.concatenate([p["test_idx"] for p in preds])
    au = {}
    for h in ("gat", "afe"):
        if all(f"au_prob_{h}" in p for p in preds):
            dec = (
                np.concatenate([p[f"au_pred_{h}"] for p in preds]) if all(f"au_pred_{h}" in p for p in preds) else None
            )
            au[h] = (np.concatenate([p[f"au_prob_{h}"] for p in preds]), dec)
        if all(f"au_prob_uncal_{h}" in p for p in preds):
            au[f"{h}_uncal"] = (np.concatenate([p[f"au_prob_uncal_{h}"] for p in preds]), None)
    au.update(aligned_detectors(run, samples.subject, preds))
    return cfg, samples, idx, np.concatenate([p["pred"] for p in preds]), au, folds


def probe_predictions(samples, folds, idx, c: float | str = "inner") -> np.ndarray:
    """Held-out AU probabilities (len(idx), 12) of the linear probe, fitted per fold on
    that fold's training samples (only folds with AU-labelled test samples), its C
    chosen on the fold's inner validation subjects (``au_probe.choose_c``) or fixed;
    cached under ``$FEDPSYAU_CACHE/au_probe`` (keyed by the inputs and the folds)."""
    from data_pipelines.cache_dirs import default_cache_dir
    from fedpsyau_jax.training.au_probe import probe_predictions as fit

    return fit(
        samples.flow28,
        samples.au,
        samples.au_mask,
        folds,
        idx,
        cache_dir=default_cache_dir() / "au_probe",
        c=c,
        subjects=samples.subject,
        datasets=samples.dataset,
    )


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
    out = [
        (
            f"\nAU detection on {int(known.sum())} AU-labelled test samples ({len(np.unique(subj))} subjects; "
            f"95 % intervals: {replicates} subject resamples):\n"
        ),
        "| detector | threshold | mean ROC AUC | within-subject AUC | mean F1 | F1 at 0.5 | "
        + " | ".join(names)
        + " |",
        "|---" * (6 + len(names)) + "|",
    ]
    for name, per, auc, b, thr, within, f1_half in rows:
        cells = [f"{per['f1_per_au'][n]:.2f} / {auc['auc_per_au'][n]:.2f}" for n in names]
        out.append(
            f"| {name} | {thr} | {b['mean_auc']:.3f} [{b['mean_auc_ci95'][0]:.3f}, {b['mean_auc_ci95'][1]:.3f}] | "
            f"{within:.3f} | {b['mean_f1']:.3f} [{b['mean_f1_ci95'][0]:.3f}, {b['mean_f1_ci95'][1]:.3f}] | "
            f"{f1_half:.3f} | " + " | ".join(cells) + " |"
        )
    out.append(
        "\n(per AU: F1 / ROC AUC. Within-subject AUC: only pairs of samples of the same subject, so "
        "score-scale differences between the folds' models do not count; F1 at 0.5: every detector "
        "at the probe's threshold.)"
    )
    datasets = np.asarray(samples.dataset)[idx][known].astype(str)
    if len(np.unique(datasets)) > 1:
        out += [
            "\nBy source dataset (pooled AUC / within-subject AUC / mean F1 / F1 at 0.5):\n",
            "| detector | " + " | ".join(np.unique(datasets)) + " |",
            "|---" * (1 + len(np.unique(datasets))) + "|",
        ]
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
            pb = au_subject_bootstrap(au_t, au_m, prob[known], subj, au_pred=d, n=replicates, au_prob_b=probe[0][known])
            out.append(
                f"- paired {name} − probe: ΔAUC {pb['mean_auc']:+.3f} [{pb['mean_auc_ci95'][0]:+.3f}, "
                f"{pb['mean_auc_ci95'][1]:+.3f}], ΔF1 {pb['mean_f1']:+.3f} [{pb['mean_f1_ci95'][0]:+.3f}, "
                f"{pb['mean_f1_ci95'][1]:+.3f}]"
            )
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


def runs_markdown(
    runs: list[Path],
    paired_vs: Path | None = None,
    replicates: int = 2000,
    au_replicates: int = 1000,
    probe: bool = True,
    probe_c: float | str = "inner",
) -> str:
    """The Markdown report of finished runs (see the module docstring). ``probe_c``: the
    probe's C, or "inner" (chosen in every fold on its inner validation subjects)."""
    runs = [Path(r) for r in runs]
    paired_vs = Path(paired_vs) if paired_vs is not None else None
    out = []
    got = {}
    for run in runs + ([paired_vs] if paired_vs and paired_vs not in runs else []):
        got[run] = pooled(run)
    for run in runs:
        cfg, samples, idx, preds, au_probs, folds = got[run]
        summ = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
        b = subject_bootstrap(samples.label[idx], preds, samples.subject[idx], samples.num_classes, n=replicates)
        out.append(f"### {run.name}\n")
        out.append(
            f"- {display_name(cfg.model)}; protocol {cfg.protocol.kind} ({len(folds)} tested folds); "
            f"{int(cfg.train.epochs)} epochs; seed {int(cfg.seed)}"
        )
        out.append(
            f"- pooled UF1 {fmt_ci(b, 'uf1')}, UAR {fmt_ci(b, 'uar')} "
            f"(95 % intervals: {b['replicates']} bootstrap resamples of the {b['subjects']} subjects)"
        )
        for d, s in summ.get("per_dataset", {}).items():
            out.append(f"- {d}: UF1 {s['uf1']:.4f}, UAR {s['uar']:.4f} ({s['num_samples']} samples)")
        if "pooled" in summ:
            cm = summ["pooled"]["confusion"]
            names = summ.get("class_names", [str(i) for i in range(len(cm))])
            out.append("\n| true \\ predicted | " + " | ".join(names) + " |")
            out.append("|---" * (len(names) + 1) + "|")
            out += [f"| {n} | " + " | ".join(str(v) for v in row) + " |" for n, row in zip(names, cm)]
        calibrated = any(h.endswith("_uncal") for h in au_probs)
        detectors = {
            (head_name(h, calibrated) if h.split("_")[0] in ("gat", "afe") else h): v for h, v in au_probs.items()
        }
        if probe:
            detectors[PROBE] = (probe_predictions(samples, folds, idx, probe_c), None)
        out += au_lines(samples, idx, detectors, au_replicates)
        epochs = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("event") == "epoch"]
        if epochs:
            out.append(
                f"- training time {sum(r['seconds'] for r in epochs) / 60:.1f} min (sum of "
                f"{len(epochs)} fold-epochs; a resumed run's calls added up)"
            )
        out.append("")
        if paired_vs and run != paired_vs:
            _, sb, idx_b, preds_b, _, _ = got[paired_vs]
            order = {int(i): k for k, i in enumerate(idx_b)}
            pb = preds_b[[order[int(i)] for i in idx]]
            d = subject_bootstrap(
                samples.label[idx], preds, samples.subject[idx], samples.num_classes, n=replicates, y_pred_b=pb
            )
            out.append(f"- paired {run.name} − {paired_vs.name}: ΔUF1 {fmt_ci(d, 'uf1')}, ΔUAR {fmt_ci(d, 'uar')}\n")
    return "\n".join(out)
