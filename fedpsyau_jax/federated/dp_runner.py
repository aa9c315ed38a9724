"""The stacked simulator under client-level DP and client sampling (``dp_aggregation``).

``run_dp_federation(..., dp=DPSettings)`` runs one chunk like ``runner.run_federation``
and returns the same result dict plus ``epsilon_per_round``, ``clip_fraction_per_round``
and ``participants_per_round``. A round, as a Flower deployment runs it:

1. sample this round's clients (``privacy.sample_participants``; seeded by the run's
   first seed and the round, so a resumed run draws the same clients);
2. each sampled client turns the last release R into its start point
   (``Algorithm.combine_noisy_mean``, with its own contribution to R if it was in the
   round that made R) — clients not sampled are left untouched, as in a deployment;
3. only the sampled clients train (gathered into a smaller stack: at 68 subject-level
   clients and 10 % sampling a round trains 7 rows, not 68);
4. the server releases R' = R + (Σ clip(U_i − R) + noise) / m (``dp_reduce``; computed
   from the sampled rows alone, ``dp_step``; R is kept once per group) and ε after
   this round is computed (``privacy.epsilon_after_rounds``).
Steps 2–4 touch the sampled rows only, and the full stacks are updated in place: at 68
people one copy of the models with their Adam state is ≈ 3 GB, and the round's work
and memory then scale with the ≈ 7 sampled, not with all 68.
At the end every client takes the last release as in step 2 (``deployed``);
``personal`` is each client's model after its own last local training.

With ``sampling="all"``, z → 0 and C large this is FedAvg/FedProx/FedRep/P-FedProx with
equal client weights (tested). Resumable per round like ``run_federation``.
"""

from __future__ import annotations

import functools
import math
import shutil
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from fedpsyau_jax.federated.algorithms.base import Algorithm
from fedpsyau_jax.federated.dp_aggregation import apply_step, dp_reduce, dp_step, upload_tree
from fedpsyau_jax.federated.local_training import LocalTrainer
from fedpsyau_jax.federated.privacy import (
    DPSettings,
    PrivacyError,
    denominator,
    epsilon_after_rounds,
    sample_participants,
)
from fedpsyau_jax.federated.runner import (
    RowPlan,
    _evaluate,
    _pad_rows,
    _raw_keys,
    _scores,
    init_row_states,
    reset_optimizer_states,
    round_inputs,
    round_lrs,
    row_class_weights,
)
from fedpsyau_jax.federated.server_round import make_init
from fedpsyau_jax.federated.settings import FLSettings
from fedpsyau_jax.federated.upload import make_upload
from fedpsyau_jax.network.priors import beta_schedule
from fedpsyau_jax.training.checkpoints import latest_checkpoint, restore_checkpoint, save_checkpoint
from fedpsyau_jax.training.sharding import padded_width, replicate, shard_rows

#: Poisson sampling draws a different number of clients each round; the trained stack
#: is padded up to a multiple of this so only a few shapes ever compile.
ROW_BUCKET = 4


def _where_rows(p: jax.Array, new, old):
    """Row-wise select over a pytree: rows with p = 1 from ``new``, the rest from ``old``."""

    def leaf(a, b):
        return jnp.where(p.reshape((-1,) + (1,) * (a.ndim - 1)) > 0, a, b)

    return jax.tree.map(leaf, new, old)


@functools.lru_cache(maxsize=32)
def _start_points(algorithm: Algorithm):
    """jit: (states, anchors, p_now, p_prev, release, contribution, m) -> (states, anchors)
    with the sampled rows moved to their start point from the release."""

    def fn(states, anchors, p_now, p_prev, release, contribution, denom):
        msg = algorithm.combine_noisy_mean(states.params, p_prev, release, contribution, denom)
        moved, new_anchor = algorithm.client_update(states, msg)
        states = states.replace(
            params=_where_rows(p_now, moved.params, states.params),
            batch_stats=_where_rows(p_now, moved.batch_stats, states.batch_stats),
        )
        return states, _where_rows(p_now, new_anchor, anchors)

    return jax.jit(fn)


@functools.lru_cache(maxsize=32)
def _release(algorithm: Algorithm, num_groups: int):
    """jit: (states, reference, p, key, groups, C, z, m) -> (R', contributions, norms) over
    all rows: the mechanism as defined; the runner computes the same from the sampled
    rows (``_step_of_rows``; tests check they agree)."""

    def fn(states, reference, participate, key, groups, clip_norm, noise_multiplier, denom):
        up = make_upload(states, jnp.ones_like(participate), algorithm)
        return dp_reduce(up, reference, participate, key, groups, num_groups, clip_norm, noise_multiplier, denom)

    return jax.jit(fn)


@functools.lru_cache(maxsize=32)
def _step_of_rows(algorithm: Algorithm, num_groups: int):
    """jit: (states, reference, p, key, groups, C, z, m) -> (step per group, contributions,
    norms) of the rows passed (the sampled ones): ``_release`` without touching the
    others, so a round's server work scales with the sampled clients, not all K."""

    def fn(states, reference, participate, key, groups, clip_norm, noise_multiplier, denom):
        up = make_upload(states, jnp.ones_like(participate), algorithm)
        return dp_step(up, reference, participate, key, groups, num_groups, clip_norm, noise_multiplier, denom)

    return jax.jit(fn)


# The full stacks (every client's model, Adam state, anchor, R and contribution: ≈ 1 GB
# each at 68 people) are updated in place (donated), so a round holds one copy of each.
_apply_step = jax.jit(apply_step, donate_argnums=0)


def _take(tree, rows: np.ndarray):
    return jax.tree.map(lambda x: x[rows], tree)


@functools.partial(jax.jit, donate_argnums=0)
def _put_rows(tree, rows, part):
    return jax.tree.map(lambda x, y: x.at[rows].set(y[: rows.shape[0]]), tree, part)


def _put(tree, rows: np.ndarray, part):
    """``tree`` with rows ``rows`` replaced by the first len(rows) rows of ``part``; the
    old ``tree`` is consumed (donated)."""
    if not len(rows):
        return tree
    return _put_rows(tree, jnp.asarray(rows), part)


def _bucketed(sel: np.ndarray, total: int, devices: int = 1) -> np.ndarray:
    """``sel`` padded (with its first row repeated) to a multiple of ROW_BUCKET ≤ total;
    on several devices to a multiple of lcm(ROW_BUCKET, devices) (the sharded trainer
    splits the row axis evenly; repeated rows are masked, so the cap is not needed)."""
    if not len(sel):
        return sel
    if devices > 1:
        b = math.lcm(ROW_BUCKET, devices)
        want = -(-len(sel) // b) * b
    else:
        want = min(total, -(-len(sel) // ROW_BUCKET) * ROW_BUCKET)
    if want <= len(sel):
        return sel
    return np.concatenate([sel, np.full(want - len(sel), sel[0], sel.dtype)])


def _evaluate_all(trainer, states, data, rows: RowPlan, settings, beta, place) -> np.ndarray:
    """Predictions of every row: ``runner._evaluate`` on the states padded to the device
    count (copies of row 0, mask 0; the padding is cut off again)."""
    pad = padded_width(rows.num_rows, trainer.mesh) - rows.num_rows
    return _evaluate(trainer, place(_pad_rows(states, pad)), data, rows, settings, beta, pad, place)


def run_dp_federation(
    *,
    trainer: LocalTrainer,
    algorithm: Algorithm,
    model,
    tx,
    samples,
    data,
    rows: RowPlan,
    settings: FLSettings,
    dp: DPSettings,
    workdir: Path | None = None,
    progress: bool = True,
    desc: str = "",
) -> dict:
    """One chunk under client-level DP; returns ``run_federation``'s dict plus the
    privacy record (ε per round, fraction of clipped updates, participants)."""
    if algorithm.reduce is None:
        raise PrivacyError(
            f"dp: algorithm {algorithm.name!r} does not communicate; there is "
            "nothing to make private (run it without fl.dp)"
        )
    k = len(rows.client_names)
    num_groups = len(rows.seeds)
    dp = DPSettings(**{**dp.__dict__, "num_clients": k})
    dp.check()
    denom = denominator(dp, k)
    if denom <= 0:
        raise PrivacyError(f"dp: divisor {denom} (sampling {dp.sampling}) must be > 0")
    labels = np.asarray(samples.label)
    groups = jnp.asarray(rows.groups)
    mesh = trainer.mesh
    n_dev = 1 if mesh is None else int(mesh.devices.size)
    # The server-side state (reference, contributions, every row's model) stays on one
    # device; only what a trainer call gets is padded and split over the devices.
    place = (lambda t: t) if mesh is None else (lambda t: shard_rows(t, mesh))
    if mesh is not None:
        data = replicate(data, mesh)
    total_epochs = settings.rounds * settings.local_epochs
    betas_all = beta_schedule(settings.train.beta_schedule, total_epochs, settings.train.beta0)
    n_rows = rows.num_rows

    states = make_init(algorithm, num_groups)(init_row_states(model, tx, rows, trainer), groups)
    anchors = jax.tree.map(jnp.copy, states.params)
    # R_0: the common init of each group. R is kept once per group (G, …), not per row
    # (at 68 people a per-row copy is ≈ 1 GB); a row reads its group's. Copied: R is
    # updated in place, and the upload's leaves are the params' own buffers.
    group_of = np.asarray(rows.groups)
    first_rows = np.array([np.flatnonzero(group_of == g)[0] for g in range(num_groups)])
    uploads = upload_tree(make_upload(states, jnp.ones(n_rows), algorithm))
    contribution = jax.tree.map(jnp.copy, uploads)
    reference = jax.tree.map(jnp.copy, _take(uploads, first_rows))
    del uploads
    every_group = jnp.arange(num_groups)
    p_prev = np.zeros(n_rows, np.float32)
    losses = np.full((settings.rounds, n_rows), np.nan, np.float32)
    record: dict[str, list] = {"epsilon": [], "clip_fraction": [], "participants": [], "seconds": []}
    start = 0
    ckpt_dir = Path(workdir) / "checkpoints" if workdir is not None else None
    if ckpt_dir is not None and latest_checkpoint(ckpt_dir):
        name = latest_checkpoint(ckpt_dir)
        assert name is not None  # checked just above
        target = {
            "states": _raw_keys(states),
            "anchors": anchors,
            "reference": reference,
            "contribution": contribution,
            "p_prev": p_prev,
            "losses": losses,
        }
        restored, meta = restore_checkpoint(ckpt_dir, name, target)
        st = jax.tree.map(jnp.asarray, restored["states"])
        states = st.replace(key=jax.random.wrap_key_data(st.key))
        anchors, reference, contribution = (
            jax.tree.map(jnp.asarray, restored[n]) for n in ("anchors", "reference", "contribution")
        )
        p_prev, losses = np.asarray(restored["p_prev"]), np.asarray(restored["losses"])
        record = meta["record"]
        start = int(meta["next_round"])

    class_w = row_class_weights(rows, labels, samples.num_classes, settings)
    start_points = _start_points(algorithm)
    step_of_rows = _step_of_rows(algorithm, num_groups)
    noise_key = jax.random.key(20_000 + rows.seeds[0])
    personal = None
    st_sub = an_sub = None
    t0 = time.perf_counter()
    bar = tqdm(
        total=settings.rounds,
        initial=start,
        desc=desc or f"{algorithm.name} (DP)",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    for rnd in range(start, settings.rounds):
        t_round = time.perf_counter()
        p = sample_participants(np.random.default_rng([rows.seeds[0], rnd, 11]), dp, k, num_groups)
        sel = np.flatnonzero(p)
        # Only the sampled rows move, train and upload: they are gathered into a small
        # stack (padded to a bucket; with nobody sampled a dummy row that uploads
        # nothing, so the release still gets its noise).
        sub = _bucketed(sel, n_rows, n_dev) if len(sel) else np.zeros(1, np.int64)
        live = np.zeros(len(sub), np.float32)
        live[: len(sel)] = 1.0
        live_j = jnp.asarray(live)
        st_sub, an_sub = _take(states, sub), _take(anchors, sub)
        if rnd > 0:
            st_sub, an_sub = start_points(
                st_sub,
                an_sub,
                live_j,
                jnp.asarray(p_prev[sub]),
                _take(reference, group_of[sub]),
                _take(contribution, sub),
                denom,
            )
        if len(sel):
            idx, mask, betas = round_inputs(rows, labels, rnd, settings, betas_all)
            lrs = round_lrs(settings, rnd, mask, idx.shape[1] // settings.local_epochs)
            sub_mask = mask[sub].copy()
            sub_mask[len(sel) :] = 0.0  # padding rows train on nothing
            trained, mean_loss, _ = trainer.train(
                place(st_sub),
                place(an_sub),
                algorithm.mu,
                data,
                place(idx[sub]),
                place(sub_mask),
                betas,
                None if lrs is None else place(lrs[sub]),
                None if class_w is None else place(class_w[sub]),
            )
            st_sub = trained if mesh is None else jax.device_put(trained, jax.devices()[0])
            losses[rnd, sel] = np.asarray(mean_loss)[: len(sel)]
            states = _put(states, sel, st_sub)
            anchors = _put(anchors, sel, an_sub)
        if rnd == settings.rounds - 1:
            personal = _evaluate_all(trainer, states, data, rows, settings, betas_all[-1], place)
        step, contrib_sub, norms = step_of_rows(
            st_sub,
            _take(reference, group_of[sub]),
            live_j,
            jax.random.fold_in(noise_key, rnd),
            groups[jnp.asarray(sub)],
            dp.clip_norm,
            dp.noise_multiplier,
            denom,
        )
        reference = _apply_step(reference, step, every_group)
        contribution = _put(contribution, sel, contrib_sub)
        p_prev = p
        if settings.reset_optimizer:
            states = reset_optimizer_states(tx, states)
        norms = np.asarray(norms)[: len(sel)]
        record["epsilon"].append(epsilon_after_rounds(dp, rnd + 1))
        record["clip_fraction"].append(float(np.mean(norms > dp.clip_norm)) if len(sel) else 0.0)
        record["participants"].append(int(len(sel)))
        record["seconds"].append(time.perf_counter() - t_round)
        bar.update(1)
        bar.set_postfix(
            loss=f"{np.nanmean(losses[rnd]) if len(sel) else float('nan'):.3f}", eps=f"{record['epsilon'][-1]:.2f}"
        )
        if (
            ckpt_dir is not None
            and settings.checkpoint_every
            and ((rnd + 1) % settings.checkpoint_every == 0 and rnd + 1 < settings.rounds)
        ):
            _save_round(ckpt_dir, rnd, states, anchors, reference, contribution, p_prev, losses, record)
    bar.close()
    ones = jnp.ones(n_rows, jnp.float32)
    deployed_states, _ = start_points(
        states, anchors, ones, jnp.asarray(p_prev), _take(reference, group_of), contribution, denom
    )
    # the server's and the clients' stacks are done with: let them go before the
    # evaluation of all rows (at 68 people the end of a run was its memory peak)
    del states, anchors, reference, contribution, st_sub, an_sub
    deployed = _evaluate_all(trainer, deployed_states, data, rows, settings, betas_all[-1], place)
    if personal is None:
        personal = deployed
    return {
        "algorithm": algorithm.name,
        "seeds": list(rows.seeds),
        "clients": list(rows.client_names),
        "num_train": rows.num_samples.astype(int).tolist(),
        "num_test": [int(len(t)) for t in rows.test_idx],
        "loss_per_round": losses.tolist(),  # NaN: not sampled that round
        "deployed": _scores(rows, labels, deployed, samples.num_classes),
        "personal": _scores(rows, labels, personal, samples.num_classes),
        "train_seconds": time.perf_counter() - t0,
        "dp": {**dp.__dict__, "divisor": denom},
        "epsilon_per_round": record["epsilon"],
        "clip_fraction_per_round": record["clip_fraction"],
        "participants_per_round": record["participants"],
        "seconds_per_round": record["seconds"],
    }


def _save_round(ckpt_dir: Path, rnd: int, states, anchors, reference, contribution, p_prev, losses, record) -> None:
    name = f"round_{rnd + 1:04d}"
    save_checkpoint(
        ckpt_dir,
        name,
        {
            "states": _raw_keys(states),
            "anchors": anchors,
            "reference": reference,
            "contribution": contribution,
            "p_prev": p_prev,
            "losses": losses,
        },
        {"next_round": rnd + 1, "record": record},
        by_part=True,
    )  # one piece would need the whole state again
    for old in Path(ckpt_dir).glob("round_*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
