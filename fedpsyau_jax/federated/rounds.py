"""The stacked simulator's one round loop, plain or under client-level DP.

``run_federation(..., dp=None)`` trains one chunk of (seed × client) rows for one
algorithm and split over all rounds and returns per-row scores and per-round losses;
with ``dp`` (``privacy.DPSettings``) the same loop runs the DP mechanism of
``dp_runner`` (client sampling, clipped contributions, a noisy release and its ε).
A round is, in either case:

1. local training of the rows that take part (``server.train``: all rows, or this
   round's sampled clients moved to their start point first);
2. after the last round's training, each client's ``personal`` model is evaluated;
3. the communication step (``server.communicate``: the algorithm's aggregation, or the
   noisy release under DP);
4. a fresh optimiser state where ``reset_optimizer`` asks for one; with
   ``eval_every_round`` (plain runs) the deployed models' test UF1 for the curves;
5. every ``checkpoint_every`` rounds a resume checkpoint (``save_round``).

After the last round each client is evaluated with the model the algorithm hands it
(``deployed``, the headline number). Step plans, dropout keys and client samples derive
from (seed, client, round), so a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from fedpsyau_jax.federated.algorithms.base import Algorithm
from fedpsyau_jax.federated.dp_runner import DPRounds
from fedpsyau_jax.federated.local_training import LocalTrainer
from fedpsyau_jax.federated.runner import PlainRounds, RowPlan, _scores, au_scores
from fedpsyau_jax.federated.settings import FLSettings
from fedpsyau_jax.training.checkpoints import latest_checkpoint, restore_checkpoint, save_checkpoint


def run_federation(
    *,
    trainer: LocalTrainer,
    algorithm: Algorithm,
    model,
    tx,
    samples,
    data,
    rows: RowPlan,
    settings: FLSettings,
    dp=None,
    workdir: Path | None = None,
    progress: bool = True,
    desc: str = "",
    keep_states: list | None = None,
    pretrained=None,
) -> dict:
    """Train and evaluate one chunk; returns per-row scores and per-round losses (under
    DP also ε, the fraction of clipped updates and the participants of every round).
    ``keep_states`` (a list, plain runs): the deployed stacked states after the last
    round are appended to it (e.g. for a new site's start model).

    ``data`` is ``batching.device_data(samples)`` (on device once, shared by all rows).
    """
    labels = np.asarray(samples.label)
    cls = PlainRounds if dp is None else DPRounds
    server = cls(
        trainer,
        algorithm,
        model,
        tx,
        rows,
        settings,
        data,
        labels,
        samples.num_classes,
        dp=dp,
        samples=samples,
        pretrained=pretrained,
    )
    betas_all = settings.train.betas()  # β of every global epoch (rounds·local_epochs)
    losses = np.full((settings.rounds, rows.num_rows), np.nan, np.float32)
    curve = np.full((settings.rounds, rows.num_rows), np.nan, np.float32)  # eval_every_round
    start = 0
    ckpt_dir = Path(workdir) / "checkpoints" if workdir is not None else None
    name = latest_checkpoint(ckpt_dir) if ckpt_dir is not None else None
    if ckpt_dir is not None and name is not None:
        target = server.checkpoint_tree()
        target["losses"] = losses
        if server.keeps_curve:
            target["curve"] = curve
        restored, meta = restore_checkpoint(ckpt_dir, name, target)
        server.restore(restored, meta)
        losses = np.asarray(restored["losses"])
        if server.keeps_curve:
            curve = np.asarray(restored["curve"])
        start = int(meta["next_round"])

    personal = None
    t0 = time.perf_counter()
    bar = tqdm(
        total=settings.rounds,
        initial=start,
        desc=desc or server.default_desc,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    for rnd in range(start, settings.rounds):
        server.begin_round(rnd)
        trained = server.train(rnd, betas_all)
        losses[rnd, trained.rows] = trained.losses
        if rnd == settings.rounds - 1:
            personal = server.evaluate_trained(betas_all[-1])
        server.communicate(rnd)
        if settings.reset_optimizer:
            server.reset_optimizer()
        server.end_round(rnd)
        if settings.eval_every_round and server.keeps_curve:
            pred = server.evaluate_deployed_now(betas_all[(rnd + 1) * settings.local_epochs - 1])
            curve[rnd] = [sc["uf1"] for sc in _scores(rows, labels, pred, samples.num_classes)]
        bar.update(1)
        bar.set_postfix(server.postfix(losses[rnd], trained))
        if (
            ckpt_dir is not None
            and settings.checkpoint_every
            and ((rnd + 1) % settings.checkpoint_every == 0 and rnd + 1 < settings.rounds)
        ):
            tree, meta, by_part = server.checkpoint()
            tree["losses"] = losses
            if server.keeps_curve:
                tree["curve"] = curve
            save_round(ckpt_dir, rnd, tree, meta, by_part)
    bar.close()
    au_deployed = server.evaluate_au_deployed(betas_all[-1]) if hasattr(server, "evaluate_au_deployed") else None
    deployed = server.evaluate_deployed_final(betas_all[-1])
    if keep_states is not None:
        if dp is not None:
            raise ValueError("keep_states: the DP simulator lets its states go after the run")
        keep_states.append(jax.tree.map(lambda x: x[: rows.num_rows], server.states))
    if personal is None:  # resumed after the last round's training (cannot happen
        personal = deployed  # with the save rule above; kept for safety)
    result = {
        "algorithm": algorithm.name,
        "seeds": list(rows.seeds),
        "clients": list(rows.client_names),
        "num_train": rows.num_samples.astype(int).tolist(),
        "num_test": [int(len(t)) for t in rows.test_idx],
        "loss_per_round": losses.tolist(),  # NaN: a row not trained that round (DP sampling)
        "deployed": _scores(rows, labels, deployed, samples.num_classes),
        "personal": _scores(rows, labels, personal, samples.num_classes),
        "train_seconds": time.perf_counter() - t0,
    }
    if au_deployed is not None:  # AU heads of the deployed models on each client's test split
        result["deployed_au"] = {h: au_scores(rows, samples, p) for h, p in zip(("gat", "afe"), au_deployed)}
    if settings.eval_every_round and server.keeps_curve:
        result["deployed_uf1_per_round"] = curve.tolist()  # (rounds, rows); plots only
    result.update(server.record())
    return result


def run_dp_federation(*, dp, **kwargs) -> dict:
    """``run_federation`` under client-level DP (``dp``: ``privacy.DPSettings``)."""
    return run_federation(dp=dp, **kwargs)


def save_round(ckpt_dir: Path, rnd: int, tree: dict, meta: dict, by_part: bool = False) -> None:
    """The resume checkpoint after round ``rnd`` (``round_<rnd+1>``; meta records the
    next round); only the newest is kept (the stacked states are large)."""
    name = f"round_{rnd + 1:04d}"
    save_checkpoint(ckpt_dir, name, tree, {"next_round": rnd + 1, **meta}, by_part=by_part)
    for old in Path(ckpt_dir).glob("round_*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
