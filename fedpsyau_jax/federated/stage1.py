"""Stage 1 in federation: the AU branch pre-trained on the sites' AU labels before the
emotion rounds, as the centralised recipe pre-trains it inside every fold.

``fl.pretrain_rounds = R`` (0: none) runs R rounds × ``fl.local_epochs`` of AU-only
training (α = (0, 1, 1), no class balance, ``pretrain.au_pos_weight``, the rate
``pretrain.learning_rate``, constant) on every site's own training rows, then stage 2 (the
algorithm's emotion rounds) starts each site with the stage-1 AU branch (``AU_BRANCH``
modules) and a fresh rest. ``fl.pretrain_mode`` says how stage 1 shares:

- ``federated``: FedAvg over the sites, each weighted by its AU-labelled training
  samples (a site without AU coding, such as SMIC, trains but weighs nothing): every
  site starts stage 2 with the same AU branch.
- ``local``: every site pre-trains alone (no communication): its own AU branch.

Stage 1 of a (split, seed chunk) is shared by every algorithm of the run and kept in
``<workdir>/<split>/stage1_<mode>/seeds_<a>-<b>`` (resumable; a finished one is read
back, never retrained). It sees only the federating sites' training rows: never a test
split, never a new site.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from fedpsyau_jax.config_loading import ConfigError
from fedpsyau_jax.federated.runner import RowPlan
from fedpsyau_jax.federated.settings import FLSettings

PRETRAIN_MODES = ("federated", "local")
STAGE1_MODEL = "stage1_model"


def stage1_settings(cfg, settings: FLSettings) -> FLSettings | None:
    """The stage-1 ``FLSettings`` of a federated config, None without ``fl.pretrain_rounds``."""
    rounds = int(cfg.fl.get("pretrain_rounds", 0) or 0)
    if rounds <= 0:
        return None
    from fedpsyau_jax.network.model import has_au_branch

    if not has_au_branch(cfg.model):
        raise ConfigError("fl.pretrain_rounds: stage 1 pre-trains the AU branch; the model has none")
    mode = str(cfg.fl.get("pretrain_mode", "federated"))
    if mode not in PRETRAIN_MODES:
        raise ConfigError(f"fl.pretrain_mode {mode!r}: choose from {', '.join(PRETRAIN_MODES)}")
    p = cfg.pretrain
    train = dataclasses.replace(
        settings.train,
        epochs=rounds * settings.local_epochs,
        learning_rate=float(p.learning_rate),
        lr_schedule="constant",
        alpha=(0.0, 1.0, 1.0),
        class_balance="none",
        au_pos_weight=str(p.au_pos_weight),
        eval_flip=False,
    )
    return dataclasses.replace(settings, rounds=rounds, train=train, eval_every_round=False)


def au_weighted_rows(rows: RowPlan, samples) -> RowPlan:
    """``rows`` with each row weighted by its AU-labelled training samples (FedAvg of
    stage 1); a row without any weighs 0."""
    labelled = np.asarray(samples.au_mask).sum(1) > 0
    n = np.array([labelled[t].sum() for t in rows.train_idx], np.float32)
    return dataclasses.replace(rows, num_samples=n)


def run_stage1(*, cfg, settings1: FLSettings, rows: RowPlan, samples, data, model, tx, build_trainer, cdir: Path, run):
    """(params, batch_stats) of every row after stage 1 (leading row axis), trained in
    ``cdir`` or read back from it. ``build_trainer(settings)`` -> the stage-1
    ``LocalTrainer``; ``run`` is ``rounds.run_federation`` with the run's shared
    arguments bound."""
    from fedpsyau_jax.federated.algorithms import make_algorithm
    from fedpsyau_jax.training.checkpoints import latest_checkpoint, restore_checkpoint, save_checkpoint

    cdir = Path(cdir)
    mode = str(cfg.fl.get("pretrain_mode", "federated"))
    weighted = au_weighted_rows(rows, samples)
    if float(weighted.num_samples.sum()) == 0.0:
        raise ConfigError("fl.pretrain_rounds: no federating site has AU-labelled training samples")
    kept: list = []
    if latest_checkpoint(cdir) == STAGE1_MODEL:
        target = _target(model, tx, rows)
        tree, _ = restore_checkpoint(cdir, STAGE1_MODEL, target)
        return tree["params"], tree["batch_stats"]
    run(
        trainer=build_trainer(settings1),
        algorithm=make_algorithm("fedavg" if mode == "federated" else "local"),
        rows=weighted,
        settings=settings1,
        workdir=cdir,
        desc=f"stage 1 ({mode})",
        keep_states=kept,
    )
    states = kept[0]
    tree = {"params": states.params, "batch_stats": states.batch_stats}
    save_checkpoint(cdir, STAGE1_MODEL, jax.tree.map(np.asarray, tree), {"mode": mode, "rows": rows.num_rows})
    import shutil

    shutil.rmtree(cdir / "checkpoints", ignore_errors=True)  # the round checkpoints of a finished stage 1
    return tree["params"], tree["batch_stats"]


def _target(model, tx, rows: RowPlan) -> dict:
    """Shapes of the stored stage-1 tree (a leading row axis)."""
    from fedpsyau_jax.training.train_state import create_train_state

    st = jax.eval_shape(lambda k: create_train_state(model, tx, k), jax.random.key(0))
    add = lambda x: jax.ShapeDtypeStruct((rows.num_rows, *x.shape), x.dtype)
    return {"params": jax.tree.map(add, st.params), "batch_stats": jax.tree.map(add, st.batch_stats)}
