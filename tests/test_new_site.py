"""A site kept out of the federation: it never contributes an update, its start model is
the federation's mean model, and adaptation fine-tunes only what the algorithm keeps
personal on the labelled subjects and scores the others."""
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from data_pipelines.synthetic import make_synthetic
from fedpsyau_jax.config_loading import ConfigError
from fedpsyau_jax.federated import make_algorithm
from fedpsyau_jax.federated.local_training import make_local_trainer
from fedpsyau_jax.federated.new_site import (
    NewSiteSettings,
    evaluate_new_site,
    head_only,
    split_new_site,
    start_models,
    subject_draws,
)
from fedpsyau_jax.federated.partitions import partition_clients
from fedpsyau_jax.federated.rounds import run_federation
from fedpsyau_jax.federated.runner import plan_rows
from fedpsyau_jax.federated.settings import fl_settings
from fedpsyau_jax.network.model import FedPsyAU
from fedpsyau_jax.training.batching import device_data

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = fl_settings(rounds=2, local_epochs=1, batch_size=4, eval_batch_size=8, oversample=False, checkpoint_every=0)


def _federate(samples, algorithm="fedavg"):
    model = FedPsyAU(3, use_au_branch=False)
    tx = optax.sgd(0.05, momentum=0.9)
    clients = partition_clients(samples, "equal_subjects", 3, seed=0)
    fed, site_idx = split_new_site(clients, clients[2][0])
    trainer = make_local_trainer(model, tx, mode="step")
    rows = plan_rows(samples, fed, [0, 1], "random", SETTINGS)
    kept: list = []
    data = device_data(samples)
    algo = make_algorithm(algorithm)
    res = run_federation(trainer=trainer, algorithm=algo, model=model, tx=tx, samples=samples, data=data,
                         rows=rows, settings=SETTINGS, progress=False, keep_states=kept)
    site = NewSiteSettings(name=clients[2][0], adapt_k=(1,), repeats=2, epochs=2)
    ns = evaluate_new_site(algorithm=algo, states=kept[0], rows=rows, samples=samples, data=data,
                           site_idx=site_idx, settings=SETTINGS, site=site,
                           make_trainer=lambda t: make_local_trainer(model, t, mode="step"), tx=tx)
    return res, kept[0], ns, rows, site_idx


def test_the_new_site_never_contributes_an_update():
    samples = make_synthetic(num_subjects=9, samples_per_subject=4, seed=3)
    res, states, ns, rows, site_idx = _federate(samples)
    assert not any(np.isin(t, site_idx).any() for t in rows.train_idx + rows.test_idx)
    # the new site's data replaced by noise and other labels: the federation is the same
    # to the bit; only the new site's own scores change
    rng = np.random.default_rng(0)
    flow = samples.flow28.copy()
    flow[site_idx] = rng.random(flow[site_idx].shape, np.float32)
    f128 = samples.flow128.copy()
    f128[site_idx] = rng.random(f128[site_idx].shape, np.float32)
    label = samples.label.copy()
    label[site_idx] = (label[site_idx] + 1) % 3
    other = dataclasses.replace(samples, flow28=flow, flow128=f128, label=label)
    res2, states2, ns2, _, _ = _federate(other)
    assert res2["loss_per_round"] == res["loss_per_round"] and res2["deployed"] == res["deployed"]
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), states.params, states2.params)
    assert ns2["start"] != ns["start"]
    assert ns["subjects"] == 3 and ns["samples"] == len(site_idx)


def test_start_model_is_the_weighted_mean_and_fedavg_gives_the_global_model():
    samples = make_synthetic(num_subjects=9, samples_per_subject=4, seed=3)
    _, states, _, rows, _ = _federate(samples)
    start = start_models(states, rows)
    for g in range(2):
        member = np.flatnonzero(rows.groups == g)
        for a, b in zip(jax.tree.leaves(start.params), jax.tree.leaves(states.params)):
            # after FedAvg every row of a seed holds the global model: the mean is that model
            np.testing.assert_allclose(np.asarray(a)[g], np.asarray(b)[member[0]], rtol=1e-5, atol=1e-6)


def test_adaptation_scores_other_subjects_and_fedrep_tunes_only_its_head():
    samples = make_synthetic(num_subjects=9, samples_per_subject=4, seed=3)
    _, _, ns, _, site_idx = _federate(samples, "fedrep")
    runs = ns["adapt"]["1"]
    assert len(runs) == 2 * 2                                   # 2 seeds × 2 draws
    site_subjects = set(samples.subject[site_idx])
    for r in runs:
        assert len(r["subjects"]) == 1 and set(r["subjects"]) <= site_subjects
        n_scored = int(np.sum(r["adapted"]["confusion"]))
        assert n_scored == len(site_idx) - int(np.isin(samples.subject[site_idx], r["subjects"]).sum())
    # FedRep's personal optimiser leaves the body untouched
    model = FedPsyAU(3, use_au_branch=False)
    from fedpsyau_jax.network.model import init_variables
    params = init_variables(model, jax.random.PRNGKey(0))["params"]
    tx = head_only(optax.sgd(0.1))
    grads = jax.tree.map(np.ones_like, params)
    upd, _ = tx.update(grads, tx.init(params), params)
    moved = {"/".join(str(getattr(k, "key", k)) for k in p) for p, u in jax.tree_util.tree_flatten_with_path(upd)[0]
             if np.any(np.asarray(u) != 0)}
    assert moved and all(m.startswith("flow_only/classifier") for m in moved)


def test_subject_draws_and_bad_settings():
    subj = np.repeat(["a", "b", "c", "d"], 2)
    d = subject_draws(subj, 2, 3, seed=5)
    assert len(d) == 3 and all(len(x) == 2 and len(set(x)) == 2 for x in d)
    assert [list(x) for x in d] == [list(x) for x in subject_draws(subj, 2, 3, seed=5)]
    with pytest.raises(ConfigError, match="k must leave one"):
        subject_draws(subj, 4, 1, seed=0)
    with pytest.raises(ConfigError, match="fl.new_site 'x'"):
        split_new_site([("a", np.arange(2)), ("b", np.arange(2, 4))], "x")


def test_federate_cli_keeps_the_new_site_out_and_reports_it(tmp_path, capsys):
    from fedpsyau_jax.cli import main

    wd = tmp_path / "fl"
    assert main(["federate", "--config", str(ROOT / "configs" / "fl_synthetic.py"),
                 "--config.partition.num_clients=3", "--config.data.kwargs.num_subjects=9",
                 "--config.fl.new_site=client2", "--config.fl.adapt_k=(1,)", "--config.fl.adapt_repeats=1",
                 "--config.fl.adapt_epochs=1", "--config.fl.algorithms=('fedavg',)", "--config.protocol.seeds=(0,)",
                 "--config.model.use_au_branch=false", "--workdir", str(wd), "--no-progress"]) == 0
    cap = capsys.readouterr()
    out = cap.out + cap.err
    assert "new site client2 (3 subjects)" in out and "k=1:" in out
    res = json.loads((wd / "random" / "fedavg" / "seeds_0-0" / "result.json").read_text())
    assert res["clients"] == ["client0", "client1"] and res["new_site"]["name"] == "client2"
