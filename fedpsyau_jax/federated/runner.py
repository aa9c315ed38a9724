"""The rows of a federated run and their plain rounds: all (seed × client) rows in one program.

``rounds.run_federation(...)`` trains one chunk of repeat seeds for one algorithm and split
(``PlainRounds`` here; ``dp_runner.DPRounds`` under DP):
rows r = (seed, client) seed-major, ``groups`` = seed index, so aggregation mixes
clients of the same seed only. Per round: local training of every row (one compiled
vmap/scan), then one jitted communication step. After the last round each client is
evaluated twice on its own test split:
  ``personal`` — the model right after its final local training;
  ``deployed`` — the model the algorithm hands the client for the next round (the
  global model for FedAvg/FedProx, the mixed start point for P-FedProx, shared body +
  own head for FedRep, the own model for Local). ``deployed`` is the headline number.
Both are fixed before training (no test-based selection). ``eval_every_round`` adds
the deployed model's per-client test UF1 after every round, for Fig. 5-style
convergence plots only: nothing reads it to choose a round or a setting.

Resumable: the stacked states are checkpointed every ``checkpoint_every`` rounds with
``fedpsyau_jax.training.checkpoints``; step plans and dropout keys derive from (seed, client,
round), so a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from fedpsyau_jax.training.batching import epoch_plan, eval_plan
from fedpsyau_jax.federated.client_stack import group_ids, stack_states
from fedpsyau_jax.federated.local_training import LocalTrainer
from fedpsyau_jax.federated.server_round import make_communicate, make_init
from fedpsyau_jax.federated.settings import FLSettings
from fedpsyau_jax.federated.splits import client_split
from fedpsyau_jax.training.fold_training import class_weights
from fedpsyau_jax.training.losses import au_pos_weights
from fedpsyau_jax.training.metrics import au_detection_scores, classification_scores
from fedpsyau_jax.training.sharding import padded_width, replicate, shard_rows
from fedpsyau_jax.network.priors import PRIOR_PRESETS, cooccurrence_prior
from fedpsyau_jax.training.train_state import create_train_state


@dataclasses.dataclass(frozen=True)
class RowPlan:
    """Host-side description of the C = len(seeds)·K rows of one run."""

    seeds: tuple[int, ...]
    client_names: tuple[str, ...]
    train_idx: tuple[np.ndarray, ...]  # per row
    test_idx: tuple[np.ndarray, ...]  # per row
    num_samples: np.ndarray  # (C,) float32 training samples (FedAvg weights)
    priors: np.ndarray  # (C, 12, 12) float32
    groups: np.ndarray  # (C,) int32 seed index of each row
    client_ids: tuple[int, ...] = ()  # per client: its index in the seeds of splits,
    # plans and dropout keys (default 0..K-1)

    @property
    def num_rows(self) -> int:
        return len(self.train_idx)

    def client_id(self, row: int) -> int:
        """Index of row ``row``'s client in every seed derivation (split, plans, keys)."""
        k = row % len(self.client_names)
        return self.client_ids[k] if self.client_ids else k


def plan_rows(
    samples, clients: list[tuple[str, np.ndarray]], seeds, split: str, settings: FLSettings, client_ids=None
) -> RowPlan:
    """Rows of ``clients`` × ``seeds``. ``client_ids``: each client's index in the seed
    derivations (default its position): a Flower site that holds only its own data
    passes its partition id, and gets exactly the simulator's split, plans and keys."""
    ids = tuple(range(len(clients))) if client_ids is None else tuple(int(c) for c in client_ids)
    if len(ids) != len(clients):
        raise ValueError(f"plan_rows: {len(clients)} clients but {len(ids)} client_ids")
    train, test, priors = [], [], []
    for s in seeds:
        for k, (_, idx) in enumerate(clients):
            tr, te = client_split(idx, samples.subject, split, int(s), ids[k], settings.train_fraction)
            train.append(tr)
            test.append(te)
            priors.append(_client_prior(samples, tr, settings))
    return RowPlan(
        seeds=tuple(int(s) for s in seeds),
        client_names=tuple(n for n, _ in clients),
        train_idx=tuple(train),
        test_idx=tuple(test),
        num_samples=np.array([len(t) for t in train], np.float32),
        priors=np.stack(priors).astype(np.float32),
        groups=group_ids(len(seeds), len(clients)),
        client_ids=ids,
    )


def _client_prior(samples, train_idx, settings: FLSettings) -> np.ndarray:
    if settings.prior == "client_train":
        known = samples.au_mask[train_idx].sum(axis=1) > 0
        if known.any():
            return cooccurrence_prior(samples.au[train_idx][known])
        return PRIOR_PRESETS[settings.fallback_prior]()
    if settings.prior not in PRIOR_PRESETS:
        raise ValueError(f"unknown prior {settings.prior!r}; use client_train or one of {', '.join(PRIOR_PRESETS)}")
    return PRIOR_PRESETS[settings.prior]()


def round_plans(rows: RowPlan, labels: np.ndarray, rnd: int, settings: FLSettings):
    """(idx, mask) (C, L·S, B) for round ``rnd``: each local epoch padded to the common S.

    Padding every epoch to the same length keeps step t in local epoch t // S for all
    rows, so one β per step serves every client.
    """
    b, le = settings.train.batch_size, settings.local_epochs
    per_row = []
    for r, tr in enumerate(rows.train_idx):
        seed, client = rows.seeds[rows.groups[r]], rows.client_id(r)
        rng = np.random.default_rng([seed, client, rnd, 7])
        per_row.append([epoch_plan(rng, tr, b, labels, settings.train.oversample) for _ in range(le)])
    s_max = max(p[0].shape[0] for plans in per_row for p in plans)
    idx = np.zeros((rows.num_rows, le * s_max, b), np.int32)
    mask = np.zeros((rows.num_rows, le * s_max, b), np.float32)
    for r, plans in enumerate(per_row):
        for e, (i, m) in enumerate(plans):
            idx[r, e * s_max : e * s_max + len(i)] = i
            mask[r, e * s_max : e * s_max + len(m)] = m
    return idx, mask, s_max


def round_inputs(rows: RowPlan, labels: np.ndarray, rnd: int, settings: FLSettings, betas_all):
    """(idx, mask, betas) of round ``rnd``: ``round_plans`` and the β of every step
    (β of global epoch rnd·L + e for the steps of local epoch e)."""
    idx, mask, s_epoch = round_plans(rows, labels, rnd, settings)
    le = settings.local_epochs
    return idx, mask, np.repeat(np.asarray(betas_all)[rnd * le : (rnd + 1) * le], s_epoch)


def round_lrs(settings: FLSettings, rnd: int, mask: np.ndarray, s_epoch: int):
    """(C, L·S) learning rate of every step of round ``rnd`` (None without a schedule):
    local epoch e of round rnd is epoch rnd·L + e of the one schedule over the run
    (``TrainSettings.learning_rates``, as in centralised training); padded steps get 0."""
    if settings.train.learning_rate <= 0:
        return None
    le = settings.local_epochs
    live = np.asarray(mask).sum(axis=2) > 0  # (C, L·S)
    out = np.zeros(live.shape, np.float32)
    for e in range(le):
        blk = live[:, e * s_epoch : (e + 1) * s_epoch]
        out[:, e * s_epoch : (e + 1) * s_epoch] = np.where(blk, settings.train.learning_rates(rnd * le + e, blk), 0.0)
    return out


def row_class_weights(rows: RowPlan, labels: np.ndarray, num_classes: int, settings: FLSettings):
    """(C, K) CE class weights of each row's own training labels (None when off)."""
    if not settings.train.weighted_ce:
        return None
    return np.stack([class_weights(labels, tr, num_classes) for tr in rows.train_idx])


def row_au_weights(rows: RowPlan, samples, settings: FLSettings):
    """(C, 12) AU positive weights n⁻/n⁺ of each row's own training AU labels
    (``train.au_pos_weight=balanced``), None when off."""
    if settings.train.au_pos_weight != "balanced":
        return None
    au, au_mask = np.asarray(samples.au), np.asarray(samples.au_mask)
    return np.stack([np.asarray(au_pos_weights(au[tr], au_mask[tr])) for tr in rows.train_idx]).astype(np.float32)


def au_scores(rows: RowPlan, samples, au_prob: np.ndarray) -> list[dict]:
    """Per row: AU detection of one head on the row's own test split (``au_prob``
    (C, S, B, 12), padded like the eval plans): mean ROC AUC over the AUs with known
    positives and negatives among the test samples, and how many AUs that is."""
    au, au_mask = np.asarray(samples.au), np.asarray(samples.au_mask)
    prob = np.asarray(au_prob).reshape(rows.num_rows, -1, 12)
    out = []
    for r, te in enumerate(rows.test_idx):
        sc = au_detection_scores(au[te], au_mask[te], prob[r, : len(te)]) if len(te) else {}
        aucs = [v for v in sc.get("auc_per_au", {}).values() if v == v]
        out.append({"mean_auc": float(np.mean(aucs)) if aucs else float("nan"), "aus_scored": len(aucs)})
    return out


def eval_plans(rows: RowPlan, batch_size: int):
    steps = max(-(-len(t) // batch_size) for t in rows.test_idx)
    plans = [eval_plan(t, batch_size, num_steps=steps) for t in rows.test_idx]
    return np.stack([p[0] for p in plans]), np.stack([p[1] for p in plans])


def init_row_states(model, tx, rows: RowPlan, trainer: LocalTrainer | None = None):
    """Stacked TrainStates: one initialisation per seed shared by its clients, each row
    with its own dropout key and prior D. With ``trainer`` the jitted ``init_states``
    is used (fast); without, ``create_train_state`` runs eagerly (same values)."""
    k = len(rows.client_names)
    seed_keys = [jax.random.key(s) for s in rows.seeds]
    if trainer is not None and trainer.init_states is not None:
        per_seed = trainer.init_states(jnp.stack(seed_keys), jnp.asarray(rows.priors[::k]))
        states = jax.tree.map(lambda x: x[jnp.asarray(rows.groups)], per_seed)
    else:
        states = stack_states([create_train_state(model, tx, seed_keys[g]) for g in rows.groups])
    keys = jnp.stack(
        [
            jax.random.fold_in(jax.random.key(10_000 + rows.seeds[g]), rows.client_id(r))
            for r, g in enumerate(rows.groups)
        ]
    )
    priors = {"D": jnp.asarray(rows.priors)} if states.priors else states.priors
    return states.replace(key=keys, priors=priors)


def _scores(rows: RowPlan, labels, pred, num_classes: int) -> list[dict]:
    out = []
    pred = np.asarray(pred).reshape(rows.num_rows, -1)
    for r, te in enumerate(rows.test_idx):
        if len(te) == 0:  # a train-only client (one sample): nothing to score
            out.append(
                {
                    "uf1": float("nan"),
                    "uar": float("nan"),
                    "accuracy": float("nan"),
                    "absent_classes": [],
                    "confusion": [],
                }
            )
            continue
        sc = classification_scores(labels[te], pred[r, : len(te)], num_classes)
        out.append({k: sc[k] for k in ("uf1", "uar", "accuracy", "absent_classes", "confusion")})
    return out


@dataclasses.dataclass
class Trained:
    """What one round's local training gave: the rows that trained and their mean
    training loss, (m,) each."""

    rows: np.ndarray
    losses: np.ndarray


class PlainRounds:
    """The plain rounds of ``rounds.run_federation``: every row trains every round and
    one jitted step communicates (upload → aggregate → client update).

    Rows are padded to a multiple of the device count: the padding rows are copies of
    row 0 in a federation group of their own (so they never mix with a real one), with
    weight 1 and empty plans (mask 0: every step a no-op); scores ignore them.
    """

    keeps_curve = True  # eval_every_round: the deployed models' UF1 after every round

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
        dp=None,
        samples=None,
        pretrained=None,
    ):
        self.trainer, self.algorithm, self.tx, self.rows, self.settings = trainer, algorithm, tx, rows, settings
        self.labels = labels
        self.default_desc = algorithm.name
        mesh = trainer.mesh
        n_rows = rows.num_rows
        self.pad = pad = padded_width(n_rows, mesh) - n_rows
        self.groups = jnp.asarray(np.concatenate([rows.groups, np.full(pad, len(rows.seeds), np.int32)]))
        num_groups = len(rows.seeds) + (1 if pad else 0)
        self._communicate = make_communicate(algorithm, num_groups)
        self.n = jnp.asarray(np.concatenate([rows.num_samples, np.ones(pad, np.float32)]))
        self.place = (lambda t: t) if mesh is None else (lambda t: shard_rows(t, mesh))
        self.data = data if mesh is None else replicate(data, mesh)
        states = init_row_states(model, tx, rows, trainer)
        if pretrained is not None:  # stage 1's AU branch, one per row (stage1.py)
            from fedpsyau_jax.training.fold_training import load_pretrained

            states = load_pretrained(states, pretrained[0], pretrained[1], stacked=True)
        self.states = make_init(algorithm, num_groups)(self.place(_pad_rows(states, pad)), self.groups)
        self.anchors = jax.tree.map(jnp.copy, self.states.params)
        class_w = row_class_weights(rows, labels, num_classes, settings)
        self.class_w = None if class_w is None else self.place(_pad_host(class_w, pad, 1.0))
        au_w = row_au_weights(rows, samples, settings) if samples is not None else None
        self.au_w = None if au_w is None else self.place(_pad_host(au_w, pad, 1.0))

    def checkpoint_tree(self) -> dict:
        """The states and anchors of the real rows (independent of the device count)."""
        n_rows = self.rows.num_rows
        return {"states": _raw_keys(_unpad(self.states, n_rows)), "anchors": _unpad(self.anchors, n_rows)}

    def checkpoint(self) -> tuple[dict, dict, bool]:
        return self.checkpoint_tree(), {}, False

    def restore(self, restored: dict, meta: dict) -> None:
        self.states = self.place(_pad_rows(_typed_keys(restored["states"]), self.pad))
        self.anchors = self.place(_pad_rows(jax.tree.map(jnp.asarray, restored["anchors"]), self.pad))

    def begin_round(self, rnd: int) -> None:
        pass

    def train(self, rnd: int, betas_all) -> Trained:
        s, pad = self.settings, self.pad
        idx, mask, betas = round_inputs(self.rows, self.labels, rnd, s, betas_all)
        lrs = round_lrs(s, rnd, mask, idx.shape[1] // s.local_epochs)
        idx, mask = self.place(_pad_host(idx, pad)), self.place(_pad_host(mask, pad))
        lrs = None if lrs is None else self.place(_pad_host(lrs, pad))
        self.states, mean_loss, _ = self.trainer.train(
            self.states, self.anchors, self.algorithm.mu, self.data, idx, mask, betas, lrs, self.class_w, self.au_w
        )
        n_rows = self.rows.num_rows
        return Trained(np.arange(n_rows), np.asarray(mean_loss)[:n_rows])

    def evaluate_trained(self, beta) -> np.ndarray:
        return _evaluate(self.trainer, self.states, self.data, self.rows, self.settings, beta, self.pad, self.place)

    def communicate(self, rnd: int) -> None:
        self.states, self.anchors = self._communicate(self.states, self.n, self.groups)

    def reset_optimizer(self) -> None:
        self.states = reset_optimizer_states(self.tx, self.states)

    def end_round(self, rnd: int) -> None:
        pass

    def evaluate_deployed_now(self, beta) -> np.ndarray:
        """After the communication step the states are the deployed models."""
        return self.evaluate_trained(beta)

    evaluate_deployed_final = evaluate_deployed_now

    def evaluate_au_deployed(self, beta):
        """(gat, afe) AU probabilities (C, S, B, 12) of the deployed models on each
        row's test split; None without an AU branch."""
        if self.trainer.evaluate_au is None:
            return None
        ei, em = eval_plans(self.rows, self.settings.train.eval_batch_size)
        pad = self.pad
        gat, afe = self.trainer.evaluate_au(
            self.states, self.data, self.place(_pad_host(ei, pad)), self.place(_pad_host(em, pad)), beta
        )
        n = self.rows.num_rows
        return np.asarray(gat)[:n], np.asarray(afe)[:n]

    def postfix(self, losses: np.ndarray, trained: Trained) -> dict:
        return {"loss": f"{np.nanmean(losses):.3f}"}

    def record(self) -> dict:
        return {}


def _pad_rows(tree, pad: int):
    """``pad`` copies of row 0 appended to every leaf (device arrays, typed keys too)."""
    if not pad:
        return tree
    return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[:1], pad, axis=0)]), tree)


def _pad_host(x: np.ndarray, pad: int, value: float = 0.0) -> np.ndarray:
    """Host array with ``pad`` rows of ``value`` appended (plans: mask 0, index 0)."""
    if not pad:
        return x
    x = np.asarray(x)
    return np.concatenate([x, np.full((pad,) + x.shape[1:], value, x.dtype)])


def _unpad(tree, n_rows: int):
    """The real rows only (what checkpoints store: independent of the device count)."""
    return jax.tree.map(lambda x: x[:n_rows], tree)


def _evaluate(trainer, states, data, rows: RowPlan, settings, beta, pad: int, place):
    ei, em = eval_plans(rows, settings.train.eval_batch_size)
    pred, _ = trainer.evaluate(states, data, place(_pad_host(ei, pad)), place(_pad_host(em, pad)), beta)
    return np.asarray(pred)[: rows.num_rows]


def reset_optimizer_states(tx, states):
    """Every row's optimiser state re-initialised at its current params (jitted, vmapped)."""
    return states.replace(opt_state=_vmapped_init(tx)(states.params))


@functools.lru_cache(maxsize=16)
def _vmapped_init(tx):
    return jax.jit(jax.vmap(tx.init))


def _typed_keys(states):
    """Stored states with their uint32 key data wrapped as typed PRNG keys again."""
    st = jax.tree.map(jnp.asarray, states)
    return st.replace(key=jax.random.wrap_key_data(st.key))


def _raw_keys(states):
    """Typed PRNG keys cannot be written as arrays: store their uint32 key data."""
    return states.replace(key=jax.random.key_data(states.key))
