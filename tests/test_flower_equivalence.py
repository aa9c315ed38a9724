"""The Flower driver gives the stacked simulator's per-client numbers (FedAvg, P-FedProx,
FedRep, Local).

The real ClientApp handlers (``client_app.train`` / ``evaluate``) and the real strategy
(``aggregate_train`` / ``aggregate_evaluate``) exchange real Flower Messages in this
process: everything the deployment runs except the transport (which
test_flower_deployment.py covers). Each site sees only its own partition; its state
travels through ``context.state`` between rounds as in a deployment. Same seeds,
data, partition and settings as ``run_federation`` -> the same per-round training
losses, personal and deployed UF1/UAR/accuracy of every client (to 1e-4).

Equal-sized clients and no oversampling: the simulator pads every client to the
longest one and a padded step still advances the client's dropout key, so with
unequal step counts the dropout streams (and numbers) legitimately differ.
"""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, Metadata, RecordDict  # noqa: E402

from data_pipelines.synthetic import make_synthetic  # noqa: E402
from fedpsyau_jax.federated.flower import client_app  # noqa: E402
from fedpsyau_jax.federated.flower.settings import build, build_local_trainer, run_spec, upload_template  # noqa: E402
from fedpsyau_jax.federated.flower.strategies import FedPsyAUStrategy, parse_train_reply  # noqa: E402
from fedpsyau_jax.federated.partitions import partition_clients  # noqa: E402
from fedpsyau_jax.federated.rounds import run_federation
from fedpsyau_jax.federated.runner import plan_rows  # noqa: E402
from fedpsyau_jax.training.batching import device_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
K = 3
KW = {"num_subjects": 6, "samples_per_subject": 4, "num_classes": 3, "seed": 1}
# The centralised recipe's local training, in the config schema both drivers read:
# warm-up + cosine schedule, flow-respecting flip, class-weighted CE, per-example AU
# loss, weight decay on kernels only, ROI patches from the 28-px flow.
RECIPE = ("train.lr_schedule=warmup_cosine train.warmup_epochs=1.0 train.hflip=0.5 "
          "train.class_balance=weighted_ce train.au_norm=examples train.decay_kernels_only=true "
          "model.roi_source=flow28")
RUN = {"num-server-rounds": 2, "batch-size": 4, "eval-batch-size": 8, "oversample": False,
       "use-au-branch": False, "dataset-kw": json.dumps(KW), "seed": 0, "lr": 1e-3,
       "mu": 0.05, "theta": 0.9, "config-overrides": RECIPE}


def _message(node: int, kind: str, content: RecordDict) -> Message:
    md = Metadata(run_id=1, message_id=f"{kind}{node}", src_node_id=0, dst_node_id=node,
                  reply_to_message_id="", group_id="1", created_at=0.0, ttl=3600.0,
                  message_type=kind)
    return Message(content, metadata=md)


def _context(node: int, k: int, run_config: dict, site_dir=None) -> Context:
    node_config = {"partition-id": k, "num-partitions": K}
    if site_dir is not None:
        node_config["site-dir"] = str(site_dir / f"site{k}")
    return Context(run_id=1, node_id=node, state=RecordDict(), run_config=run_config,
                   node_config=node_config)


def run_flower_in_process(run_config: dict, site_dir=None, restart=None):
    """Flower's round loop (as Strategy.start runs it) with messages handed to the
    ClientApp handlers directly. ``restart`` = (site k, round r): before round r that
    site's SuperNode "restarts" (new node id, empty context.state; its state file in
    ``site_dir`` remains). Returns (strategy, train replies per round, contexts)."""
    spec = run_spec(run_config)
    model, tx, algo = build(spec)
    strat = FedPsyAUStrategy(algo, upload_template(model, tx, algo), spec.rounds, min_nodes=K)
    contexts = {100 + k: _context(100 + k, k, run_config, site_dir) for k in range(K)}
    arrays, all_replies = ArrayRecord(), []
    for rnd in range(1, spec.rounds + 1):
        if restart is not None and restart[1] == rnd:
            k = restart[0]
            del contexts[100 + k]
            contexts[200 + k] = _context(200 + k, k, run_config, site_dir)
        cfg = ConfigRecord({"server-round": rnd, "final-round": rnd == spec.rounds})
        strat._sent[("train", rnd)] = list(contexts)
        replies = [client_app.train(_message(n, "train", RecordDict({"arrays": arrays, "config": cfg})), ctx)
                   for n, ctx in contexts.items()]
        all_replies.append(replies)
        arrays, _ = strat.aggregate_train(rnd, replies)
    strat._sent[("evaluate", spec.rounds)] = list(contexts)
    cfg = ConfigRecord({"server-round": spec.rounds, "final-round": True})
    replies = [client_app.evaluate(_message(n, "evaluate", RecordDict({"arrays": arrays, "config": cfg})), ctx)
               for n, ctx in contexts.items()]
    strat.aggregate_evaluate(spec.rounds, replies)
    return strat, all_replies, contexts


def run_simulator(run_config: dict, dp=None) -> dict:
    """The stacked simulator on the run's settings; ``dp`` (privacy.DPSettings): the DP
    simulator ``run_dp_federation`` instead."""
    spec = run_spec(run_config)
    samples = make_synthetic(**KW)
    model, tx, algo = build(spec)
    clients = partition_clients(samples, spec.partition_scheme, K, spec.partition_seed)
    rows = plan_rows(samples, clients, [spec.seed], spec.split, spec.settings)
    trainer = build_local_trainer(spec, model, tx)
    kw = dict(trainer=trainer, algorithm=algo, model=model, tx=tx, samples=samples,
              data=device_data(samples), rows=rows, settings=spec.settings, progress=False)
    if dp is not None:
        from fedpsyau_jax.federated.rounds import run_dp_federation
        return run_dp_federation(dp=dp, **kw)
    return run_federation(**kw)


def test_a_flower_run_reads_the_recipe_from_the_config_schema():
    """The run config's training is the schema's: the recipe keys reach the settings,
    the optimiser and the model that both drivers build (and the flat keys still
    apply), and they change what is trained (the equivalence below is not vacuous)."""
    from fedpsyau_jax.config_loading import ConfigError

    spec = run_spec(dict(RUN, algorithm="fedavg"))
    t = spec.settings.train
    assert (t.lr_schedule, t.hflip, t.class_balance, t.au_norm) == ("warmup_cosine", 0.5, "weighted_ce", "examples")
    assert t.learning_rate == 1e-3 and t.batch_size == 4 and spec.settings.rounds == 2
    model, _, _ = build(spec)
    assert model.roi_source == "flow28"
    plain = run_simulator(dict(RUN, algorithm="fedavg", **{"config-overrides": ""}))
    recipe = run_simulator(dict(RUN, algorithm="fedavg"))
    assert plain["loss_per_round"][0][0] != pytest.approx(recipe["loss_per_round"][0][0], abs=1e-6)
    # a config file of the schema: its settings, and the flat keys at their defaults do not override it
    cfg_file = str(ROOT / "configs" / "fl_synthetic.py")
    from_file = run_spec({"config": cfg_file, "config-overrides": "fl.local_epochs=3"})
    assert from_file.settings.local_epochs == 3 and from_file.settings.train.batch_size == 8
    with pytest.raises(ConfigError, match="train.lr: now train.learning_rate"):
        run_spec({"config-overrides": "train.lr=0.1"})


@pytest.mark.parametrize("algorithm", ["fedavg", "pfedprox", "fedrep", "local"])
def test_flower_equals_simulator(algorithm, tmp_path, caplog):
    """P-FedProx also restarts site 1's SuperNode before round 2: it resumes from its
    own state file (site-dir) and the numbers are still the simulator's."""
    run_config = dict(RUN, algorithm=algorithm)
    sim = run_simulator(run_config)
    restart = (1, 2) if algorithm == "pfedprox" else None
    strat, replies, contexts = run_flower_in_process(run_config, tmp_path, restart)
    if restart:
        assert 201 in contexts and "state restored from" in caplog.text
    res = strat.results()
    assert len(set(sim["num_train"])) == 1, "the fixture must give equal-sized clients"
    for k, name in enumerate(sim["clients"]):
        site = res["sites"][name]
        for rnd in range(2):
            np.testing.assert_allclose(site["train"][rnd + 1]["train-loss"], sim["loss_per_round"][rnd][k],
                                       rtol=1e-4, atol=1e-4)
        assert site["train"][1]["num-examples"] == sim["num_train"][k]
        for kind in ("personal", "deployed"):
            for m in ("uf1", "uar", "accuracy"):
                np.testing.assert_allclose(site[kind][m], sim[kind][k][m], atol=1e-4,
                                           err_msg=f"{algorithm} {name} {kind} {m}")
    # the loss changed between rounds (the check is not vacuous), and the sites'
    # personal state persisted in context.state (step counter = 2 rounds of steps)
    assert sim["loss_per_round"][0][0] != pytest.approx(sim["loss_per_round"][1][0])
    for ctx in contexts.values():
        step = ctx.state[client_app.STATE_KEY]["step"].numpy()
        assert int(step.reshape(-1)[0]) == 2 * 2       # 6 train samples / batch 4 = 2 steps per round

    # what leaves a site: every reply of the run holds only the upload's arrays, scalar
    # metrics and the site name; P-FedProx sends no BN statistics
    model, tx, algo = build(run_spec(run_config))
    tmpl = upload_template(model, tx, algo)
    for round_replies in replies:
        for msg in round_replies:
            assert set(msg.content.keys()) == {"arrays", "metrics", "site"}
            parse_train_reply(msg.content, tmpl)            # exactly the template's names
            names = list(msg.content["arrays"].keys())
            assert all(n.startswith(("params/", "batch_stats/")) for n in names)
            assert any(n.startswith("batch_stats/") for n in names) == (algorithm in ("fedavg", "fedrep"))
            if algorithm == "fedrep":                       # personal heads stay home
                assert names and not any("classifier" in n for n in names)
            if algorithm == "local":                        # nothing but the count
                assert names == []
            shapes = {tuple(a.shape) for a in msg.content["arrays"].values()}
            assert not shapes & {(128, 128, 3), (28, 28, 3), (65, 2), (12, 12), (12,)}
            assert all(isinstance(v, (int, float)) for v in msg.content["metrics"].values())
            assert set(msg.content["site"].keys()) == {"name"}


def test_reset_optimizer_in_the_deployment_equals_the_simulator(tmp_path):
    """``reset-optimizer=true`` (a fresh AdamW each round, the reference's habit) gives the
    simulator's numbers on Flower too, and differs from keeping the optimiser state."""
    run_config = dict(RUN, algorithm="fedprox", **{"reset-optimizer": True})
    sim = run_simulator(run_config)
    kept = run_simulator(dict(RUN, algorithm="fedprox"))
    assert sim["loss_per_round"][1] != pytest.approx(kept["loss_per_round"][1], rel=1e-6)
    strat, _, _ = run_flower_in_process(run_config, tmp_path)
    res = strat.results()
    for k, name in enumerate(sim["clients"]):
        for rnd in range(2):
            np.testing.assert_allclose(res["sites"][name]["train"][rnd + 1]["train-loss"],
                                       sim["loss_per_round"][rnd][k], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res["sites"][name]["deployed"]["uf1"], sim["deployed"][k]["uf1"], atol=1e-4)


def test_a_baseline_network_federates_in_flower_as_in_the_simulator():
    """A baseline (model.name) goes through the same Flower handlers and matches the
    simulator; FedRep keeps its last Dense layer (``<name>/classifier``) at home."""
    run_config = dict(RUN, algorithm="fedrep", **{"config-overrides": "model.name=ststnet"})
    sim = run_simulator(run_config)
    strat, replies, _ = run_flower_in_process(run_config)
    res = strat.results()
    for k, name in enumerate(sim["clients"]):
        np.testing.assert_allclose(res["sites"][name]["train"][2]["train-loss"], sim["loss_per_round"][1][k],
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res["sites"][name]["personal"]["uf1"], sim["personal"][k]["uf1"], atol=1e-4)
    names = list(replies[0][0].content["arrays"].keys())
    assert any(n.startswith("params/ststnet/conv1") for n in names)
    assert not any("classifier" in n for n in names)
