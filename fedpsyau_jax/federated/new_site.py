"""A site the federation never saw: its start model, and how it adapts with k of its own
labelled people.

A federated config with ``fl.new_site = NAME`` keeps the client NAME of its partition
out of the federation altogether: none of its samples enters a split, a plan, a prior
or an update. After the last round, per repeat seed:

1. **start model** — what a site joining after training would be handed: the
   sample-weighted mean of the federation's deployed models (parameters and BatchNorm
   statistics). For FedAvg and FedProx that is the global model itself; for FedRep the
   shared body with the mean of the heads; for P-FedProx the server's plain mean; for
   Local (no federation) the mean of independently trained models, a reference only.
   It is scored on every sample of the new site (``k = 0``).
2. **adaptation** — the site labels the samples of ``k`` of its subjects (k in
   ``fl.adapt_k``; ``fl.adapt_repeats`` random draws of which subjects, seeded), fine-tunes
   what the algorithm treats as personal for ``fl.adapt_epochs`` epochs at the local
   rate, constant — FedRep: its head only (``fedrep.HEAD_PATHS``); every other
   algorithm: the whole model (P-FedProx with its proximal pull μ to the start model) —
   and is scored on its OTHER subjects, next to the start model on the same subjects
   (paired).

Everything is fixed before training (k, repeats, epochs, rate); nothing is chosen on the
new site's scores.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fedpsyau_jax.config_loading import ConfigError
from fedpsyau_jax.federated.runner import RowPlan, _scores, eval_plans, row_au_weights, row_class_weights
from fedpsyau_jax.training.batching import epoch_plan


@dataclasses.dataclass(frozen=True)
class NewSiteSettings:
    """name: the partition's client kept out ("" none). adapt_k: numbers of labelled
    subjects; repeats: draws of which subjects per k; epochs: fine-tuning epochs."""

    name: str = ""
    adapt_k: tuple[int, ...] = ()
    repeats: int = 3
    epochs: int = 10


def new_site_settings(cfg) -> NewSiteSettings:
    fl = cfg.fl
    k = tuple(int(x) for x in (fl.get("adapt_k") or ()))
    if any(x < 1 for x in k):
        raise ConfigError(f"fl.adapt_k {k}: every k must be >= 1")
    return NewSiteSettings(
        name=str(fl.get("new_site", "") or ""),
        adapt_k=k,
        repeats=int(fl.get("adapt_repeats", 3)),
        epochs=int(fl.get("adapt_epochs", 10)),
    )


def split_new_site(clients: list[tuple[str, np.ndarray]], name: str):
    """(the federation's clients, the new site's sample indices) — ``name`` must be one
    of the partition's clients, and at least one other must remain."""
    names = [n for n, _ in clients]
    if name not in names:
        raise ConfigError(f"fl.new_site {name!r}: the partition's clients are {', '.join(names)}")
    if len(clients) < 2:
        raise ConfigError("fl.new_site: the partition has one client; nothing would be left to federate")
    return [c for c in clients if c[0] != name], dict(clients)[name]


def sample_weights(num_samples, groups, num_groups: int) -> np.ndarray:
    """(G, C) weights: row c's share n_c / Σ n of its seed group's samples."""
    groups = np.asarray(groups)
    n = np.asarray(num_samples, np.float64)
    return np.stack([np.where(groups == g, n, 0.0) / n[groups == g].sum() for g in range(num_groups)])


def weighted_mean(tree, weights: np.ndarray):
    """Leaves (C, ...) -> (G, ...): the ``weights`` (G, C) mean of the rows, in float32
    (the one computation of a start model: the Flower server calls it too)."""
    w = jnp.asarray(weights, jnp.float32)

    def mean(x):
        x = jnp.asarray(x)
        return jnp.tensordot(w, x.astype(jnp.float32), axes=(1, 0)).astype(x.dtype)

    return jax.tree.map(mean, tree)


def start_models(states, rows: RowPlan):
    """Per seed group g: the sample-weighted mean over its rows of the deployed
    params and BatchNorm statistics (leaves (G, ...)); priors and optimiser state of
    the group's first row."""
    groups = np.asarray(rows.groups)
    weights = sample_weights(rows.num_samples, groups, len(rows.seeds))  # (G, C)
    first = np.array([np.flatnonzero(groups == g)[0] for g in range(len(rows.seeds))])
    pick = lambda x: x[first]
    return states.replace(
        params=weighted_mean(states.params, weights),
        batch_stats=weighted_mean(states.batch_stats, weights),
        priors=jax.tree.map(pick, states.priors),
        opt_state=jax.tree.map(pick, states.opt_state),
        step=pick(states.step),
        key=pick(states.key),
    )


def subject_draws(subjects: np.ndarray, k: int, repeats: int, seed: int) -> list[np.ndarray]:
    """``repeats`` draws of k distinct subjects (sorted ids), from a generator seeded by
    (seed, k): the same draws for every algorithm of a run."""
    uniq = np.unique(np.asarray(subjects).astype(str))
    if k >= len(uniq):
        raise ConfigError(f"fl.adapt_k {k}: the new site has {len(uniq)} subjects; k must leave one to score")
    rng = np.random.default_rng([seed, k, 41])
    return [np.sort(uniq[rng.choice(len(uniq), k, replace=False)]) for _ in range(repeats)]


def head_only(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` on FedRep's heads, zero updates on the body (what FedRep keeps personal)."""
    from fedpsyau_jax.federated.algorithms.fedrep import is_head

    def labels(params):
        return jax.tree_util.tree_map_with_path(lambda p, _: "head" if is_head(p) else "body", params)

    return optax.multi_transform({"head": tx, "body": optax.set_to_zero()}, labels)


def evaluate_new_site(
    *, algorithm, states, rows: RowPlan, samples, data, site_idx, settings, site: NewSiteSettings, make_trainer, tx
) -> dict:
    """The new site's scores (see the module docstring): {"name", "subjects",
    "start": per seed scores on all its samples, "adapt": {k: list of per (seed, draw)
    {"subjects", "adapted", "start"} scores on the subjects not labelled}}.

    states: the deployed stacked states after the last round (leaves (C, ...)).
    make_trainer(tx) -> a ``LocalTrainer`` for that optimiser (the run's settings)."""
    labels = np.asarray(samples.label)
    subj = np.asarray(samples.subject).astype(str)
    site_idx = np.asarray(site_idx, np.int64)
    start = start_models(states, rows)
    G = len(rows.seeds)
    trainer = make_trainer(tx)
    beta = settings.train.betas()[-1]

    def score(st, test_sets):
        plan = RowPlan(
            seeds=rows.seeds,
            client_names=("new",),
            train_idx=tuple(np.zeros(0, np.int64) for _ in test_sets),
            test_idx=tuple(test_sets),
            num_samples=np.ones(len(test_sets), np.float32),
            priors=np.zeros((len(test_sets), 12, 12), np.float32),
            groups=np.arange(len(test_sets), dtype=np.int32),
        )
        ei, em = eval_plans(plan, settings.train.eval_batch_size)
        pred = np.asarray(trainer.evaluate(st, data, ei, em, beta)[0])
        return _scores(plan, labels, pred, samples.num_classes)

    out = {
        "name": site.name,
        "subjects": int(len(np.unique(subj[site_idx]))),
        "samples": int(len(site_idx)),
        "start": score(start, [site_idx] * G),
        "adapt": {},
    }
    if not site.adapt_k:
        return out
    personal_tx = head_only(tx) if algorithm.name.startswith("fedrep") else tx
    tuner = make_trainer(personal_tx)
    mu = algorithm.mu
    for k in site.adapt_k:
        runs = []
        for g, seed in enumerate(rows.seeds):
            for draw in subject_draws(subj[site_idx], k, site.repeats, seed):
                lab = site_idx[np.isin(subj[site_idx], draw)]
                rest = site_idx[~np.isin(subj[site_idx], draw)]
                runs.append((g, seed, draw, lab, rest))
        rows_of_runs = np.array([r[0] for r in runs])
        st0 = jax.tree.map(lambda x, i=rows_of_runs: x[i], start)
        st0 = st0.replace(opt_state=jax.vmap(personal_tx.init)(st0.params), step=jnp.zeros_like(st0.step))
        plan = RowPlan(
            seeds=rows.seeds,
            client_names=("new",),
            train_idx=tuple(r[3] for r in runs),
            test_idx=tuple(r[4] for r in runs),
            num_samples=np.array([len(r[3]) for r in runs], np.float32),
            priors=np.zeros((len(runs), 12, 12), np.float32),
            groups=np.arange(len(runs), dtype=np.int32),
        )
        before = score(st0, [r[4] for r in runs])  # first: training donates (consumes) st0
        st = _fine_tune(tuner, st0, plan, runs, labels, samples, data, settings, site.epochs, mu)
        adapted = score(st, [r[4] for r in runs])
        out["adapt"][str(k)] = [
            {"seed": int(r[1]), "subjects": [str(x) for x in r[2]], "adapted": a, "start": b}
            for r, a, b in zip(runs, adapted, before)
        ]
    return out


def _fine_tune(trainer, states, plan: RowPlan, runs, labels, samples, data, settings, epochs: int, mu: float):
    """``epochs`` epochs of every row on its labelled subjects, at the run's peak rate
    (constant), β at its final value, the run's class and AU weights from the labelled
    rows, proximal pull μ to the start model."""
    s = settings.train
    b = s.batch_size
    anchors = jax.tree.map(jnp.copy, states.params)
    class_w = row_class_weights(plan, labels, samples.num_classes, settings)
    au_w = row_au_weights(plan, samples, settings)
    lr = s.learning_rate if s.learning_rate > 0 else 1.0
    for e in range(epochs):
        per = []
        for r, (_, seed, _, lab, _) in enumerate(runs):
            rng = np.random.default_rng([seed, r, e, 43])
            per.append(epoch_plan(rng, lab, b, labels, s.oversample))
        steps = max(p[0].shape[0] for p in per)
        idx = np.zeros((len(runs), steps, b), np.int32)
        mask = np.zeros((len(runs), steps, b), np.float32)
        for r, (i, m) in enumerate(per):
            idx[r, : len(i)], mask[r, : len(m)] = i, m
        lrs = np.where(mask.sum(-1) > 0, lr, 0.0).astype(np.float32)
        betas = np.full(steps, s.betas()[-1], np.float32)
        states, _, _ = trainer.train(states, anchors, mu, data, idx, mask, betas, lrs, class_w, au_w)
    return states
