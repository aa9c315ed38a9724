"""A finished LOSO run re-scored with mirror averaging at test time (flip TTA, issue 26).

    python experiments/au_branch/au_flip_tta.py experiments/loso_runs/megc2019_loso_au_balanced \\
        --workdir runs/megc2019_loso_au_balanced \\
        --out experiments/loso_runs/megc2019_loso_au_balanced_fliptta
    fedpsyau report experiments/loso_runs/megc2019_loso_au_balanced_fliptta

RUN is a run directory with every fold's ``predictions.npz`` (a committed copy will do);
WORKDIR is the directory the run trained in, which still holds the models (stage-1 parts
under ``au_pretrain/folds/*/model``, fold models under ``folds/*/model``). Every model
scores its held-out samples again, each output being the mean of its logits on the
sample and its mirror (``training.flip_averaging``); everything downstream is recomputed
from those scores with the run's own rules:

- each fold's per-AU thresholds from its stage-1 model's mirrored scores on the same
  inner-validation rows (``au_pretraining.plan_pretraining`` rebuilt from the run's
  config, ``thresholds_from_predictions``);
- each stage-1 model's reference statistics over the same unlabelled reference
  (``au_alignment``), so ``fedpsyau report`` prints aligned heads and the
  combined score for OUT as for any run.

OUT gets ``config.json``, ``folds/*/predictions.npz`` (emotion and AU outputs with TTA),
``au_pretrain/folds/*/predictions.npz`` and ``au_pretrain/reference_stats.json``. Before
writing, the script checks its plain (no TTA) re-scoring against the stored predictions
and thresholds, so a model, β or plan that differs from the run's stops it with the
fold's name.

Printed (also with ``--report-only`` on an existing OUT): the AU table of
``fedpsyau report`` for the probe, the probe's mirror counterpart (trained on both
orientations of every training sample, scored as the mean of its logits over both
orientations of a test sample: tells a gain of symmetry alone from one of the network)
and the combined score without and with mirror averaging, then the paired subject
bootstrap differences of the mirror-averaged combined score from the other three.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np


def _outputs(model_dir: Path, samples, rows: np.ndarray, flip_tta: bool, chunk: int = 64):
    """(emotion logits (r, C), AU logits {head: (r, 12)}) of the model in ``model_dir``."""
    from fedpsyau_jax import api

    model, v, meta = api.load_model(model_dir)
    variables = {"params": v["params"], "batch_stats": v["batch_stats"], "priors": v["priors"]}
    fn = api.apply_fn(model, api.final_beta(meta), flip_tta=flip_tta)
    emo, gat, afe = [], [], []
    for s in range(0, len(rows), chunk):
        r = rows[s : s + chunk]
        batch = {k: np.asarray(getattr(samples, k))[r] for k in ("flow128", "flow28", "landmarks")}
        e, g, a = fn(variables, batch)
        emo.append(np.asarray(e)), gat.append(np.asarray(g)), afe.append(np.asarray(a))
    return np.concatenate(emo), {"gat": np.concatenate(gat), "afe": np.concatenate(afe)}


def _sig(x):
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _check(name: str, got: np.ndarray, stored: np.ndarray, tol: float) -> float:
    d = float(np.max(np.abs(got - stored))) if got.size else 0.0
    if d > tol:
        raise SystemExit(f"{name}: plain re-scoring differs from the stored value by {d:.2e} (> {tol}); "
                         "wrong --workdir, or the run's models changed")
    return d


def mirrored_probe(samples, folds, idx: np.ndarray) -> np.ndarray:
    """Held-out AU probabilities (len(idx), 12) of the probe trained on both
    orientations of every training sample, scored as the mean logit over both
    orientations of a test sample (``au_probe.fit_predict_probe``, C = 1)."""
    import jax.numpy as jnp

    from fedpsyau_jax.training.au_calibration import logit
    from fedpsyau_jax.training.au_probe import fit_predict_probe
    from fedpsyau_jax.training.flip_averaging import mirror

    batch = {k: np.asarray(getattr(samples, k)) for k in ("flow128", "flow28", "landmarks")}
    flow = np.asarray(batch["flow28"])
    flipped = np.asarray(mirror({k: jnp.asarray(v) for k, v in batch.items()})["flow28"])
    prob = np.zeros((len(samples.au), 12), np.float32)
    for f in folds:
        te = np.asarray(f.test_idx)
        if not (samples.au_mask[te].sum(1) > 0).any():
            continue
        tr = np.asarray(f.train_idx)
        p = fit_predict_probe(
            np.concatenate([flow[tr], flipped[tr]]),
            np.concatenate([samples.au[tr]] * 2),
            np.concatenate([samples.au_mask[tr]] * 2),
            np.concatenate([flow[te], flipped[te]]),
        )
        prob[te] = _sig(0.5 * (logit(p[: len(te)]) + logit(p[len(te) :])))
    return prob[idx]


def main(argv=None) -> int:
    from fedpsyau_jax import api
    from fedpsyau_jax.core.atomic_files import save_npz_atomic, write_json_atomic
    from fedpsyau_jax.training import protocols
    from fedpsyau_jax.training.au_alignment import HEADS, STATS_FILE
    from fedpsyau_jax.training.au_pretraining import part_strata, plan_pretraining, thresholds_from_predictions
    from fedpsyau_jax.training.fold_training import MODEL_CHECKPOINT, fold_dir, load_fold_predictions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run directory with every fold's predictions.npz")
    ap.add_argument("--workdir", type=Path, help="the directory the run trained in (models)")
    ap.add_argument("--out", type=Path, required=True, help="new run directory for the TTA predictions")
    ap.add_argument("--tol", type=float, default=2e-3, help="largest plain-vs-stored probability difference")
    ap.add_argument("--report-only", action="store_true", help="OUT exists: print the comparison only")
    args = ap.parse_args(argv)
    if args.report_only:
        print(report(args.run, args.out))
        return 0
    if args.workdir is None:
        raise SystemExit("--workdir is needed to re-score (or --report-only with an existing --out)")
    if args.out.resolve() in (args.run.resolve(), args.workdir.resolve()):
        raise SystemExit(f"{args.out}: --out must be a new directory, not the run or its workdir")

    cfg, samples, folds, preds = api.run_predictions(args.run)
    subject = np.asarray(samples.subject).astype(str)
    p = cfg.pretrain
    if int(p.get("subject_folds", 0)) < 2 or int(p.get("epochs", 0)) <= 0:
        raise SystemExit(f"{args.run}: not a run with shared stage-1 parts (pretrain.subject_folds >= 2)")
    plan = plan_pretraining(
        protocols.folds_from_config(cfg, samples), samples.subject, samples.au_mask, float(p.val_fraction),
        int(cfg.seed), int(p.subject_folds), part_strata(p, samples),
    )
    pre_in, pre_out = args.workdir / "au_pretrain", args.out / "au_pretrain"

    # 1. stage-1 models: plain check and mirrored scores on their held-out rows
    stage1, worst = {}, 0.0
    used = sorted({plan.of_fold[f.index] for f in folds})
    for j in used:
        pf = plan.folds[j]
        stored = load_fold_predictions(fold_dir(args.run / "au_pretrain", pf) / "predictions.npz")
        if stored is None:
            raise SystemExit(f"{fold_dir(args.run / 'au_pretrain', pf)}: no predictions.npz")
        rows = np.asarray(stored["test_idx"])
        mdir = fold_dir(pre_in, pf) / MODEL_CHECKPOINT
        _, plain = _outputs(mdir, samples, rows, False)
        for h in HEADS:
            worst = max(worst, _check(f"{mdir} head {h}", _sig(plain[h]), stored[f"au_prob_{h}"], args.tol))
        _, z = _outputs(mdir, samples, rows, True)
        stage1[j] = {"test_idx": rows, **{f"au_prob_{h}": _sig(z[h]) for h in HEADS}, "_dir": fold_dir(pre_out, pf)}
        print(f"stage 1 {pf.name}: {len(rows)} rows re-scored", file=sys.stderr)

    # 2. thresholds of every fold, plain (checked against the stored ones) and mirrored
    thr = {}
    for f, pr in zip(folds, preds):
        j = plan.of_fold[f.index]
        s1 = stage1[j]
        keep = ~np.isin(subject[s1["test_idx"]], list(plan.exclude.get(f.index, ())))
        stored1 = load_fold_predictions(fold_dir(args.run / "au_pretrain", plan.folds[j]) / "predictions.npz")
        plain_t = thresholds_from_predictions(stored1, samples.au, samples.au_mask, keep)
        for h in HEADS:
            if f"au_threshold_{h}" in pr and not np.allclose(plain_t[h], pr[f"au_threshold_{h}"]):
                raise SystemExit(f"{f.name}: rebuilt plan gives other thresholds than the run stored ({h})")
        thr[f.index] = thresholds_from_predictions(s1, samples.au, samples.au_mask, keep)

    # 3. reference statistics of the shared parts, from mirrored logits (as train writes them)
    stats = api.au_reference_stats(args.workdir, samples, flip_tta=True)
    if stats is None:
        raise SystemExit(f"{pre_in}: a shared stage-1 model is missing, or no sample lacks AU labels")

    # 4. fold models: plain check, mirrored outputs, decisions at the mirrored thresholds
    out_folds = []
    for k, (f, pr) in enumerate(zip(folds, preds)):
        rows = np.asarray(pr["test_idx"])
        mdir = fold_dir(args.workdir, f) / MODEL_CHECKPOINT
        _, plain = _outputs(mdir, samples, rows, False)
        for h in HEADS:
            worst = max(worst, _check(f"{mdir} head {h}", _sig(plain[h]), pr[f"au_prob_{h}"], args.tol))
        e, z = _outputs(mdir, samples, rows, True)
        prob = np.exp(e - e.max(1, keepdims=True))
        prob = (prob / prob.sum(1, keepdims=True)).astype(np.float32)
        new = {"test_idx": rows, "prob": prob, "pred": prob.argmax(1).astype(np.int32)}
        for h in HEADS:
            new[f"au_prob_{h}"] = _sig(z[h])
            new[f"au_threshold_{h}"] = np.asarray(thr[f.index][h], np.float32)
            new[f"au_pred_{h}"] = (new[f"au_prob_{h}"] >= new[f"au_threshold_{h}"]).astype(np.int8)
        out_folds.append((f, new))
        if (k + 1) % 10 == 0 or k + 1 == len(folds):
            print(f"fold models: {k + 1}/{len(folds)} re-scored", file=sys.stderr)
    print(f"largest plain-vs-stored probability difference: {worst:.2e}", file=sys.stderr)

    # 5. write OUT (a fresh directory: a half-written one from an interrupted call is replaced)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # the run's config, with the evaluation these outputs had (training is unchanged by it)
    run_cfg = json.loads((args.run / "config.json").read_text(encoding="utf-8"))
    run_cfg.setdefault("train", {})["eval_flip"] = True
    write_json_atomic(tmp / "config.json", run_cfg)
    for f, new in out_folds:
        save_npz_atomic(fold_dir(tmp, f) / "predictions.npz", new)
    for s1 in stage1.values():
        d = tmp / "au_pretrain" / "folds" / s1["_dir"].name
        save_npz_atomic(d / "predictions.npz", {k: v for k, v in s1.items() if not k.startswith("_")})
    write_json_atomic(tmp / "au_pretrain" / STATS_FILE, stats)
    write_json_atomic(tmp / "flip_tta.json", {"source_run": str(args.run), "plain_vs_stored_max_diff": worst})
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    print(report(args.run, args.out))

    return 0


def report(run: Path, out: Path, replicates: int = 1000) -> str:
    """The probe, its mirror counterpart and the combined score with and without mirror
    averaging (AU table of ``fedpsyau report``), then paired differences: combined
    with − without, and combined (with) − each probe."""
    from fedpsyau_jax.training.metrics import au_subject_bootstrap

    from fedpsyau_jax.training import report as loso_report

    _, samples, idx, _, plain, folds = loso_report.pooled(run)
    _, _, idx_t, _, tta, _ = loso_report.pooled(out)
    if not np.array_equal(idx, idx_t):
        raise SystemExit(f"{out}: other test rows than {run}")
    comb = "combined (both heads, reference-aligned)"
    if comb not in plain or comb not in tta:
        raise SystemExit(f"{run} / {out}: no combined score (au_pretrain/reference_stats.json missing)")
    mirror_name = "linear probe, both orientations (mirror counterpart)"
    det = {loso_report.PROBE: (loso_report.probe_predictions(samples, folds, idx), None),
           mirror_name: (mirrored_probe(samples, folds, idx), None),
           "combined, plain": plain[comb], "combined, mirror-averaged": tta[comb]}
    lines = loso_report.au_lines(samples, idx, det, replicates)
    known = samples.au_mask[idx].sum(1) > 0
    t, m, subj = samples.au[idx][known], samples.au_mask[idx][known], samples.subject[idx][known]
    dec = lambda d: (d[0][known] >= 0.5) if d[1] is None else d[1][known]
    a = det["combined, mirror-averaged"]
    for name in ("combined, plain", loso_report.PROBE, mirror_name):
        b = det[name]
        pb = au_subject_bootstrap(t, m, a[0][known], subj, au_pred=dec(a), n=replicates,
                                  au_prob_b=b[0][known], au_pred_b=dec(b))
        lines.append(f"- paired combined, mirror-averaged − {name}: ΔAUC {pb['mean_auc']:+.4f} "
                     f"[{pb['mean_auc_ci95'][0]:+.3f}, {pb['mean_auc_ci95'][1]:+.3f}], ΔF1 {pb['mean_f1']:+.4f} "
                     f"[{pb['mean_f1_ci95'][0]:+.3f}, {pb['mean_f1_ci95'][1]:+.3f}]")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
