"""The settings of a training run: ``TrainSettings`` and how a config fills it.

Every hyper-parameter of a run is here, fixed before training (none is chosen on test
data); a config's ``train`` section names them one to one.
"""

from __future__ import annotations

import dataclasses
from typing import cast

import numpy as np

from fedpsyau_jax.core.errors import UserError
from fedpsyau_jax.network.priors import beta_schedule
from fedpsyau_jax.training.protocols import Fold


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one run (all fixed before training; none chosen on test data).

    epochs: fixed number of epochs; folds are evaluated after the last one.
    batch_size / eval_batch_size: examples per step.
    learning_rate, weight_decay: AdamW (peak learning rate of the schedule).
    lr_schedule: "constant" or "warmup_cosine" (linear warm-up over ``warmup_epochs``,
      then cosine decay to ``min_lr_ratio``·lr at the end of the last epoch). The
      rate of each step is an argument of the compiled step, like β; every fold runs
      the whole schedule over its own steps.
    decay_kernels_only: weight decay only on weight matrices / kernels.
    class_balance: "oversample" (resample every class up to the largest, reference
      practice), "weighted_ce" (CE weighted by n / (C·n_c) of the fold's training
      labels; the epoch stays one pass over the data) or "none".
    hflip: probability of the flow-respecting horizontal flip per training sample.
    au_norm: AU BCE normalisation (``losses.masked_au_bce``).
    au_pos_weight: "none" (plain BCE, SPEC §6) or "balanced" (each AU's positive term
      weighted n⁻/n⁺ of the fold's training labels, ``losses.au_pos_weights``).
    alpha: loss weights (emotion CE, BCE head A, BCE head B).
    beta_schedule, beta0: β per epoch (``priors.beta_schedule``), restarted per fold.
    seed: run seed; fold f's randomness is a function of (seed, f) only.
    fold_rng: "per_fold" (each fold draws its own initialisation, dropout and batch
      order from (seed, f)) or "shared" (every fold draws them from (seed, 0): common
      random numbers, so folds differ only by their data; ``rng_index``).
    eval_flip: every evaluated output (test folds, stage-1 validation predictions) is
      the mean of the logits on the sample and on its mirror image
      (``test_time_flip``); training is unchanged.
    fold_chunk: folds trained at once by vmap (1 = one fold at a time).
    checkpoint_every: save the chunk state every this many epochs (0 = never).
    """

    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0
    decay_kernels_only: bool = False
    class_balance: str = "oversample"
    hflip: float = 0.0
    au_norm: str = "known_entries"
    au_pos_weight: str = "none"
    alpha: tuple[float, float, float] = (0.2, 0.8, 0.8)
    beta_schedule: str = "reference"
    beta0: float = 0.3
    seed: int = 0
    fold_rng: str = "per_fold"
    eval_flip: bool = False
    fold_chunk: int = 8
    checkpoint_every: int = 1

    def __post_init__(self):
        if self.class_balance not in CLASS_BALANCE:
            raise UserError(f"train.class_balance {self.class_balance!r}: choose from {', '.join(CLASS_BALANCE)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"train.lr_schedule {self.lr_schedule!r}: choose from {', '.join(LR_SCHEDULES)}")
        if self.fold_rng not in FOLD_RNG:
            raise UserError(f"train.fold_rng {self.fold_rng!r}: choose from {', '.join(FOLD_RNG)}")

    def rng_index(self, fold: Fold) -> int:
        """The fold index the fold's random streams are drawn with (``fold_rng``)."""
        return 0 if self.fold_rng == "shared" else int(fold.index)

    @property
    def oversample(self) -> bool:
        return self.class_balance == "oversample"

    @property
    def weighted_ce(self) -> bool:
        return self.class_balance == "weighted_ce"

    def betas(self) -> np.ndarray:
        return beta_schedule(self.beta_schedule, self.epochs, self.beta0)

    def learning_rates(self, epoch: int, live: np.ndarray) -> np.ndarray:
        """Learning rate of every step of ``epoch`` for each fold: live (K, S) bool marks
        each fold's real steps; fold k's j-th live step is at progress
        (epoch + j / n_k) / epochs of its schedule. Returns (K, S) float32."""
        live = np.asarray(live, bool)
        n = np.maximum(live.sum(axis=1, keepdims=True), 1)
        j = np.cumsum(live, axis=1) - 1  # index among live steps
        progress = (epoch + np.clip(j, 0, None) / n) / self.epochs
        return (self.learning_rate * lr_factor(self, progress)).astype(np.float32)


CLASS_BALANCE = ("oversample", "weighted_ce", "none")
LR_SCHEDULES = ("constant", "warmup_cosine")
FOLD_RNG = ("per_fold", "shared")


def lr_factor(s: "TrainSettings", progress: np.ndarray) -> np.ndarray:
    """Schedule factor in [0, 1] at training progress in [0, 1) (fraction of all steps)."""
    p = np.asarray(progress, np.float64)
    if s.lr_schedule == "constant":
        return np.ones_like(p)
    warm = min(max(s.warmup_epochs / s.epochs, 0.0), 1.0)
    # Linear warm-up that reaches the peak at the end of the warm-up (first step > 0).
    up = np.minimum((p + 1e-12) / warm, 1.0) if warm > 0 else np.ones_like(p)
    q = np.clip((p - warm) / max(1.0 - warm, 1e-12), 0.0, 1.0)
    cos = s.min_lr_ratio + (1.0 - s.min_lr_ratio) * 0.5 * (1.0 + np.cos(np.pi * q))
    return np.where(p < warm, up, cos)


def train_settings(t, epochs: int, seed: int = 0, fold_chunk: int = 1, checkpoint_every: int = 1) -> TrainSettings:
    """The ``TrainSettings`` of a config's ``train`` section ``t`` — the one reading of
    it, for centralised and federated training alike. ``epochs``, ``seed`` and the
    runtime fields come from where each verb keeps them; keys added after a run was
    saved take the value it was trained with."""
    return TrainSettings(
        epochs=int(epochs),
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
        alpha=cast(tuple[float, float, float], tuple(float(a) for a in t.alpha)),
        beta_schedule=str(t.beta_schedule),
        beta0=float(t.beta0),
        seed=int(seed),
        fold_rng=str(t.get("fold_rng", "per_fold")),
        eval_flip=bool(t.get("eval_flip", False)),
        fold_chunk=int(fold_chunk),
        checkpoint_every=int(checkpoint_every),
    )


def settings_from_config(cfg) -> TrainSettings:
    """The ``TrainSettings`` of a centralised config (``train`` section, ``seed`` and
    ``runtime``)."""
    return train_settings(
        cfg.train,
        epochs=int(cfg.train.epochs),
        seed=int(cfg.seed),
        fold_chunk=int(cfg.runtime.fold_chunk),
        checkpoint_every=int(cfg.runtime.checkpoint_every),
    )
