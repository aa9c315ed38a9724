"""The settings of a training run: ``TrainSettings`` and how a config fills it.

Every hyper-parameter of a run is here, fixed before training (none is chosen on test
data); a config's ``train`` section names them one to one.
"""

from __future__ import annotations

import dataclasses

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
    au_pos_weight: "none" (plain BCE) or "balanced" (each AU's positive term
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
        for name, choices in (("class_balance", CLASS_BALANCE), ("lr_schedule", LR_SCHEDULES), ("fold_rng", FOLD_RNG)):
            value = getattr(self, name)
            if value not in choices:
                raise UserError(f"train.{name} {value!r}: choose from {', '.join(choices)}")

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


#: how a config value becomes a ``TrainSettings`` field (by the field's annotation)
_CONVERT = {"int": int, "float": float, "str": str, "bool": bool}


def train_settings(t, epochs: int, seed: int = 0, fold_chunk: int = 1, checkpoint_every: int = 1) -> TrainSettings:
    """The ``TrainSettings`` of a config's ``train`` section ``t`` — the one reading of
    it, for centralised and federated training alike: every field from the key of its
    name (a key added after a run was saved takes the field's default, the value that
    run was trained with). ``epochs``, ``seed`` and the runtime fields come from where
    each verb keeps them."""
    fixed = {"epochs": int(epochs), "seed": int(seed), "fold_chunk": int(fold_chunk)}
    fixed["checkpoint_every"] = int(checkpoint_every)
    values: dict = {}
    for f in dataclasses.fields(TrainSettings):
        if f.name in fixed:
            values[f.name] = fixed[f.name]
        elif f.name in t:
            v = t[f.name]
            values[f.name] = tuple(float(a) for a in v) if f.name == "alpha" else _CONVERT[str(f.type)](v)
    return TrainSettings(**values)


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
