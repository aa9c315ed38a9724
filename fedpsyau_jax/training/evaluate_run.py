"""A finished run read back: every fold's saved model re-evaluated on its test
subjects (and checked against the predictions stored at training time), and the
stored predictions of every fold (``report.run_predictions``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fedpsyau_jax.core.errors import InputFileError
from fedpsyau_jax.training import protocols
from fedpsyau_jax.training.batching import device_data, eval_plan, stack_plans
from fedpsyau_jax.training.checkpoints import CheckpointError, restore_checkpoint
from fedpsyau_jax.training.exported_model import abstract_variables
from fedpsyau_jax.training.fold_training import (
    MODEL_CHECKPOINT,
    chunk_folds,
    eval_steps,
    fold_dir,
    get_programs,
    load_fold_predictions,
)
from fedpsyau_jax.training.report import format_summary
from fedpsyau_jax.training.run_inputs import build_model, load_samples
from fedpsyau_jax.training.settings import settings_from_config
from fedpsyau_jax.training.train_state import TrainState


def evaluate(workdir, verbose: bool = True) -> dict:
    """Re-evaluate every fold's saved final model on its test subjects and pool.

    Also checks the stored predictions: ``summary["matches_stored_predictions"]``.
    """

    workdir = Path(workdir)
    cfg_path = workdir / "config.json"
    if not cfg_path.is_file():
        raise InputFileError(f"{workdir}: no config.json (not a training run directory)")
    cfg = ml_collections.ConfigDict(json.loads(cfg_path.read_text(encoding="utf-8")))
    s = settings_from_config(cfg)
    samples = load_samples(cfg)
    model = build_model(cfg, samples.num_classes)
    folds = [f for f in protocols.folds_from_config(cfg, samples) if len(f.test_idx)]
    target = abstract_variables(model)
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
