"""Train a config's protocol in a run directory: stage 1 (AU pre-training) where the
config has it, then every fold, the all-data model, its model card and the summary.

A run directory (``workdir``) holds:
    config.json                 the resolved config (a resumed run must match it)
    metrics.jsonl               one record per fold-epoch, finished fold and the summary
    folds/<k>_<name>/model/     the fold's final model (params, batch_stats, priors +
                                metadata: classes, config) — a valid predict checkpoint
    folds/<k>_<name>/predictions.npz   its test predictions (marks the fold finished)
    checkpoints/                per-epoch chunk states while a chunk trains (resume)
    au_pretrain/                stage 1's models, thresholds and reference statistics
    final_model/                model trained on ALL samples with the same settings
                                (config ``export.final_model = "all_data"``), for predict
    summary.json, confusion.png, learning_curves.png
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import ml_collections
import numpy as np

from fedpsyau_jax.core.errors import UserError
from fedpsyau_jax.training import protocols
from fedpsyau_jax.training.au_alignment import write_au_reference_stats
from fedpsyau_jax.training.batching import device_data
from fedpsyau_jax.training.exported_model import FINAL_MODEL, pretrained_variables
from fedpsyau_jax.training.fold_training import (
    MODEL_CHECKPOINT,
    RunHooks,
    fold_dir,
    get_programs,
    run_folds,
    settings_fingerprint,
)
from fedpsyau_jax.training.report import format_summary, summarise_run
from fedpsyau_jax.training.run_inputs import fold_mesh, pretrain_epochs, run_setup
from fedpsyau_jax.training.run_logging import JsonlLog
from fedpsyau_jax.training.settings import TrainSettings


def pretrain_au(cfg: ml_collections.ConfigDict, workdir, show_progress: bool = True):
    """Stage 1 (AU pre-training) of a config alone, exactly as ``train`` runs it: same
    plan, settings, fingerprint and checkpoints, in ``workdir/au_pretrain`` (resumable;
    a later ``train`` in the same workdir reuses it). Returns the ``PretrainPlan``.
    A config without pre-training is a ``UserError``."""

    if not pretrain_epochs(cfg):
        raise UserError(
            f"config {cfg.get('config_file', '?')}: no AU pre-training (pretrain.epochs is 0 or the AU branch is off)"
        )
    workdir = Path(workdir)
    s, samples, model, folds, model_meta = run_setup(cfg, cfg.to_dict())
    workdir.mkdir(parents=True, exist_ok=True)
    log = JsonlLog(workdir / "metrics.jsonl")
    _, _, plan = au_pretraining_stage(
        cfg, s, model, samples, folds, device_data(samples), workdir, model_meta, log, show_progress
    )
    return plan


def train(
    cfg: ml_collections.ConfigDict,
    workdir,
    show_progress: bool = True,
    hooks: RunHooks | None = None,
    verbose: bool = True,
) -> dict:
    """Run the config's protocol in ``workdir`` (resuming if it holds a partial run).

    Returns the summary dict (also written to ``workdir/summary.json``): pooled and
    per-dataset/per-fold scores, file locations, timings.
    """

    t_start = time.perf_counter()
    workdir = Path(workdir)
    # Names, paths, init checkpoint and the workdir's config are checked before any work;
    # config.json is written only once the start has succeeded (see preflight).
    from fedpsyau_jax.training.preflight import check_train_start
    from fedpsyau_jax.core.atomic_files import write_json_atomic

    cfg_dict = check_train_start(cfg, workdir)
    cfg_path = workdir / "config.json"

    s, samples, model, folds, model_meta = run_setup(cfg, cfg_dict)
    eval_folds = [f for f in folds if len(f.test_idx)]
    priors = {f.index: protocols.fold_prior(cfg.prior.source, samples.au, samples.au_mask, f.train_idx) for f in folds}
    fingerprint = settings_fingerprint(
        s,
        {
            "data": cfg_dict.get("data"),
            "model": cfg_dict.get("model"),
            "prior": cfg_dict.get("prior"),
            "n": len(samples),
            **({"pretrain": cfg_dict["pretrain"]} if pretrain_epochs(cfg) else {}),
        },
    )
    pretrained = pretrained_variables(cfg.model.init_from) if cfg.model.get("init_from") else None
    workdir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cfg_path, cfg_dict)

    log = JsonlLog(workdir / "metrics.jsonl")
    log.write("start", samples=len(samples), folds=len(folds), settings=s.__dict__, data=samples.summary())
    user_hooks = hooks or RunHooks()

    on_epoch = epoch_logger(log, "epoch", user_hooks.on_epoch)

    def on_fold_done(fold, predictions):
        if len(fold.test_idx):
            y = samples.label[fold.test_idx]
            log.write(
                "fold_done",
                fold=fold.name,
                fold_index=fold.index,
                n_test=len(y),
                correct=int((predictions["pred"] == y).sum()),
            )
        if user_hooks.on_fold_done:
            user_hooks.on_fold_done(fold=fold, predictions=predictions)

    data = device_data(samples)
    thresholds = holdout = None
    if pretrain_epochs(cfg):
        pretrained, thresholds, plan = au_pretraining_stage(
            cfg, s, model, samples, folds, data, workdir, model_meta, log, show_progress
        )
        if str(cfg.pretrain.get("au_calibration", "thresholds")) == "platt":
            # stage 1's held-out subjects stay out of stage 2's AU supervision (and of D)
            # and calibrate the final heads (training.au_calibration)
            holdout = {f.index: plan.holdout_rows(f.index, samples.subject) for f in folds}
            for f in folds:
                train = np.setdiff1d(f.train_idx, holdout[f.index])
                priors[f.index] = protocols.fold_prior(cfg.prior.source, samples.au, samples.au_mask, train)
    programs = get_programs(model, s, fold_mesh(cfg))
    results = run_folds(
        programs,
        data,
        samples.label,
        folds,
        priors,
        workdir,
        model_meta,
        fingerprint,
        pretrained=pretrained,
        hooks=RunHooks(on_epoch, on_fold_done, user_hooks.after_chunk),
        show_progress=show_progress,
        au_thresholds=thresholds,
        au_holdout=holdout,
    )
    all_fold = next((f for f in folds if f.name == "all" and not len(f.test_idx)), None)
    if all_fold is not None:
        export_final_model(workdir, all_fold)
    summary = summarise_run(workdir, samples, eval_folds, results, cfg, time.perf_counter() - t_start)
    if all_fold is not None:  # the exported model's card (final_model/MODEL_CARD.md + metadata)
        from fedpsyau_jax.training.input_check import summarise_inputs, training_pipeline, write_input_summary
        from fedpsyau_jax.model_card import build_model_card, write_model_card

        # what the exported model's inputs looked like, so predict/analyse can cut new
        # inputs the same way and flag those unlike them (fedpsyau_jax.training.input_check)
        seen = samples.take(all_fold.train_idx)
        pipeline = training_pipeline(samples.meta, str(cfg_dict.get("data", {}).get("name", "")))
        inputs = summarise_inputs(seen.flow28, seen.landmarks, pipeline, seen.subject) if len(seen) >= 2 else None
        if inputs is not None:
            write_input_summary(workdir / FINAL_MODEL, inputs)
        write_model_card(workdir / FINAL_MODEL, build_model_card(summary, cfg_dict, samples, inputs=inputs))
    log.write("summary", pooled=summary.get("pooled"), wall_seconds=summary["wall_seconds"])
    if verbose:
        print(format_summary(summary))
    return summary


def epoch_logger(log, event: str, user_hook=None):
    """The ``on_epoch`` hook of ``run_folds``: one ``event`` line per fold in the run's
    metrics.jsonl (fold, epoch, β, examples, seconds and every metric), then the
    user's own hook, if any."""

    def on_epoch(folds, epoch, beta, metrics, examples, seconds):
        for k, f in enumerate(folds):
            log.write(
                event,
                fold=f.name,
                fold_index=f.index,
                epoch=epoch + 1,
                beta=beta,
                examples=float(examples[k]),
                seconds=seconds,
                **{m: float(v[k]) for m, v in metrics.items()},
            )
        if user_hook:
            user_hook(folds=folds, epoch=epoch, beta=beta, metrics=metrics, examples=examples, seconds=seconds)

    return on_epoch


def au_pretraining_stage(
    cfg, s: TrainSettings, model, samples, folds, data, workdir: Path, model_meta, log, show_progress
):
    """Stage 1 (``training.au_pretraining``) inside every fold: returns the per-fold
    initialiser of stage 2 and the per-fold AU thresholds."""
    from fedpsyau_jax.training.au_pretraining import part_strata, run_pretraining

    p = cfg.pretrain
    s1 = dataclasses.replace(
        s,
        epochs=int(p.epochs),
        learning_rate=float(p.learning_rate),
        alpha=(0.0, 1.0, 1.0),
        class_balance="none",
        au_pos_weight=str(p.au_pos_weight),
    )
    fp1 = settings_fingerprint(
        s1,
        {
            "data": cfg.data.to_dict(),
            "model": cfg.model.to_dict(),
            "val_fraction": float(p.val_fraction),
            "n": len(samples),
            "stage": 1,
            "subject_folds": int(p.get("subject_folds", 0)),
            "part_balance": str(p.get("part_balance", "none")),
        },
    )

    on_epoch = epoch_logger(log, "pretrain_epoch")

    prior_fn = lambda idx: protocols.fold_prior(cfg.prior.source, samples.au, samples.au_mask, idx)
    load, thresholds, plan = run_pretraining(
        get_programs(model, s1, fold_mesh(cfg)),
        data,
        samples,
        folds,
        prior_fn,
        workdir,
        model_meta,
        fp1,
        float(p.val_fraction),
        int(cfg.seed),
        show_progress,
        hooks=RunHooks(on_epoch=on_epoch),
        subject_folds=int(p.get("subject_folds", 0)),
        strata=part_strata(p, samples),
    )
    if int(p.get("subject_folds", 0)) >= 2:
        # label-free scale of each shared stage-1 model (training.au_alignment), read by
        # `fedpsyau report` to align the folds' AU scores; cheap (one eval pass each)
        ref = write_au_reference_stats(workdir, samples, flip_tta=s.eval_flip)
        log.write("au_reference_stats", path=str(ref) if ref else None)
    log.write(
        "pretrain_done",
        stage1_folds=len(plan.folds),
        # which subjects each stage-1 model held out (the shared parts, or inner validation)
        held_out={f.name: list(f.test_subjects) for f in plan.folds},
        thresholds={str(k): {h: [float(x) for x in v] for h, v in t.items()} for k, t in thresholds.items()},
    )
    return load, thresholds, plan


def export_final_model(workdir: Path, fold) -> None:
    """Copy the all-data fold's model to ``workdir/final_model`` (the predict checkpoint)."""

    src = fold_dir(workdir, fold) / MODEL_CHECKPOINT
    dst = workdir / FINAL_MODEL
    tmp = workdir / f".{FINAL_MODEL}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
