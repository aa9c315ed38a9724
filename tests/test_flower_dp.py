"""Client-level DP on Flower (``federated/flower/dp.py``) against the simulator's DP.

- settings that cannot be accounted are refused before round 1, naming the key;
- (b) every update a site sends is within C of what it received (Flower's
  ``fixedclipping_mod`` through the app's ``dp.clip_mod``), and the contribution the
  site keeps is exactly what the mod sent;
- (a) the ε a deployment reports each round (Flower's central-DP wrapper around the
  project's strategy, driven with hand-made replies) equals ``run_dp_federation``'s for
  the same settings, and the wrapper's noise has std z·C/m on the mean (z·C on the sum);
- (c) with z = 0 and a huge C the DP deployment (real wrapper, real mod, real ClientApp
  handlers, messages in-process as in test_flower_equivalence.py) gives every site the
  simulator's per-round losses, personal and deployed scores.
"""
import json

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402

from fedpsyau_jax.federated.flower import client_app, dp  # noqa: E402
from fedpsyau_jax.federated.flower.settings import build, run_spec, upload_template  # noqa: E402
from fedpsyau_jax.federated.flower.strategies import FedPsyAUStrategy  # noqa: E402
from fedpsyau_jax.federated.privacy import DPSettings, PrivacyError  # noqa: E402
from test_flower_equivalence import K, KW, RUN, _context, _message  # noqa: E402

ZERO_NOISE = {"dp": True, "dp-clip-norm": 1e6, "dp-noise-multiplier": 0.0, "dp-allow-no-noise": True,
              "min-nodes": K}


@pytest.fixture
def server_identity(monkeypatch):
    """A ServerApp process has its task identity set by Flower; the strategy builds
    instruction Messages, which read it (here: the SuperLink's node 0, run 1)."""
    from flwr.supercore.task_identity import TaskIdentity
    for attr, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)


class FakeGrid:
    """What the strategy asks a Grid for when it builds messages (node ids)."""
    def __init__(self, nodes):
        self.nodes = list(nodes)

    def get_node_ids(self):
        return list(self.nodes)


@pytest.mark.parametrize("bad, needle", [
    ({"dp-noise-multiplier": 0.0}, "run-config dp-noise-multiplier"),
    ({"dp-clip-norm": -1.0}, "run-config dp-clip-norm"),
    ({"dp-delta": 1.0}, "run-config dp-delta"),
    ({"dp-sampling": "poisson"}, "run-config dp-sampling"),
    ({"dp-sampling": "fixed", "dp-per-round": 5}, "run-config dp-per-round"),
    ({"secagg": True}, "secagg=true"),
])
def test_unaccountable_settings_refused_in_one_line(bad, needle):
    with pytest.raises(PrivacyError) as e:
        run_spec({"dp": True, "min-nodes": 3, **bad})
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_dp_off_by_default():
    assert run_spec({}).dp is None and run_spec({}).secagg is None
    s = run_spec({"dp": True, "min-nodes": 3, "dp-sampling": "fixed", "dp-per-round": 2}).dp
    assert (s.num_clients, s.per_round, dp.divisor(s)) == (3, 2, 2.0)


def _clip_msg(received: dict, clip: float | None):
    cfg = {"server-round": 2, dp.RELEASE_ROUND: 1, dp.IN_RELEASE: True}
    if clip is not None:
        cfg["clipping_norm"] = clip
    return _message(7, "train", RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in received.items()}),
                                            "config": ConfigRecord(cfg)}))


def test_clip_mod_bounds_every_update_a_site_sends():
    """(b) ‖reply − received‖ ≤ C over the whole upload, small updates untouched, and
    ``dp.contribution`` (what the site keeps) equals what the mod sent."""
    rng = np.random.default_rng(0)
    received = {"params/a": rng.normal(size=(3, 4)).astype(np.float32),
                "batch_stats/b": rng.normal(size=(5,)).astype(np.float32)}
    ctx = Context(run_id=1, node_id=7, state=RecordDict(), run_config={"dp": True}, node_config={})
    clip = 0.5
    for scale in (0.01, 1.0, 100.0):
        upload = {k: v + scale * rng.normal(size=v.shape).astype(np.float32) for k, v in received.items()}

        def handler(msg, context, upload=upload):
            return Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in upload.items()}),
                                       "metrics": MetricRecord({"num-examples": 6.0}),
                                       "site": ConfigRecord({"name": "x"})}), reply_to=msg)
        out = dp.clip_mod(_clip_msg(received, clip), ctx, handler)
        assert not out.has_error()
        sent = {k: a.numpy() for k, a in out.content["arrays"].items()}
        norm = np.sqrt(sum(np.sum((sent[k] - received[k]) ** 2) for k in received))
        raw = np.sqrt(sum(np.sum((upload[k] - received[k]) ** 2) for k in received))
        assert norm <= clip * (1 + 1e-5), (scale, norm)
        if raw <= clip:
            for k in received:
                np.testing.assert_allclose(sent[k], upload[k], atol=1e-6)
        else:
            assert norm == pytest.approx(clip, rel=1e-5)
        kept = dp.contribution({"x": received}, {"x": upload}, clip)["x"]
        for k in received:
            np.testing.assert_allclose(kept[k], sent[k], atol=1e-6)
    # a DP site never sends an unclipped update: no clipping norm -> an error reply
    out = dp.clip_mod(_clip_msg(received, None), ctx, lambda m, c: pytest.fail("handler ran"))
    assert out.has_error() and "clipping_norm" in out.error.reason
    # DP off: the mod does nothing
    plain = Context(run_id=1, node_id=7, state=RecordDict(), run_config={"dp": False}, node_config={})
    sentinel = object()
    assert dp.clip_mod(_clip_msg(received, None), plain, lambda m, c: sentinel) is sentinel


def _simulator_dp(run_config: dict) -> dict:
    from test_flower_equivalence import run_simulator
    return run_simulator(run_config, dp=DPSettings(**{**run_spec(run_config).dp.__dict__, "num_clients": 0}))


def _dp_strategy(run_config: dict):
    spec = run_spec(run_config)
    model, tx, algo = build(spec)
    inner = FedPsyAUStrategy(algo, upload_template(model, tx, algo), spec.rounds,
                             min_nodes=spec.min_nodes, dp=spec.dp)
    r0 = dp.initial_reference(model, tx, algo, spec.seed)
    return spec, inner, dp.wrap_strategy(inner, spec.dp), r0


def test_epsilon_and_noise_scale_match_the_simulator(server_identity):
    """(a) Flower's wrapper around the strategy, hand-made replies (no training):
    ε per round = run_dp_federation's for the same settings (fixed 2 of 3 sites), and
    the release's noise has std z·C/m per coordinate."""
    from fedpsyau_jax.federated.flower import wire
    run_config = dict(RUN, algorithm="fedavg", **{"dp": True, "dp-clip-norm": 0.2,
                                                   "dp-noise-multiplier": 1.1, "dp-sampling": "fixed",
                                                   "dp-per-round": 2, "min-nodes": K})
    spec, inner, outer, r0 = _dp_strategy(run_config)
    grid = FakeGrid([100 + k for k in range(K)])
    arrays = wire.to_array_record(r0)
    rng = np.random.default_rng(1)
    for rnd in (1, 2):
        msgs = list(outer.configure_train(rnd, arrays, ConfigRecord(), grid))
        assert len(msgs) == 2                                          # fixed: 2 of 3
        assert all(m.content["config"]["clipping_norm"] == 0.2 for m in msgs)
        ref = wire.from_array_record(msgs[0].content["arrays"], inner.upload_template)
        replies = []
        for m in msgs:
            node = m.metadata.dst_node_id
            up = {k: v + 1e-3 * rng.normal(size=v.shape).astype(v.dtype)
                  for k, v in wire.flatten(ref).items()}
            content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in up.items()}),
                                  "metrics": MetricRecord({"num-examples": 6.0, "train-loss": 1.0}),
                                  "site": ConfigRecord({"name": f"client{node - 100}"})})
            replies.append(Message(content, reply_to=_message(node, "train", m.content)))
        mean = {k: np.mean([r.content["arrays"][k].numpy() for r in replies], axis=0)
                for k in replies[0].content["arrays"].keys()}
        arrays, _ = outer.aggregate_train(rnd, replies)
        noise = np.concatenate([(arrays[k].numpy() - mean[k]).ravel() for k in mean])
        # std of the noise on the mean: z*C/m = 1.1*0.2/2 (3.2M coordinates: tight)
        assert np.std(noise) == pytest.approx(1.1 * 0.2 / 2, rel=0.01)
    eps = inner.results()["dp"]["epsilon_per_round"]
    sim = _simulator_dp(dict(run_config, **{"num-server-rounds": 2}))
    assert len(eps) == 2 and np.all(np.isfinite(eps))
    np.testing.assert_allclose(eps, sim["epsilon_per_round"], rtol=1e-12)


def run_dp_in_process(run_config: dict):
    """The DP deployment without the transport: Flower's wrapper builds and aggregates,
    the ClientApp's clipping mod wraps the real train handler."""
    from fedpsyau_jax.federated.flower import wire
    spec, inner, outer, r0 = _dp_strategy(run_config)
    contexts = {100 + k: _context(100 + k, k, run_config) for k in range(K)}
    grid = FakeGrid(contexts)
    arrays, sent_vs_received = wire.to_array_record(r0), []
    for rnd in range(1, spec.rounds + 1):
        replies = []
        for m in outer.configure_train(rnd, arrays, ConfigRecord(), grid):
            node = m.metadata.dst_node_id
            reply = dp.clip_mod(_message(node, "train", m.content), contexts[node], client_app.train)
            assert not reply.has_error(), reply.error
            sent_vs_received.append((reply.content["arrays"], m.content["arrays"]))
            replies.append(reply)
        arrays, _ = outer.aggregate_train(rnd, replies)
    replies = [client_app.evaluate(_message(m.metadata.dst_node_id, "evaluate", m.content),
                                   contexts[m.metadata.dst_node_id])
               for m in outer.configure_evaluate(spec.rounds, arrays, ConfigRecord(), grid)]
    outer.aggregate_evaluate(spec.rounds, replies)
    return inner, sent_vs_received


def test_dp_deployment_equals_dp_simulator_without_noise(server_identity):
    """(c) z = 0, C = 1e6: per-site losses, personal and deployed scores of the DP
    deployment equal run_dp_federation's (same seeds, equal-sized clients).

    P-FedProx only: its sites rebuild S = m·R' and take out their own kept
    contribution, which is everything FedAvg's sites do (adopt R') and more; FedAvg
    under DP is checked against the simulator in test_dp_federation.py, and this test
    costs about 2 CPU-minutes per algorithm (CI time)."""
    algorithm = "pfedprox"
    run_config = dict(RUN, algorithm=algorithm, **ZERO_NOISE)
    sim = _simulator_dp(run_config)
    inner, sent = run_dp_in_process(run_config)
    res = inner.results()
    assert res["dp"]["epsilon_per_round"] == sim["epsilon_per_round"] == [float("inf")] * 2
    assert json.loads(json.dumps(res))["dp"]["divisor"] == K
    for k, name in enumerate(sim["clients"]):
        site = res["sites"][name]
        for rnd in range(2):
            np.testing.assert_allclose(site["train"][rnd + 1]["train-loss"], sim["loss_per_round"][rnd][k],
                                       rtol=1e-4, atol=1e-4)
        for kind in ("personal", "deployed"):
            for m in ("uf1", "uar", "accuracy"):
                np.testing.assert_allclose(site[kind][m], sim[kind][k][m], atol=1e-4,
                                           err_msg=f"{algorithm} {name} {kind} {m}")
    # every reply carried the received arrays' names in order (what the mod requires)
    for reply, received in sent:
        assert list(reply.keys()) == list(received.keys())
    assert all(r["server_reclipped"] == 0 for r in res["per_round"].values() if "epsilon" in r)
