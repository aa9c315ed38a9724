"""Flower server side: the strategy's math is the simulator's, bad replies are rejected
and named, what each algorithm uploads (fast: hand-made pytrees, no network)."""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Array, ConfigRecord, Message, Metadata, MetricRecord, RecordDict  # noqa: E402

from fedpsyau_jax.federated import ClientUpload, make_algorithm, make_upload  # noqa: E402
from fedpsyau_jax.federated.aggregation import fedavg_params, pfedprox_mix  # noqa: E402
from fedpsyau_jax.federated.flower import wire  # noqa: E402
from fedpsyau_jax.federated.flower.strategies import (FedPsyAUStrategy, RoundFailed,  # noqa: E402
                                                      reduce_uploads, wait_for_nodes)
from fedpsyau_jax.federated.upload import filter_upload  # noqa: E402
from fedpsyau_jax.training.train_state import TrainState  # noqa: E402

K = 3
N = np.array([10.0, 30.0, 60.0], np.float32)


def _client_tree(rng):
    return {"params": {"lfe": {"kernel": rng.normal(size=(3, 3, 2)).astype(np.float32)},
                       "dsi": {"classifier": {"kernel": rng.normal(size=(4, 3)).astype(np.float32)},
                               "flow_dense": {"bias": rng.normal(size=(5,)).astype(np.float32)}}},
            "batch_stats": {"lfe": {"mean": rng.normal(size=(2,)).astype(np.float32)}}}


@pytest.fixture()
def clients():
    rng = np.random.default_rng(0)
    return [_client_tree(rng) for _ in range(K)]


def _stacked(clients):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *clients)


def _state(tree):
    k = jax.tree.leaves(tree)[0].shape[0]
    return TrainState(params=tree["params"], batch_stats=tree["batch_stats"], priors={},
                      opt_state=jnp.zeros((k, 1)), step=jnp.zeros((k,), jnp.int32),
                      key=jax.random.split(jax.random.key(0), k))


def _upload_of(algo, client):
    up = filter_upload(ClientUpload(params=client["params"], batch_stats=client["batch_stats"],
                                    num_samples=jnp.ones(())), algo)
    return {"params": up.params, "batch_stats": up.batch_stats}


def _client_message(algo, client, n, broadcast):
    """The client half as a site runs it: own params (client axis 1) + broadcast."""
    rows = jax.tree.map(lambda x: jnp.asarray(x)[None], broadcast)
    own = jax.tree.map(lambda x: jnp.asarray(x)[None], client["params"])
    return algo.combine(own, jnp.asarray([n]), rows)


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "pfedprox", "fedrep", "local"])
def test_server_reduce_plus_client_combine_equals_simulator(name, clients):
    """Flower's split (server reduce on K uploads, each client combining its own row)
    gives every client exactly the simulator's ServerMessage row."""
    algo = make_algorithm(name, mu=0.01, theta=0.9)
    stacked = _stacked(clients)
    sim = algo.aggregate(ClientUpload(params=stacked["params"], batch_stats=stacked["batch_stats"],
                                      num_samples=jnp.asarray(N)), jnp.zeros(K, jnp.int32), 1)
    broadcast = reduce_uploads(algo, [_upload_of(algo, c) for c in clients], list(N))
    if name == "local":
        assert broadcast is None and sim.params is None
        return
    for i, c in enumerate(clients):
        msg = _client_message(algo, c, N[i], broadcast)
        for a, b in zip(jax.tree.leaves(msg.params), jax.tree.leaves(sim.params)):
            np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[i], rtol=1e-5, atol=1e-6)
        if sim.batch_stats is None:
            assert msg.batch_stats is None
        else:
            for a, b in zip(jax.tree.leaves(msg.batch_stats), jax.tree.leaves(sim.batch_stats)):
                np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[i], rtol=1e-5, atol=1e-6)


def test_pfedprox_broadcast_is_only_sum_and_count(clients):
    algo = make_algorithm("pfedprox", theta=0.9)
    b = reduce_uploads(algo, [_upload_of(algo, c) for c in clients], list(N))
    assert set(b) == {"sum", "count"}
    np.testing.assert_allclose(b["count"], N.sum())
    w = np.stack([c["params"]["lfe"]["kernel"] for c in clients])
    np.testing.assert_allclose(b["sum"]["lfe"]["kernel"], np.einsum("i,i...->...", N, w), rtol=1e-5)
    # ... and the client's own mix reproduces eq. 6
    mixed = pfedprox_mix(_stacked(clients)["params"], jnp.asarray(N), jnp.zeros(K, jnp.int32), 1, 0.9)
    own = _client_message(algo, clients[1], N[1], b).params
    np.testing.assert_allclose(own["lfe"]["kernel"][0], mixed["lfe"]["kernel"][1], rtol=1e-5, atol=1e-6)


def test_fedavg_broadcast_is_the_weighted_mean(clients):
    algo = make_algorithm("fedavg")
    b = reduce_uploads(algo, [_upload_of(algo, c) for c in clients], list(N))
    w = np.stack([c["params"]["lfe"]["kernel"] for c in clients])
    np.testing.assert_allclose(b["params"]["lfe"]["kernel"], np.einsum("i,i...->...", N / N.sum(), w),
                               rtol=1e-5, atol=1e-6)
    st = fedavg_params(ClientUpload(**_stacked(clients), num_samples=jnp.asarray(N)),
                       jnp.zeros(K, jnp.int32), 1)
    np.testing.assert_allclose(b["batch_stats"]["lfe"]["mean"], st[1]["lfe"]["mean"][0], rtol=1e-6)


def test_uploads_carry_only_what_is_aggregated(clients):
    """Simulator and Flower share make_upload: P-FedProx and Local send no BN
    statistics, Local no params, FedRep no heads, FedAvg everything."""
    st = _state(_stacked(clients))
    n = jnp.asarray(N)
    full = make_upload(st, n)
    assert full.batch_stats is not None
    assert make_upload(st, n, make_algorithm("pfedprox")).batch_stats is None
    assert make_upload(st, n, make_algorithm("pfedprox")).params is not None
    local = make_upload(st, n, make_algorithm("local"))
    assert local.params is None and local.batch_stats is None
    rep = make_upload(st, n, make_algorithm("fedrep"))
    names = wire.spec(rep.params)
    assert "lfe/kernel" in names and "dsi/flow_dense/bias" in names
    assert not any("classifier" in k for k in names)
    assert set(wire.spec(make_upload(st, n, make_algorithm("fedavg")).params)) == set(wire.spec(full.params))


# ------------------------------------------------------------------ reply screening
def _reply(node, arrays: dict | None, metrics: dict, site: str, extra=None):
    md = Metadata(run_id=1, message_id=f"r{node}", src_node_id=node, dst_node_id=0,
                  reply_to_message_id=f"m{node}", group_id="1", created_at=0.0, ttl=60.0,
                  message_type="train")
    content = {"metrics": MetricRecord(metrics), "site": ConfigRecord({"name": site})}
    if arrays is not None:
        content["arrays"] = wire.to_array_record(arrays)
    if extra:
        content.update(extra)
    return Message(RecordDict(content), metadata=md)


def _template(algo, client):
    return jax.eval_shape(lambda: _upload_of(algo, client))


def test_bad_replies_are_rejected_named_and_left_out(clients, caplog):
    algo = make_algorithm("fedavg")
    tmpl = _template(algo, clients[0])
    strat = FedPsyAUStrategy(algo, tmpl, num_rounds=2, min_nodes=2)
    strat._sent[("train", 1)] = [1, 2, 3, 4, 5, 6, 7]
    nan = jax.tree.map(np.copy, _upload_of(algo, clients[2]))
    nan["params"]["lfe"]["kernel"][0, 0, 0] = np.nan
    inf = jax.tree.map(np.copy, _upload_of(algo, clients[2]))
    inf["batch_stats"]["lfe"]["mean"][1] = np.inf
    shaped = jax.tree.map(np.copy, _upload_of(algo, clients[2]))
    shaped["params"]["dsi"]["flow_dense"]["bias"] = np.zeros(6, np.float32)
    leaky = _upload_of(algo, clients[2])
    replies = [
        _reply(1, _upload_of(algo, clients[0]), {"num-examples": float(N[0]), "train-loss": 1.0}, "siteA"),
        _reply(2, _upload_of(algo, clients[1]), {"num-examples": float(N[1]), "train-loss": 2.0}, "siteB"),
        _reply(3, nan, {"num-examples": float(N[2]), "train-loss": 1.0}, "siteNaN"),
        _reply(4, inf, {"num-examples": float(N[2]), "train-loss": 1.0}, "siteInf"),
        _reply(5, shaped, {"num-examples": float(N[2]), "train-loss": 1.0}, "siteShape"),
        _reply(6, leaky, {"num-examples": float(N[2]), "train-loss": 1.0}, "siteLeak",
               extra={"data": ConfigRecord({"labels": [0, 1, 2]})}),
    ]                                                     # node 7 never answers
    with caplog.at_level(logging.WARNING, logger="fedpsyau.flower"):
        arrays, metrics = strat.aggregate_train(1, replies)
    rej = strat.rounds[1]["rejected"]
    assert set(rej) == {"siteNaN", "siteInf", "siteShape", "siteLeak"}
    assert "lfe/kernel" in rej["siteNaN"] and "non-finite" in rej["siteNaN"]
    assert "lfe/mean" in rej["siteInf"]
    assert "flow_dense/bias" in rej["siteShape"] and "[6]" in rej["siteShape"]
    assert "data" in rej["siteLeak"]
    assert strat.rounds[1]["missing"] == ["node 7"]
    for name in ("siteNaN", "siteInf", "siteShape", "siteLeak", "node 7"):
        assert name in caplog.text
    # the aggregate is the weighted mean of the two good replies only
    expect = (N[0] * clients[0]["params"]["lfe"]["kernel"] + N[1] * clients[1]["params"]["lfe"]["kernel"]) / (N[0] + N[1])
    got = arrays["params/lfe/kernel"].numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    assert metrics["num-sites"] == 2
    np.testing.assert_allclose(metrics["train-loss"], (N[0] * 1 + N[1] * 2) / (N[0] + N[1]), rtol=1e-6)


def test_bad_metrics_are_rejected(clients):
    algo = make_algorithm("pfedprox")
    strat = FedPsyAUStrategy(algo, _template(algo, clients[0]), num_rounds=1, min_nodes=1)
    up = _upload_of(algo, clients[0])
    replies = [_reply(1, up, {"num-examples": 0.0, "train-loss": 1.0}, "zero"),
               _reply(2, up, {"num-examples": 5.0, "train-loss": float("nan")}, "nanloss"),
               _reply(3, up, {"num-examples": 5.0, "train-loss": 1.0, "labels": [1, 2]}, "extra"),
               _reply(4, up, {"num-examples": 5.0, "train-loss": 1.0}, "ok")]
    strat.aggregate_train(1, replies)
    assert set(strat.rounds[1]["rejected"]) == {"zero", "nanloss", "extra"}
    assert strat.rounds[1]["accepted"] == ["ok"]


def test_below_minimum_is_a_clear_error(clients):
    algo = make_algorithm("fedavg")
    strat = FedPsyAUStrategy(algo, _template(algo, clients[0]), num_rounds=2, min_nodes=2)
    strat._sent[("train", 1)] = [1, 2]
    with pytest.raises(RoundFailed, match="1 valid repl.*needs 2.*missing: \\['node 2'\\]"):
        strat.aggregate_train(1, [_reply(1, _upload_of(algo, clients[0]),
                                         {"num-examples": 3.0, "train-loss": 1.0}, "a")])


def test_waiting_for_nodes_is_bounded():
    assert wait_for_nodes(lambda: [3, 1, 2], 2, timeout=0.1) == [1, 2, 3]
    with pytest.raises(RoundFailed, match="only 1 SuperNode"):
        wait_for_nodes(lambda: [1], 3, timeout=0.3, poll=0.05)


def test_reply_array_record_from_a_foreign_model_is_rejected(clients):
    algo = make_algorithm("fedavg")
    strat = FedPsyAUStrategy(algo, _template(algo, clients[0]), num_rounds=1, min_nodes=1)
    good = _reply(1, _upload_of(algo, clients[0]), {"num-examples": 3.0, "train-loss": 1.0}, "a")
    bad = _reply(2, {"conv": np.zeros(3, np.float32)}, {"num-examples": 3.0, "train-loss": 1.0}, "b")
    bad.content["arrays"]["flow28"] = Array(np.zeros((28, 28, 3), np.float32))
    strat.aggregate_train(1, [good, bad])
    assert "missing" in strat.rounds[1]["rejected"]["b"] and "flow28" in strat.rounds[1]["rejected"]["b"]


def test_superlink_error_reply_is_attributed_to_the_unavailable_site(clients):
    """A SuperLink-made error reply ('Node Unavailable') names the site it was sent to."""
    from flwr.app import Error
    algo = make_algorithm("fedavg")
    strat = FedPsyAUStrategy(algo, _template(algo, clients[0]), num_rounds=2, min_nodes=2)
    strat.node_sites = {1: "a", 2: "b", 3: "c"}            # learnt in round 1
    sent = []
    for node in (1, 2, 3):
        md = Metadata(run_id=1, message_id=f"m{node}", src_node_id=0, dst_node_id=node,
                      reply_to_message_id="", group_id="1", created_at=0.0, ttl=60.0,
                      message_type="train")
        sent.append(Message(RecordDict(), metadata=md))
    strat._sent_msgs[("train", 2)] = sent
    strat._sent[("train", 2)] = [1, 2, 3]
    err_md = Metadata(run_id=1, message_id="e", src_node_id=999, dst_node_id=0,
                      reply_to_message_id="m3", group_id="1", created_at=0.0, ttl=60.0,
                      message_type="train")
    replies = [_reply(1, _upload_of(algo, clients[0]), {"num-examples": 3.0, "train-loss": 1.0}, "a"),
               _reply(2, _upload_of(algo, clients[1]), {"num-examples": 3.0, "train-loss": 1.0}, "b"),
               Message(metadata=err_md, error=Error(code=1, reason="Node Unavailable"))]
    strat.aggregate_train(2, replies)
    assert strat.rounds[2]["rejected"] == {"c": "error reply: Node Unavailable"}
    assert strat.rounds[2]["missing"] == [] and strat.rounds[2]["accepted"] == ["a", "b"]
