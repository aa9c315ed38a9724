"""Python API mirroring the CLI: ``train``, ``evaluate``, ``predict``.

    from fedpsyau_jax import api
    summary = api.train(load_config("configs/synthetic_demo.py"), "runs/demo")
    summary = api.evaluate("runs/demo")
    out = api.predict("clip.mp4", "runs/demo/final_model")

A run directory (``workdir``) holds:
    config.json                 the resolved config (a resumed run must match it)
    metrics.jsonl               one record per fold-epoch, finished fold and the summary
    folds/<k>_<name>/model/     the fold's final model (params, batch_stats, priors +
                                metadata: classes, config) — a valid predict checkpoint
    folds/<k>_<name>/predictions.npz   its test predictions (marks the fold finished)
    checkpoints/                per-epoch chunk states while a chunk trains (resume)
    final_model/                model trained on ALL samples with the same settings
                                (config ``export.final_model = "all_data"``), for predict
    summary.json, confusion.png, learning_curves.png
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fedpsyau_jax.config_loading import ConfigError
from fedpsyau_jax.training import protocols
from fedpsyau_jax.training.checkpoints import CheckpointError, read_metadata, restore_checkpoint
from fedpsyau_jax.training.fold_training import (
    MODEL_CHECKPOINT,
    RunHooks,
    get_programs,
    TrainSettings,
    fold_dir,
    load_fold_predictions,
    run_folds,
    settings_fingerprint,
)
from fedpsyau_jax.network.model import FedPsyAU, model_options
from fedpsyau_jax.training.run_logging import JsonlLog, read_jsonl
from fedpsyau_jax.sample_arrays import MESamples

FINAL_MODEL = "final_model"


# ------------------------------------------------------------------ config -> parts
def settings_from_config(cfg) -> TrainSettings:
    t = cfg.train
    return TrainSettings(
        epochs=int(t.epochs),
        batch_size=int(t.batch_size),
        eval_batch_size=int(t.eval_batch_size),
        learning_rate=float(t.learning_rate),
        weight_decay=float(t.weight_decay),
        lr_schedule=str(t.lr_schedule),
        warmup_epochs=float(t.warmup_epochs),
        min_lr_ratio=float(t.min_lr_ratio),
        decay_kernels_only=bool(t.decay_kernels_only),
        class_balance=str(t.class_balance),
        hflip=float(t.hflip),
        au_norm=str(t.au_norm),
        au_pos_weight=str(t.get("au_pos_weight", "none")),
        alpha=tuple(float(a) for a in t.alpha),
        beta_schedule=str(t.beta_schedule),
        beta0=float(t.beta0),
        seed=int(cfg.seed),
        fold_rng=str(t.get("fold_rng", "per_fold")),
        eval_flip=bool(t.get("eval_flip", False)),
        fold_chunk=int(cfg.runtime.fold_chunk),
        checkpoint_every=int(cfg.runtime.checkpoint_every),
    )


def fold_mesh(cfg):
    """A device mesh for the fold axis (``runtime.shard_folds``): "auto" shards each
    chunk of folds across all visible devices when there are several, "off" never."""
    mode = str(cfg.runtime.get("shard_folds", "auto"))
    if mode not in ("auto", "off"):
        raise ConfigError(f"runtime.shard_folds {mode!r}: choose auto or off")
    if mode == "off" or jax.device_count() < 2:
        return None
    from fedpsyau_jax.training.sharding import row_mesh

    return row_mesh()


def load_samples(cfg) -> MESamples:
    """The dataset named by ``cfg.data`` (name, root, cache_dir, kwargs). A loader argument
    added after a run config was saved takes the value that run was trained with
    (``datasets.SAVED_CONFIG_DEFAULTS``: a composite config without
    ``data.kwargs.landmark_frame`` means "apex")."""
    from data_pipelines.datasets import config_loader_kwargs, load_dataset

    d = cfg.data
    root = Path(d.root) if d.get("root") else None
    cache = Path(d.cache_dir) if d.get("cache_dir") else None
    kw = d.get("kwargs") or {}
    kw = kw.to_dict() if hasattr(kw, "to_dict") else dict(kw)
    samples = load_dataset(d.name, root=root, cache_dir=cache, **config_loader_kwargs(d.name, kw))
    only = d.get("only_au_labelled", False)
    if only:  # AU pre-training: keep only frames with AU labels (paper §5.1)
        keep = samples.au_mask.sum(axis=1) > 0
        if not keep.any():
            raise ValueError(f"dataset {d.name!r}: no sample has AU labels (only_au_labelled=True)")
        samples = samples.take(np.nonzero(keep)[0])
    return samples


def _model(cfg, samples: MESamples) -> FedPsyAU:
    m = cfg.model
    return FedPsyAU(num_classes=samples.num_classes, use_au_branch=bool(m.use_au_branch), **model_options(m))


def model_from_meta(meta: dict) -> FedPsyAU:
    """The network an exported model was trained as. Models exported before the
    ``group_tokens`` option used the reference code's group assignment; before the AU
    node / dropout options, the paper's (L2 nodes, dropout 0.5)."""
    return FedPsyAU(
        num_classes=int(meta["num_classes"]),
        use_au_branch=bool(meta["use_au_branch"]),
        **model_options(meta, {"group_tokens": "reference"}),
    )


def _load_pretrained(path) -> tuple[dict, dict]:
    """params / batch_stats of an exported model (AU pre-training) at ``path``."""
    path = Path(path)
    meta = read_metadata(path.parent, path.name)
    model = model_from_meta(meta)
    target = _abstract_variables(model)
    v, _ = restore_checkpoint(path.parent, path.name, target)
    return v["params"], v["batch_stats"]


def _abstract_variables(model: FedPsyAU) -> dict:
    from fedpsyau_jax.network.model import init_variables

    v = jax.eval_shape(lambda k: init_variables(model, k), jax.random.PRNGKey(0))
    return {"params": v["params"], "batch_stats": v.get("batch_stats", {}), "priors": v["priors"]}


# ------------------------------------------------------------------ train
def _run_setup(cfg, cfg_dict: dict):
    """(settings, samples, model, folds incl. the all-data one, checkpoint metadata) of
    a config: what ``train`` and ``pretrain_au`` share."""
    s = settings_from_config(cfg)
    samples = load_samples(cfg)
    model = _model(cfg, samples)
    folds = protocols.folds_from_config(cfg, samples)
    if cfg.export.final_model == "all_data" and cfg.protocol.kind != "all":
        folds = folds + [protocols.all_data_fold(len(samples), len(folds))]
    model_meta = {
        "num_classes": samples.num_classes,
        "class_names": list(samples.class_names),
        "use_au_branch": bool(cfg.model.use_au_branch),
        **model_options(cfg.model),
        "config": cfg_dict,
    }
    return s, samples, model, folds, model_meta


def pretrain_au(cfg: ml_collections.ConfigDict, workdir, show_progress: bool = True):
    """Stage 1 (AU pre-training) of a config alone, exactly as ``train`` runs it: same
    plan, settings, fingerprint and checkpoints, in ``workdir/au_pretrain`` (resumable;
    a later ``train`` in the same workdir reuses it). Returns the ``PretrainPlan``.
    A config without pre-training is a ``UserError``."""
    from fedpsyau_jax.errors import UserError
    from fedpsyau_jax.training.batching import device_data

    if not _pretrain_epochs(cfg):
        raise UserError(
            f"config {cfg.get('config_file', '?')}: no AU pre-training (pretrain.epochs is 0 or the AU branch is off)"
        )
    workdir = Path(workdir)
    s, samples, model, folds, model_meta = _run_setup(cfg, cfg.to_dict())
    workdir.mkdir(parents=True, exist_ok=True)
    log = JsonlLog(workdir / "metrics.jsonl")
    _, _, plan = _au_pretraining(
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
    from fedpsyau_jax.atomic_files import write_json_atomic
    from fedpsyau_jax.training.batching import device_data

    t_start = time.perf_counter()
    workdir = Path(workdir)
    # Names, paths, init checkpoint and the workdir's config are checked before any work;
    # config.json is written only once the start has succeeded (see preflight).
    from fedpsyau_jax.training.preflight import check_train_start

    cfg_dict = check_train_start(cfg, workdir)
    cfg_path = workdir / "config.json"

    s, samples, model, folds, model_meta = _run_setup(cfg, cfg_dict)
    eval_folds = [f for f in folds if len(f.test_idx)]
    priors = {f.index: protocols.fold_prior(cfg.prior.source, samples.au, samples.au_mask, f.train_idx) for f in folds}
    fingerprint = settings_fingerprint(
        s,
        {
            "data": cfg_dict.get("data"),
            "model": cfg_dict.get("model"),
            "prior": cfg_dict.get("prior"),
            "n": len(samples),
            **({"pretrain": cfg_dict["pretrain"]} if _pretrain_epochs(cfg) else {}),
        },
    )
    pretrained = _load_pretrained(cfg.model.init_from) if cfg.model.get("init_from") else None
    workdir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cfg_path, cfg_dict)

    log = JsonlLog(workdir / "metrics.jsonl")
    log.write("start", samples=len(samples), folds=len(folds), settings=s.__dict__, data=samples.summary())
    user_hooks = hooks or RunHooks()

    on_epoch = _epoch_logger(log, "epoch", user_hooks.on_epoch)

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
    if _pretrain_epochs(cfg):
        pretrained, thresholds, plan = _au_pretraining(
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
        _export_final_model(workdir, all_fold)
    summary = _summarise(workdir, samples, eval_folds, results, cfg, time.perf_counter() - t_start)
    if all_fold is not None:  # the exported model's card (final_model/MODEL_CARD.md + metadata)
        from fedpsyau_jax.model_card import build_model_card, write_model_card

        write_model_card(workdir / FINAL_MODEL, build_model_card(summary, cfg_dict, samples))
    log.write("summary", pooled=summary.get("pooled"), wall_seconds=summary["wall_seconds"])
    if verbose:
        print(format_summary(summary))
    return summary


def _epoch_logger(log, event: str, user_hook=None):
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


def _pretrain_epochs(cfg) -> int:
    p = cfg.get("pretrain")
    return int(p.get("epochs", 0)) if p is not None and bool(cfg.model.use_au_branch) else 0


def _au_pretraining(cfg, s: TrainSettings, model, samples, folds, data, workdir: Path, model_meta, log, show_progress):
    """Stage 1 (``training.au_pretraining``) inside every fold: returns the per-fold
    initialiser of stage 2 and the per-fold AU thresholds."""
    import dataclasses
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

    on_epoch = _epoch_logger(log, "pretrain_epoch")

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
        # scripts/loso_report.py to align the folds' AU scores; cheap (one eval pass each)
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


def _export_final_model(workdir: Path, fold) -> None:
    """Copy the all-data fold's model to ``workdir/final_model`` (the predict checkpoint)."""
    import shutil

    src = fold_dir(workdir, fold) / MODEL_CHECKPOINT
    dst = workdir / FINAL_MODEL
    tmp = workdir / f".{FINAL_MODEL}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def _summarise(workdir: Path, samples: MESamples, eval_folds, results, cfg, wall: float) -> dict:
    from fedpsyau_jax.atomic_files import write_json_atomic
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
        from fedpsyau_jax.training.metrics import au_detection_scores, subject_bootstrap

        summary["pooled_bootstrap"] = subject_bootstrap(
            samples.label[idx], preds, samples.subject[idx], samples.num_classes
        )
        if all("au_prob_gat" in results[f.index] for f in eval_folds):
            from fedpsyau_jax.network.au_groups import AU_ORDER

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


# ------------------------------------------------------------------ evaluate
def evaluate(workdir, verbose: bool = True) -> dict:
    """Re-evaluate every fold's saved final model on its test subjects and pool.

    Also checks the stored predictions: ``summary["matches_stored_predictions"]``.
    """
    from fedpsyau_jax.training.batching import device_data, eval_plan, stack_plans
    from fedpsyau_jax.training.fold_training import chunk_folds, eval_steps
    from fedpsyau_jax.training.train_state import TrainState

    workdir = Path(workdir)
    cfg_path = workdir / "config.json"
    if not cfg_path.is_file():
        from fedpsyau_jax.errors import InputFileError

        raise InputFileError(f"{workdir}: no config.json (not a training run directory)")
    cfg = ml_collections.ConfigDict(json.loads(cfg_path.read_text(encoding="utf-8")))
    s = settings_from_config(cfg)
    samples = load_samples(cfg)
    model = _model(cfg, samples)
    folds = [f for f in protocols.folds_from_config(cfg, samples) if len(f.test_idx)]
    target = _abstract_variables(model)
    programs = get_programs(model, s)
    data = device_data(samples)
    n_eval = eval_steps(s, folds)
    beta_last = float(s.betas()[-1])
    results, same = {}, True
    t0 = time.perf_counter()
    for chunk in chunk_folds(folds, s.fold_chunk):
        vs = []
        for f in chunk:
            ck = fold_dir(workdir, f)
            if not (ck / MODEL_CHECKPOINT).is_dir():
                raise CheckpointError(
                    f"{ck / MODEL_CHECKPOINT}: fold {f.name} has no final model "
                    "(run `fedpsyau train` to finish the run)"
                )
            v, _ = restore_checkpoint(ck, MODEL_CHECKPOINT, target)
            vs.append(v)
        stacked = jax.tree.map(lambda *x: jnp.stack(x), *vs)
        states = TrainState(
            params=stacked["params"],
            batch_stats=stacked["batch_stats"],
            priors=stacked["priors"],
            opt_state=None,
            step=jnp.zeros((len(chunk),), jnp.int32),
            key=jnp.zeros((len(chunk), 2), jnp.uint32),
        )
        idx, mask = stack_plans([eval_plan(f.test_idx, s.eval_batch_size, n_eval) for f in chunk])
        out = programs.evaluate(states, data, idx, mask, np.full((len(chunk),), beta_last, np.float32))
        for k, f in enumerate(chunk):
            pred = np.asarray(out["pred"][k]).reshape(-1)[: len(f.test_idx)]
            results[f.index] = {"test_idx": f.test_idx, "pred": pred}
            stored = load_fold_predictions(fold_dir(workdir, f) / "predictions.npz")
            same &= stored is not None and np.array_equal(stored["pred"], pred)
    idx = np.concatenate([results[f.index]["test_idx"] for f in folds])
    preds = np.concatenate([results[f.index]["pred"] for f in folds])
    fold_of = np.concatenate([np.full(len(f.test_idx), k) for k, f in enumerate(folds)])
    report = protocols.pooled_report(
        samples.label[idx], preds, fold_of, samples.dataset[idx], [f.name for f in folds], samples.class_names
    )
    summary = {
        "workdir": str(workdir),
        "dataset": cfg.data.name,
        "protocol": cfg.protocol.kind,
        "folds": len(folds),
        "samples": len(samples),
        "epochs": s.epochs,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        **report,
        "matches_stored_predictions": bool(same),
    }
    if verbose:
        print(format_summary(summary))
        print(f"re-evaluated predictions equal the stored ones: {same}")
    return summary


# ------------------------------------------------------------------ predict
def run_predictions(workdir) -> tuple:
    """(cfg, samples, folds, predictions) of a run directory's finished test folds:
    the resolved config, the dataset, the folds with test samples and each fold's
    stored predictions (``predictions.npz`` dict). A fold without predictions is an
    ``InputFileError`` naming it."""
    from fedpsyau_jax.errors import InputFileError

    workdir = Path(workdir)
    cfg = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text(encoding="utf-8")))
    samples = load_samples(cfg)
    folds = [f for f in protocols.folds_from_config(cfg, samples) if len(f.test_idx)]
    preds = [load_fold_predictions(fold_dir(workdir, f) / "predictions.npz") for f in folds]
    missing = [f.name for f, p in zip(folds, preds) if p is None]
    if missing:
        raise InputFileError(f"{workdir}: {len(missing)} fold(s) unfinished (e.g. {missing[0]})")
    return cfg, samples, folds, preds


def resolve_model_dir(checkpoint) -> Path:
    """``checkpoint`` may be a model checkpoint dir or a run dir holding final_model/."""
    p = Path(checkpoint)
    if (p / FINAL_MODEL / "metadata.json").is_file():
        return p / FINAL_MODEL
    if (p / "metadata.json").is_file():
        return p
    raise CheckpointError(
        f"{p}: neither a model checkpoint (metadata.json + state/) nor a run directory with {FINAL_MODEL}/"
    )


def load_model(checkpoint) -> tuple[FedPsyAU, dict, dict]:
    """(model, variables, metadata) of an exported model checkpoint."""
    path = resolve_model_dir(checkpoint)
    meta = read_metadata(path.parent, path.name)
    for key in ("num_classes", "class_names", "use_au_branch"):
        if key not in meta:
            raise CheckpointError(f"{path}: metadata lacks {key!r} (not an exported model)")
    model = model_from_meta(meta)
    v, meta = restore_checkpoint(path.parent, path.name, _abstract_variables(model))
    return model, v, meta


def au_reference_stats(workdir, samples, flip_tta: bool = False) -> dict | None:
    """Reference statistics of every shared stage-1 model of a run
    (``training.au_alignment``): {part directory: {head: (2, 12) as lists}}, per AU and
    head the mean and standard deviation of the model's logits over the samples without
    AU labels of subjects it does not hold out (with ``flip_tta``, of its
    mirror-averaged logits, as a run with ``train.eval_flip`` evaluates). None where the
    run has no shared stage-1 parts, a part's model is gone, or there is no unlabelled
    sample."""
    from fedpsyau_jax.training.au_alignment import HEADS, reference_rows, reference_stats, stage1_parts
    from fedpsyau_jax.training.fold_training import MODEL_CHECKPOINT

    workdir = Path(workdir)
    part_of = stage1_parts(workdir, samples.subject)
    parts = sorted(set(part_of.values()))
    pre = workdir / "au_pretrain" / "folds"
    if not parts or not all((pre / n / MODEL_CHECKPOINT).is_dir() for n in parts):
        return None
    stats = {}
    for name in parts:
        rows = reference_rows(samples.au_mask, samples.subject, [s for s, n in part_of.items() if n == name])
        if len(rows) < 2:
            return None
        model, v, meta = load_model(pre / name / MODEL_CHECKPOINT)
        variables = {"params": v["params"], "batch_stats": v["batch_stats"], "priors": v["priors"]}
        batch = {k: np.asarray(getattr(samples, k))[rows] for k in ("flow128", "flow28", "landmarks")}
        _, au_gat, au_afe = _apply_fn(model, final_beta(meta), flip_tta)(variables, batch)
        if au_gat is None:
            return None
        stats[name] = {h: reference_stats(np.asarray(z)).tolist() for h, z in zip(HEADS, (au_gat, au_afe))}
    return stats


def write_au_reference_stats(workdir, samples, flip_tta: bool = False) -> Path | None:
    """``au_reference_stats`` written to ``<workdir>/au_pretrain/reference_stats.json``;
    returns that path, or None where there are none."""
    from fedpsyau_jax.atomic_files import write_json_atomic
    from fedpsyau_jax.training.au_alignment import STATS_FILE

    stats = au_reference_stats(workdir, samples, flip_tta)
    if stats is None:
        return None
    path = Path(workdir) / "au_pretrain" / STATS_FILE
    write_json_atomic(path, stats)
    return path


def predict(video, checkpoint, onset: int | None = None, apex: int | None = None) -> dict:
    """Emotion and AU probabilities of one video clip (whole pipeline: face, crop,
    TV-L1 flow, landmarks -> model). Without onset/apex the first frame is the onset
    and the apex is the frame of largest flow from it (``video_to_sample``)."""
    from data_pipelines.video_pipeline import video_to_sample
    from fedpsyau_jax.network.au_groups import AU_ORDER

    model, v, meta = load_model(checkpoint)
    sample = video_to_sample(video, onset=onset, apex=apex)
    batch = {k: np.asarray(sample[k])[None] for k in ("flow128", "flow28", "landmarks")}
    probs, au_p = model_probabilities(model, v, meta, batch)
    probs = probs[0]
    out = {
        "video": str(video),
        "class_names": list(meta["class_names"]),
        "emotion_prob": {c: float(p) for c, p in zip(meta["class_names"], probs)},
        "emotion": meta["class_names"][int(np.argmax(probs))],
        "onset": int(sample["onset"]),
        "apex": int(sample["apex"]),
        "apex_spotted": bool(sample.get("apex_spotted", False)),
    }
    if au_p is not None:
        out["au_prob"] = {f"AU{a}": float(x) for a, x in zip(AU_ORDER, au_p[0])}
    return out


def final_beta(meta: dict) -> float:
    """The prior weight β of the last training epoch (what the exported model ends with)."""
    from fedpsyau_jax.network.priors import beta_schedule

    cfg = meta.get("config", {})
    epochs = int(cfg.get("train", {}).get("epochs", 1))
    return float(
        beta_schedule(
            cfg.get("train", {}).get("beta_schedule", "reference"),
            epochs,
            float(cfg.get("train", {}).get("beta0", 0.3)),
        )[-1]
    )


_APPLY: dict = {}


def _apply_fn(model, beta: float, flip_tta: bool = False):
    """The jitted eval apply of (model, β), cached so repeated calls (one per video
    interval) compile once. ``flip_tta``: every output is the mean of the logits on
    the batch and on its mirror image (``training.test_time_flip``)."""
    key = (model, beta, flip_tta)
    if key not in _APPLY:
        from fedpsyau_jax.training.test_time_flip import flip_averaged

        apply = lambda var, b: model.apply(var, b, beta, train=False)
        _APPLY[key] = jax.jit(flip_averaged(apply) if flip_tta else apply)
    return _APPLY[key]


def model_probabilities(model, v, meta, batch) -> tuple[np.ndarray, np.ndarray | None]:
    """(emotion probabilities (B, C), GAT AU probabilities (B, 12) or None) of an
    exported model (``load_model``) on a batch of SPEC §1 inputs. A model trained with
    ``pretrain.au_calibration=platt`` carries its per-AU maps in its metadata; its AU
    probabilities are then the calibrated ones (present at >= 0.5). A model whose run
    evaluated with ``train.eval_flip`` is applied the same way (mean logits over the
    sample and its mirror), so its outputs are the ones its thresholds were chosen on."""
    beta = final_beta(meta)
    variables = {"params": v["params"], "batch_stats": v["batch_stats"], "priors": v["priors"]}
    flip = bool(meta.get("config", {}).get("train", {}).get("eval_flip", False))
    emotion, au_gat, _ = _apply_fn(model, beta, flip)(variables, batch)
    probs = np.asarray(jax.nn.softmax(emotion, -1))
    if au_gat is None:
        return probs, None
    au = np.asarray(jax.nn.sigmoid(au_gat))
    cal = meta.get("au_calibration", {}).get("gat")
    if cal is not None:
        from fedpsyau_jax.training.au_calibration import apply_platt

        au = apply_platt(au, np.asarray(cal, np.float32))
    return probs, au
