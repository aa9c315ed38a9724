"""The stacked simulator under client-level DP and client sampling (``dp_aggregation``).

``DPRounds`` is what ``rounds.run_federation(..., dp=DPSettings)`` runs: the same
round loop and result dict as a plain run, plus ``epsilon_per_round``,
``clip_fraction_per_round`` and ``participants_per_round``. A round, as a Flower
deployment runs it:

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
equal client weights (tested). Resumable per round like a plain run.
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from fedpsyau_jax.federated.algorithms.base import Algorithm
from fedpsyau_jax.federated.dp_aggregation import apply_step, dp_reduce, dp_step, upload_tree
from fedpsyau_jax.federated.privacy import (
    DPSettings,
    PrivacyError,
    denominator,
    epsilon_after_rounds,
    sample_participants,
)
from fedpsyau_jax.federated.runner import (
    RowPlan,
    Trained,
    _evaluate,
    _pad_rows,
    _raw_keys,
    _typed_keys,
    init_row_states,
    reset_optimizer_states,
    round_inputs,
    round_lrs,
    row_au_weights,
    row_class_weights,
)
from fedpsyau_jax.federated.server_round import make_init
from fedpsyau_jax.federated.settings import FLSettings
from fedpsyau_jax.federated.upload import make_upload
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


class DPRounds:
    """The rounds of ``rounds.run_federation`` under client-level DP (module docstring):
    only this round's sampled clients move to their start point, train and upload;
    the server keeps the release R once per group and each client's last contribution.
    The server-side state (reference, contributions, every row's model) stays on one
    device; only what a trainer call gets is padded and split over the devices."""

    keeps_curve = False  # the deployed models exist only at the end (start points of all rows)

    def __init__(
        self,
        trainer,
        algorithm,
        model,
        tx,
        rows: RowPlan,
        settings: FLSettings,
        data,
        labels,
        num_classes,
        dp,
        samples=None,
        pretrained=None,
    ):
        if algorithm.reduce is None:
            raise PrivacyError(
                f"dp: algorithm {algorithm.name!r} does not communicate; there is "
                "nothing to make private (run it without fl.dp)"
            )
        k = len(rows.client_names)
        self.num_groups = num_groups = len(rows.seeds)
        dp = DPSettings(**{**dp.__dict__, "num_clients": k})
        dp.check()
        self.denom = denom = denominator(dp, k)
        if denom <= 0:
            raise PrivacyError(f"dp: divisor {denom} (sampling {dp.sampling}) must be > 0")
        self.dp, self.k = dp, k
        self.trainer, self.algorithm, self.tx, self.rows, self.settings = trainer, algorithm, tx, rows, settings
        self.labels = labels
        self.default_desc = f"{algorithm.name} (DP)"
        self.groups = jnp.asarray(rows.groups)
        mesh = trainer.mesh
        self.mesh = mesh
        self.n_dev = 1 if mesh is None else int(mesh.devices.size)
        self.place = (lambda t: t) if mesh is None else (lambda t: shard_rows(t, mesh))
        self.data = data if mesh is None else replicate(data, mesh)
        n_rows = rows.num_rows
        states = init_row_states(model, tx, rows, trainer)
        if pretrained is not None:  # stage 1's AU branch, one per row (stage1.py)
            from fedpsyau_jax.training.fold_training import load_pretrained

            states = load_pretrained(states, pretrained[0], pretrained[1], stacked=True)
        self.states = make_init(algorithm, num_groups)(states, self.groups)
        self.anchors = jax.tree.map(jnp.copy, self.states.params)
        # R_0: the common init of each group. R is kept once per group (G, …), not per row
        # (at 68 people a per-row copy is ≈ 1 GB); a row reads its group's. Copied: R is
        # updated in place, and the upload's leaves are the params' own buffers.
        self.group_of = group_of = np.asarray(rows.groups)
        first_rows = np.array([np.flatnonzero(group_of == g)[0] for g in range(num_groups)])
        uploads = upload_tree(make_upload(self.states, jnp.ones(n_rows), algorithm))
        self.contribution = jax.tree.map(jnp.copy, uploads)
        self.reference = jax.tree.map(jnp.copy, _take(uploads, first_rows))
        del uploads
        self.every_group = jnp.arange(num_groups)
        self.p_prev = np.zeros(n_rows, np.float32)
        self._record: dict[str, list] = {"epsilon": [], "clip_fraction": [], "participants": [], "seconds": []}
        self.class_w = row_class_weights(rows, labels, num_classes, settings)
        self.au_w = row_au_weights(rows, samples, settings) if samples is not None else None
        self.start_points = _start_points(algorithm)
        self.step_of_rows = _step_of_rows(algorithm, num_groups)
        self.noise_key = jax.random.key(20_000 + rows.seeds[0])
        self.st_sub = self.an_sub = None

    def checkpoint_tree(self) -> dict:
        return {
            "states": _raw_keys(self.states),
            "anchors": self.anchors,
            "reference": self.reference,
            "contribution": self.contribution,
            "p_prev": self.p_prev,
        }

    def checkpoint(self) -> tuple[dict, dict, bool]:
        return self.checkpoint_tree(), {"record": self._record}, True  # by part: one piece would need it all again

    def restore(self, restored: dict, meta: dict) -> None:
        self.states = _typed_keys(restored["states"])
        self.anchors, self.reference, self.contribution = (
            jax.tree.map(jnp.asarray, restored[n]) for n in ("anchors", "reference", "contribution")
        )
        self.p_prev = np.asarray(restored["p_prev"])
        self._record = meta["record"]

    def begin_round(self, rnd: int) -> None:
        """Sample this round's clients; move them (gathered into a small stack, padded to
        a bucket; with nobody sampled a dummy row that uploads nothing, so the release
        still gets its noise) to their start point from the last release."""
        self.t_round = time.perf_counter()
        rows, n_rows = self.rows, self.rows.num_rows
        self.p = sample_participants(np.random.default_rng([rows.seeds[0], rnd, 11]), self.dp, self.k, self.num_groups)
        self.sel = sel = np.flatnonzero(self.p)
        self.sub = sub = _bucketed(sel, n_rows, self.n_dev) if len(sel) else np.zeros(1, np.int64)
        live = np.zeros(len(sub), np.float32)
        live[: len(sel)] = 1.0
        self.live_j = jnp.asarray(live)
        self.st_sub, self.an_sub = _take(self.states, sub), _take(self.anchors, sub)
        if rnd > 0:
            self.st_sub, self.an_sub = self.start_points(
                self.st_sub,
                self.an_sub,
                self.live_j,
                jnp.asarray(self.p_prev[sub]),
                _take(self.reference, self.group_of[sub]),
                _take(self.contribution, sub),
                self.denom,
            )

    def train(self, rnd: int, betas_all) -> Trained:
        """Only the sampled rows train; the full stacks are updated in place."""
        s, sel, sub, place = self.settings, self.sel, self.sub, self.place
        if not len(sel):
            return Trained(sel, np.zeros(0, np.float32))
        idx, mask, betas = round_inputs(self.rows, self.labels, rnd, s, betas_all)
        lrs = round_lrs(s, rnd, mask, idx.shape[1] // s.local_epochs)
        sub_mask = mask[sub].copy()
        sub_mask[len(sel) :] = 0.0  # padding rows train on nothing
        trained, mean_loss, _ = self.trainer.train(
            place(self.st_sub),
            place(self.an_sub),
            self.algorithm.mu,
            self.data,
            place(idx[sub]),
            place(sub_mask),
            betas,
            None if lrs is None else place(lrs[sub]),
            None if self.class_w is None else place(self.class_w[sub]),
            None if self.au_w is None else place(self.au_w[sub]),
        )
        self.st_sub = trained if self.mesh is None else jax.device_put(trained, jax.devices()[0])
        self.states = _put(self.states, sel, self.st_sub)
        self.anchors = _put(self.anchors, sel, self.an_sub)
        return Trained(sel, np.asarray(mean_loss)[: len(sel)])

    def evaluate_trained(self, beta) -> np.ndarray:
        return _evaluate_all(self.trainer, self.states, self.data, self.rows, self.settings, beta, self.place)

    def communicate(self, rnd: int) -> None:
        """The release R' = R + (Σ clip(U_i − R) + noise) / m from the sampled rows."""
        sub = self.sub
        step, contrib_sub, norms = self.step_of_rows(
            self.st_sub,
            _take(self.reference, self.group_of[sub]),
            self.live_j,
            jax.random.fold_in(self.noise_key, rnd),
            self.groups[jnp.asarray(sub)],
            self.dp.clip_norm,
            self.dp.noise_multiplier,
            self.denom,
        )
        self.reference = _apply_step(self.reference, step, self.every_group)
        self.contribution = _put(self.contribution, self.sel, contrib_sub)
        self.p_prev = self.p
        self.norms = norms

    def reset_optimizer(self) -> None:
        self.states = reset_optimizer_states(self.tx, self.states)

    def end_round(self, rnd: int) -> None:
        """ε after this round, the fraction of clipped updates, the participants."""
        sel = self.sel
        norms = np.asarray(self.norms)[: len(sel)]
        self._record["epsilon"].append(epsilon_after_rounds(self.dp, rnd + 1))
        self._record["clip_fraction"].append(float(np.mean(norms > self.dp.clip_norm)) if len(sel) else 0.0)
        self._record["participants"].append(int(len(sel)))
        self._record["seconds"].append(time.perf_counter() - self.t_round)

    def evaluate_deployed_now(self, beta) -> np.ndarray:
        raise NotImplementedError("under DP the deployed models are formed only at the end of the run")

    def evaluate_deployed_final(self, beta) -> np.ndarray:
        """Every client takes the last release as in a round's start; the server's and
        the clients' stacks are let go before the evaluation of all rows (at 68 people
        the end of a run was its memory peak)."""
        ones = jnp.ones(self.rows.num_rows, jnp.float32)
        deployed_states, _ = self.start_points(
            self.states,
            self.anchors,
            ones,
            jnp.asarray(self.p_prev),
            _take(self.reference, self.group_of),
            self.contribution,
            self.denom,
        )
        self.states = self.anchors = self.reference = self.contribution = self.st_sub = self.an_sub = None
        return _evaluate_all(self.trainer, deployed_states, self.data, self.rows, self.settings, beta, self.place)

    def postfix(self, losses: np.ndarray, trained: Trained) -> dict:
        loss = np.nanmean(losses) if len(trained.rows) else float("nan")
        return {"loss": f"{loss:.3f}", "eps": f"{self._record['epsilon'][-1]:.2f}"}

    def record(self) -> dict:
        r = self._record
        return {
            "dp": {**self.dp.__dict__, "divisor": self.denom},
            "epsilon_per_round": r["epsilon"],
            "clip_fraction_per_round": r["clip_fraction"],
            "participants_per_round": r["participants"],
            "seconds_per_round": r["seconds"],
        }
