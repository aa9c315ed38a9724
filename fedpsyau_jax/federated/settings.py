"""The settings of a federated run, read from the same config schema as centralised
training: the ``train`` section gives every client's local training (one
``TrainSettings``), the ``fl`` section the federation (rounds, local epochs, prior,
algorithms, DP), and ``model`` the network.

    FLSettings(rounds, local_epochs, train: TrainSettings, prior, fallback_prior,
               train_fraction, checkpoint_every, reset_optimizer, eval_every_round)

``train.learning_rate`` > 0: every local step gets the rate × the schedule factor of
its place in the whole run (rounds·local_epochs epochs; the optimiser is built with
lr 1, as in centralised training); 0: the rate is inside the optimiser (no schedule).
The simulator (``experiment.federate``) and the Flower app (``flower.settings``) build
the model, the optimiser and the local trainer with the functions here, so both train
the same way from the same config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fedpsyau_jax.config_loading import ConfigError
from fedpsyau_jax.training.run_inputs import build_model
from fedpsyau_jax.training.settings import TrainSettings, train_settings

__all__ = [
    "FLSettings",
    "build_algorithm",
    "build_model",
    "build_optimizer",
    "build_trainer",
    "fl_settings",
    "fl_settings_from_config",
]

#: settings the federated trainer does not implement yet: a config that changes them
#: from these values is refused rather than silently trained without them
NOT_FEDERATED = {"fold_rng": "per_fold"}


@dataclasses.dataclass(frozen=True)
class FLSettings:
    """One federated run's settings (all fixed before training; none chosen on a
    client's test split).

    rounds, local_epochs: communication rounds and local epochs per round.
    train: each client's local training (the centralised ``TrainSettings``; its
      ``epochs`` is rounds·local_epochs, the length of the learning-rate schedule).
    prior: "client_train" (D from the client's own training AU labels; a client
      without AU labels falls back to the ``fallback_prior`` preset) or a preset name.
    train_fraction: a client's share of training samples (random 70/30 split, paper).
    checkpoint_every: rounds between resume checkpoints (0: never).
    reset_optimizer: False (default, chosen a priori): each client keeps its AdamW
      moments and step count across rounds — sites are persistent silos and a fresh
      optimiser would re-run its bias-corrected first steps every round; True: a fresh
      optimiser state every round, as the reference code builds a new AdamW per round.
    eval_every_round: the deployed model's test UF1 after every round, for
      convergence plots only.
    """

    rounds: int = 2
    local_epochs: int = 1
    train: TrainSettings = dataclasses.field(
        default_factory=lambda: TrainSettings(epochs=2, learning_rate=0.0, batch_size=8, eval_batch_size=32)
    )
    prior: str = "client_train"
    fallback_prior: str = "reference_dfme"
    train_fraction: float = 0.7
    checkpoint_every: int = 1
    reset_optimizer: bool = False
    eval_every_round: bool = False

    def __post_init__(self):
        if self.train.epochs != self.rounds * self.local_epochs:
            raise ValueError(
                f"FLSettings: train.epochs {self.train.epochs} must be rounds·local_epochs "
                f"= {self.rounds * self.local_epochs} (the schedules' length)"
            )


def fl_settings(*, oversample: bool = True, weighted_ce: bool = False, **kw) -> FLSettings:
    """``FLSettings`` from flat keyword arguments: its own fields (defaults as there) and
    any ``TrainSettings`` field for the local training (``learning_rate`` defaults to 0:
    the rate is inside the optimiser; batches of 8, evaluation batches of 32;
    ``oversample`` / ``weighted_ce`` set ``class_balance``). For scripts and tests."""
    own: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(FLSettings) if f.name != "train"}
    own.update({k: kw.pop(k) for k in list(kw) if k in own})
    kw.setdefault("learning_rate", 0.0)
    kw.setdefault("batch_size", 8)
    kw.setdefault("eval_batch_size", 32)
    kw.setdefault("class_balance", "weighted_ce" if weighted_ce else ("oversample" if oversample else "none"))
    return FLSettings(train=TrainSettings(epochs=own["rounds"] * own["local_epochs"], **kw), **own)


def fl_settings_from_config(cfg) -> FLSettings:
    """``FLSettings`` of a federated config (``train``, ``fl``, ``protocol`` and
    ``runtime`` sections)."""
    fl, t = cfg.fl, cfg.train
    for key, default in NOT_FEDERATED.items():
        if t.get(key, default) != default:
            raise ConfigError(
                f"train.{key}={t.get(key)!r}: not implemented in federated training; leave it at {default!r}"
            )
    rounds, local_epochs = int(fl.rounds), int(fl.local_epochs)
    return FLSettings(
        rounds=rounds,
        local_epochs=local_epochs,
        train=train_settings(t, epochs=rounds * local_epochs, seed=int(cfg.get("seed", 0))),
        prior=str(fl.prior),
        fallback_prior=str(fl.get("fallback_prior", "reference_dfme")),
        train_fraction=float(cfg.protocol.train_fraction),
        checkpoint_every=int(cfg.runtime.checkpoint_every),
        reset_optimizer=bool(fl.get("reset_optimizer", False)),
        eval_every_round=bool(fl.get("eval_every_round", False)),
    )


def build_optimizer(cfg, settings: FLSettings):
    """Every client's AdamW: with a learning rate in ``train``, lr 1 here and each
    step's rate (lr × schedule) an argument of the compiled step (``runner.round_lrs``);
    with ``fl.freeze_au_branch``, the AU branch neither trained nor sent."""
    from fedpsyau_jax.training.train_state import make_optimizer

    s = settings.train
    if s.learning_rate <= 0:
        raise ConfigError(f"train.learning_rate={s.learning_rate}: must be > 0")
    tx = make_optimizer(1.0, s.weight_decay, s.decay_kernels_only)
    if bool(cfg.fl.get("freeze_au_branch", False)):
        from fedpsyau_jax.federated.algorithms.frozen import frozen_optimizer

        from fedpsyau_jax.network.model import has_au_branch

        if not has_au_branch(cfg.model):
            raise ConfigError(
                "fl.freeze_au_branch=true needs FED-PsyAU with its AU branch "
                "(model.name=fedpsyau, model.use_au_branch=true)"
            )
        tx = frozen_optimizer(tx)
    return tx


def build_algorithm(cfg, name: str):
    """The algorithm ``name`` with the config's μ and θ (``fl.mu``, ``fl.theta``); with
    ``fl.freeze_au_branch`` its AU branch is neither trained nor sent."""
    from fedpsyau_jax.federated.algorithms import make_algorithm
    from fedpsyau_jax.federated.algorithms.frozen import freeze_au_branch

    algorithm = make_algorithm(name, mu=float(cfg.fl.mu), theta=float(cfg.fl.theta))
    return freeze_au_branch(algorithm) if bool(cfg.fl.get("freeze_au_branch", False)) else algorithm


def build_trainer(cfg, model, tx, settings: FLSettings, mesh=None):
    """The vmapped local trainer of every client (loss weights ``train.alpha``, flip,
    AU-loss normalisation and positive weights, mirror averaging, ``fl.mode``)."""
    from fedpsyau_jax.federated.local_training import make_local_trainer

    return make_local_trainer(
        model,
        tx,
        settings.train.alpha,
        mode=str(cfg.fl.get("mode", "scan")),
        hflip=settings.train.hflip,
        au_norm=settings.train.au_norm,
        au_pos_weight=settings.train.au_pos_weight == "balanced",
        eval_flip=settings.train.eval_flip,
        mesh=mesh,
    )
