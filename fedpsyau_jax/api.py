"""Python API mirroring the CLI: ``train``, ``evaluate``, ``predict``.

    from fedpsyau_jax import api
    summary = api.train(load_config("configs/synthetic_demo.py"), "runs/demo")
    summary = api.evaluate("runs/demo")
    out = api.predict("clip.mp4", "runs/demo/final_model")

This module is a façade: each name lives in the layer that does the work, and is
documented there.

- training (``fedpsyau_jax.training``): ``train``, ``pretrain_au`` (stage 1 alone),
  ``evaluate``, ``run_predictions``, ``settings_from_config``, ``load_samples``,
  ``build_model``, ``learning_curves``, ``format_summary``, ``RunHooks``, and the AU
  heads' label-free ``au_reference_stats`` / ``write_au_reference_stats``;
- inference (``fedpsyau_jax.inference``): ``resolve_model_dir``, ``load_model``,
  ``apply_fn``, ``final_beta``, ``model_probabilities``, ``predict``;
- long videos: ``analyse_video`` (``fedpsyau_jax.video.analyse``; loads OpenCV and dlib
  on first use).

A run directory's layout is described in ``fedpsyau_jax.training.train_run``.
"""

from __future__ import annotations

from fedpsyau_jax.inference import (
    FINAL_MODEL,
    apply_fn,
    final_beta,
    load_model,
    model_from_meta,
    model_probabilities,
    predict,
    resolve_model_dir,
)
from fedpsyau_jax.training.au_alignment import au_reference_stats, write_au_reference_stats
from fedpsyau_jax.training.evaluate_run import evaluate
from fedpsyau_jax.training.fold_training import RunHooks
from fedpsyau_jax.training.report import format_summary, learning_curves, run_predictions
from fedpsyau_jax.training.run_inputs import build_model, fold_mesh, load_samples
from fedpsyau_jax.training.settings import TrainSettings, settings_from_config
from fedpsyau_jax.training.train_run import pretrain_au, train


def analyse_video(*args, **kwargs):
    """A long video → timeline of spotted, recognised expressions
    (``fedpsyau_jax.video.analyse.analyse_video``; imported on call, since it needs
    OpenCV and dlib)."""
    from fedpsyau_jax.video.analyse import analyse_video as _analyse

    return _analyse(*args, **kwargs)


__all__ = [
    "FINAL_MODEL",
    "RunHooks",
    "TrainSettings",
    "analyse_video",
    "apply_fn",
    "au_reference_stats",
    "build_model",
    "evaluate",
    "final_beta",
    "fold_mesh",
    "format_summary",
    "learning_curves",
    "load_model",
    "load_samples",
    "model_from_meta",
    "model_probabilities",
    "predict",
    "pretrain_au",
    "resolve_model_dir",
    "run_predictions",
    "settings_from_config",
    "train",
    "write_au_reference_stats",
]
