"""A site that never took part (fl.new_site), on Flower: it joins the deployment but is
never sent a training or evaluation message, never sends an update, and after the last
round reports its scores from the federation's start model — the simulator's numbers.

The real ServerApp code (``run_plain_or_dp``: Flower's round loop, the strategy, the
new-site step) and the real ClientApp (``client_app.app``: Flower's routing, the
handlers) exchange real Messages in this process through a grid that hands each message
to the addressed node's ClientApp; test_flower_deployment-style loopback transport is
the last test here.

Against the simulator: the new site is the partition's last client (the others keep
their positions, hence their splits and plans); the simulator fine-tunes with the first
federating client's random key, which a deployment does not hand over
(``flower.new_site``), so the reference here starts fine-tuning from the new site's own
key (``run_simulator``).
"""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict  # noqa: E402

from data_pipelines.synthetic import make_synthetic  # noqa: E402
from test_flower_deployment import DEPLOYMENTS, LIMIT, logs_of, run_deployment  # noqa: E402
from fedpsyau_jax.config_loading import ConfigError  # noqa: E402
from fedpsyau_jax.federated.flower import client_app, server_app  # noqa: E402
from fedpsyau_jax.federated.flower import site as site_module  # noqa: E402
from fedpsyau_jax.federated.flower.settings import build, build_local_trainer, run_spec  # noqa: E402
from fedpsyau_jax.federated.new_site import evaluate_new_site, split_new_site  # noqa: E402
from fedpsyau_jax.federated.partitions import partition_clients  # noqa: E402
from fedpsyau_jax.federated.rounds import run_federation  # noqa: E402
from fedpsyau_jax.federated.runner import plan_rows  # noqa: E402
from fedpsyau_jax.training.batching import device_data  # noqa: E402

K = 3                                        # partitions; client2 (the last) is the new site
NEW = 100 + K - 1                            # its node id here
KW = {"num_subjects": 6, "samples_per_subject": 4, "num_classes": 3, "seed": 1}
# test_flower_equivalence's recipe (flip, schedule, class weights, ROI source)
RECIPE = ("train.lr_schedule=warmup_cosine train.warmup_epochs=1.0 train.hflip=0.5 train.class_balance=weighted_ce "
          "train.au_norm=examples train.decay_kernels_only=true model.roi_source=flow28")
NEW_SITE = "fl.new_site=client2 fl.adapt_k=(1,) fl.adapt_repeats=2 fl.adapt_epochs=2"
RUN = {"num-server-rounds": 1, "batch-size": 4, "eval-batch-size": 8, "oversample": False,
       "use-au-branch": False, "dataset-kw": json.dumps(KW), "seed": 0, "lr": 1e-3, "mu": 0.05,
       "min-nodes": 2, "config-overrides": f"{RECIPE} {NEW_SITE}", "node-wait-timeout": 5.0,
       "round-timeout": 120.0}


@pytest.fixture
def server_identity(monkeypatch):
    """A ServerApp process has its task identity set by Flower; the strategy builds
    instruction Messages, which read it (here: the SuperLink's node 0, run 1)."""
    from flwr.supercore.task_identity import TaskIdentity
    for attr, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)


class InProcessGrid:
    """A Grid whose nodes are ClientApp contexts in this process: each message gets an
    id (as the SuperLink gives it) and goes through ``client_app.app`` (Flower's routing
    by message type, the mods, the handlers)."""

    def __init__(self, contexts: dict):
        self.contexts = contexts
        self.sent: list[tuple[str, int]] = []

    def get_node_ids(self):
        return list(self.contexts)

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for m in messages:
            m.metadata.__dict__["_message_id"] = f"m{len(self.sent)}"
            self.sent.append((m.metadata.message_type, m.metadata.dst_node_id))
            replies.append(client_app.app(m, self.contexts[m.metadata.dst_node_id]))
        return replies


def _contexts(run_config: dict, nodes=range(K)) -> dict:
    return {100 + k: Context(run_id=1, node_id=100 + k, state=RecordDict(), run_config=run_config,
                             node_config={"partition-id": k, "num-partitions": K}) for k in nodes}


def run_flower(run_config: dict, nodes=range(K)):
    """(results dict, the grid, the printed summary) of the ServerApp's run."""
    spec = run_spec(run_config)
    model, tx, algorithm = build(spec)
    grid = InProcessGrid(_contexts(run_config, nodes))
    res = server_app.run_plain_or_dp(grid, spec, model, tx, algorithm)
    return res, grid, server_app.format_results(res)


def run_simulator(run_config: dict):
    """What ``fedpsyau federate`` does with fl.new_site, on the run's settings — but the
    fine-tuning's random key is the new site's own, as a deployment has it: the round-0
    key ``runner.init_row_states`` gives partition K-1, where the simulator continues the
    first federating client's (the model has dropout before its classifier, so the key
    matters; scoring does not read it)."""
    spec = run_spec(run_config)
    samples = make_synthetic(**KW)
    model, tx, algo = build(spec)
    clients = partition_clients(samples, spec.partition_scheme, K, spec.partition_seed)
    clients, site_idx = split_new_site(clients, spec.new_site.name)
    rows = plan_rows(samples, clients, [spec.seed], spec.split, spec.settings)
    data, kept = device_data(samples), []
    res = run_federation(trainer=build_local_trainer(spec, model, tx), algorithm=algo, model=model, tx=tx,
                         samples=samples, data=data, rows=rows, settings=spec.settings, progress=False,
                         keep_states=kept)
    keys = list(kept[0].key)
    keys[0] = jax.random.fold_in(jax.random.key(10_000 + spec.seed), K - 1)
    ns = evaluate_new_site(algorithm=algo, states=kept[0].replace(key=jnp.stack(keys)), rows=rows, samples=samples, data=data,
                           site_idx=site_idx, settings=spec.settings, site=spec.new_site,
                           make_trainer=lambda t: build_local_trainer(spec, model, t), tx=tx)
    return res, ns


def _numbers(sites: dict) -> dict:
    """Per-site results without the wall-clock timings."""
    return {name: {kind: ({r: {k: v for k, v in m.items() if not k.endswith("-seconds")} for r, m in val.items()}
                          if kind == "train" else val) for kind, val in site.items()}
            for name, site in sites.items()}


def test_a_flower_run_takes_a_new_site_but_not_with_dp_or_secagg():
    spec = run_spec(dict(RUN, algorithm="fedavg"))
    assert spec.new_site.name == "client2" and spec.new_site.adapt_k == (1,) and spec.new_site.repeats == 2
    assert run_spec(dict(RUN, **{"config-overrides": RECIPE})).new_site is None
    for extra in ({"dp": True, "dp-num-sites": 2}, {"secagg": True, "min-nodes": 3}):
        with pytest.raises(ConfigError, match=r"^fl.new_site='client2' with run-config (dp|secagg)=true: not supported"):
            run_spec(dict(RUN, algorithm="fedavg", **extra))
    with pytest.raises(ConfigError, match="fl.adapt_k"):
        run_spec(dict(RUN, **{"config-overrides": "fl.new_site=client2 fl.adapt_k=(0,)"}))


@pytest.mark.parametrize("algorithm", ["fedavg", "fedrep"])
def test_the_new_site_on_flower_equals_the_simulator(algorithm, server_identity):
    run_config = dict(RUN, algorithm=algorithm)
    sim, sim_ns = run_simulator(run_config)
    res, grid, printed = run_flower(run_config)
    assert sim["clients"] == ["client0", "client1"] and len(set(sim["num_train"])) == 1

    # it never took part: no train or evaluate message went to its node, it is in no
    # round's accounts, the other sites' numbers are the simulator's without it
    assert {t for t, n in grid.sent if n == NEW} == {MessageType.QUERY}
    assert sorted(n for t, n in grid.sent if t == MessageType.TRAIN) == [100, 101]
    assert res["node_roles"][str(NEW)] == {"site": "client2", "role": "new-site"}
    for rnd in res["per_round"].values():
        assert "client2" not in rnd["accepted"] + rnd["missing"] + list(rnd["rejected"])
    assert sorted(res["sites"]) == ["client0", "client1"]
    for k, name in enumerate(sim["clients"]):
        site = res["sites"][name]
        np.testing.assert_allclose(site["train"][1]["train-loss"], sim["loss_per_round"][0][k], rtol=1e-4, atol=1e-4)
        for kind in ("personal", "deployed"):
            for m in ("uf1", "uar", "accuracy"):
                np.testing.assert_allclose(site[kind][m], sim[kind][k][m], atol=1e-4)

    # k = 0: the mean of the deployed models, scored on all its samples, exactly; k = 1:
    # the same draws and fine-tuning, its other subjects
    ns = res["new_site"]
    assert "error" not in ns, ns
    assert ns["deployed_from"] == ["client0", "client1"] and ns["weights"] == [float(n) for n in sim["num_train"]]
    assert (ns["subjects"], ns["samples"]) == (sim_ns["subjects"], sim_ns["samples"]) == (2, 8)
    for m in ("uf1", "uar", "accuracy"):
        assert ns["k"]["0"][m] == pytest.approx(sim_ns["start"][0][m], abs=1e-9), m
    runs = sim_ns["adapt"]["1"]
    assert ns["k"]["1"]["draws"] == len(runs) == 2
    for m in ("uf1", "uar"):
        assert ns["k"]["1"][f"start_{m}"] == pytest.approx(np.nanmean([r["start"][m] for r in runs]), abs=1e-9)
        assert ns["k"]["1"][m] == pytest.approx(np.nanmean([r["adapted"][m] for r in runs]), abs=1e-4)
    assert "new site client2 (2 subjects, 8 samples) k=0: UF1" in printed and "new site client2 k=1: UF1" in printed

    # what left the new site: one reply of scalars and its name; its ClientApp refuses
    # to train even when asked
    ctx = grid.contexts[NEW]
    cfg = ConfigRecord({"server-round": 1, "final-round": True})
    for kind in (MessageType.TRAIN, MessageType.EVALUATE):
        msg = Message(content=RecordDict({"config": cfg}), message_type=kind, dst_node_id=NEW)
        reply = client_app.app(msg, ctx)
        assert reply.has_error() and "new site" in reply.error.reason
    assert client_app.STATE_KEY not in ctx.state
    new_replies = [r for r in res["replies"] if r["node"] == NEW]
    assert new_replies == []        # the round manifest holds train/evaluate replies only
    if algorithm == "fedrep":       # the final evaluation brought each site's whole model
        final = [r for r in res["replies"] if r["kind"] == "evaluate"]
        assert all(any("classifier" in n for n in r["records"]["arrays"]["arrays"]) for r in final)


def test_noise_at_the_new_site_changes_nothing_else_and_a_missing_one_is_reported(monkeypatch, server_identity):
    """Its data replaced by noise (other labels too): every other site's result is the
    same to the bit; its own scores change. Without its SuperNode the run still ends,
    with the same results, and says so."""
    run_config = dict(RUN, algorithm="fedavg")
    base, _, _ = run_flower(run_config)

    load = site_module.load_site_samples

    def noisy(node_config, spec):
        name, pid, samples = load(node_config, spec)
        if name != "client2":
            return name, pid, samples
        rng = np.random.default_rng(0)
        return name, pid, dataclasses.replace(
            samples,
            flow28=rng.random(samples.flow28.shape, np.float32),
            flow128=rng.random(samples.flow128.shape, np.float32),
            label=(samples.label + 1) % 3,
        )

    monkeypatch.setattr(site_module, "load_site_samples", noisy)
    monkeypatch.setattr(client_app, "_SITES", {})
    other, _, _ = run_flower(run_config)
    assert _numbers(other["sites"]) == _numbers(base["sites"])
    assert other["new_site"]["weights"] == base["new_site"]["weights"]
    assert other["new_site"]["k"] != base["new_site"]["k"]

    absent, grid, printed = run_flower(run_config, nodes=range(K - 1))
    assert _numbers(absent["sites"]) == _numbers(base["sites"])
    assert "no SuperNode said it is 'client2'" in absent["new_site"]["error"]
    assert "new site client2: not scored" in printed


# the settings of RUN, as Flower run-config overrides for the deployment script
RUN_CONFIG = ("use-au-branch=false batch-size=4 eval-batch-size=8 oversample=false lr=0.001 mu=0.05 seed=0 "
              f"dataset-kw='{json.dumps(KW)}' config-overrides='{RECIPE} {NEW_SITE}'")


@pytest.mark.slow
@DEPLOYMENTS
def test_a_loopback_deployment_with_a_new_site(tmp_path):
    """Three SuperNodes on loopback, the third the new site: it joins, is never sent a
    round's message, and its scores through the real transport are the simulator's."""
    rc, out, leftovers, _ = run_deployment(
        tmp_path, ["--sites", str(K), "--min-nodes", "2", "--rounds", "1", "--algorithm", "fedavg",
                   "--run-config", RUN_CONFIG], LIMIT)
    assert rc == 0, f"script failed ({rc}):\n{out}\n{logs_of(tmp_path)}"
    assert not leftovers, f"processes still running after the script: {leftovers}"
    res = json.loads((tmp_path / "results" / "flower_results.json").read_text())
    assert sorted(res["sites"]) == ["client0", "client1"]
    new_nodes = [n for n, r in res["node_roles"].items() if r["role"] == "new-site"]
    assert len(new_nodes) == 1 and res["node_roles"][new_nodes[0]]["site"] == "client2"
    assert all(str(r["node"]) not in new_nodes for r in res["replies"])
    assert res["per_round"]["1"]["accepted"] == ["client0", "client1"] and not res["per_round"]["1"]["missing"]
    assert "new site client2 (2 subjects, 8 samples) k=0: UF1" in out and "new site client2 k=1: UF1" in out

    _, sim_ns = run_simulator(dict(RUN, algorithm="fedavg"))
    ns = res["new_site"]
    for m in ("uf1", "uar", "accuracy"):
        assert ns["k"]["0"][m] == pytest.approx(sim_ns["start"][0][m], abs=1e-9), m
    for m in ("uf1", "uar"):
        assert ns["k"]["1"][m] == pytest.approx(np.nanmean([r["adapted"][m] for r in sim_ns["adapt"]["1"]]), abs=1e-4)
