"""SecAgg+ on Flower (``federated/flower/secagg.py``), in-process.

The real ``SecAggPlusWorkflow`` (legacy ``DefaultWorkflow``) drives the real ClientApp
(``client_app.app`` with its mods: Flower's ``secaggplus_mod``) for 3 sites; every
message goes through Flower's protobuf serialisation, as on the wire. Checked:

- each round's securely aggregated broadcast equals the algorithm's plain ``reduce``
  of the very same uploads (recorded at the sites) to within the quantisation bound
  k·(2c/T)/Σ dq_i (``secagg.error_bound``; here c = 8, T = 2**22, W = 8, n_i = 6:
  3·(16/2**22)/(3·0.75) ≈ 5.1e-6 per coordinate of the mean; P-FedProx's S = N·mean,
  so N times that);
- the server side never holds an individual update: every reply that reaches the
  server carries no array at all (the masked vector travels as bytes in a config
  record), and ``aggregate_fit`` gets one and the same parameters object for all sites;
- fewer than 3 sites, Local, and plain train messages in a SecAgg+ run are refused.
"""
import json

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Context, Message, Metadata, RecordDict  # noqa: E402

from fedpsyau_jax.federated.flower import client_app, secagg  # noqa: E402
from fedpsyau_jax.federated.flower.settings import build, run_spec  # noqa: E402
from fedpsyau_jax.federated.flower.site import Site  # noqa: E402
from fedpsyau_jax.federated.flower.strategies import reduce_uploads  # noqa: E402
from test_flower_equivalence import K, RUN, _context, _message  # noqa: E402

SECAGG = {"secagg": True, "min-nodes": K, "secagg-max-weight": 8.0}


@pytest.fixture
def server_identity(monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity
    for attr, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)


class _Run:
    run_id = 1


class LoopGrid:
    """A Grid whose messages go, serialised and parsed back as on the wire, to the
    ClientApp of each node in this process; records every reply the server gets."""

    def __init__(self, contexts):
        self.contexts = contexts
        self.run = _Run()
        self.replies = []
        self._n = 0

    def get_node_ids(self):
        return list(self.contexts)

    def send_and_receive(self, messages, *, timeout=None):
        from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
        out = []
        for m in messages:
            self._n += 1
            md = Metadata(run_id=1, message_id=f"m{self._n}", src_node_id=0,
                          dst_node_id=m.metadata.dst_node_id, reply_to_message_id="",
                          group_id=m.metadata.group_id, created_at=0.0, ttl=3600.0,
                          message_type=m.metadata.message_type)
            wire_in = Message(recorddict_from_proto(recorddict_to_proto(m.content)), metadata=md)
            reply = client_app.app(wire_in, self.contexts[m.metadata.dst_node_id])
            if reply.has_content():
                reply = Message(recorddict_from_proto(recorddict_to_proto(reply.content)),
                                reply_to=wire_in)
            self.replies.append(reply)
            out.append(reply)
        return out


def run_secagg_in_process(run_config, monkeypatch):
    """-> (results, strategy broadcasts, uploads {(site, round): tree}, grid)."""
    uploads, original = {}, Site.upload

    def spy(self, state):
        up = original(self, state)
        uploads[(self.name, int(np.asarray(state.step).reshape(-1)[0]))] = up
        return up
    monkeypatch.setattr(Site, "upload", spy)
    captured = {}
    orig_init = secagg.SecAggStrategy.__init__

    def keep(self, *a, **kw):
        orig_init(self, *a, **kw)
        captured["strategy"] = self
    monkeypatch.setattr(secagg.SecAggStrategy, "__init__", keep)
    spec = run_spec(run_config)
    model, tx, algo = build(spec)
    contexts = {100 + k: _context(100 + k, k, run_config) for k in range(K)}
    grid = LoopGrid(contexts)
    server_ctx = Context(run_id=1, node_id=0, state=RecordDict(), run_config=run_config, node_config={})
    res = secagg.run_secagg(grid, server_ctx, spec, model, tx, algo)
    return res, captured["strategy"], uploads, grid, algo


@pytest.mark.parametrize("algorithm", ["pfedprox", "fedavg"])
def test_secure_aggregate_equals_plain_reduce_within_quantisation(algorithm, server_identity, monkeypatch):
    run_config = dict(RUN, algorithm=algorithm, **SECAGG)
    res, strat, uploads, grid, algo = run_secagg_in_process(run_config, monkeypatch)
    json.dumps(res)
    assert sorted(res["sites"]) == [f"client{k}" for k in range(K)]
    for name, site in res["sites"].items():
        assert set(site["train"]) == {1, 2} and "personal" in site and "deployed" in site, name
        assert 0.0 <= site["deployed"]["uf1"] <= 1.0
    steps = sorted({s for _, s in uploads})              # local step counter after each round
    assert len(steps) == 2
    for rnd, step in zip((1, 2), steps):
        ups = [uploads[(f"client{k}", step)] for k in range(K)]
        n = [6.0] * K
        plain = reduce_uploads(algo, ups, n)
        secure = strat.broadcasts[rnd]
        bound = secagg.error_bound(K, n, run_spec(run_config).secagg)
        assert bound == pytest.approx(K * (16 / 2**22) / (K * round(6 / 8 * 2**22) / 2**22))
        scale = 1.0 if algorithm == "fedavg" else sum(n)        # P-FedProx: S = N * mean
        from fedpsyau_jax.federated.flower import wire
        fp, fs = wire.flatten(plain), wire.flatten(secure)
        assert fp.keys() == fs.keys()
        err = max(float(np.max(np.abs(fp[k].astype(np.float64) - fs[k]))) for k in fp)
        print(f"{algorithm} round {rnd}: max |secure - plain| {err:.3g}, bound {scale * bound:.3g}")
        assert 0 < err <= scale * bound * (1 + 1e-3) + 1e-6 * scale, (rnd, err, bound)
        # the aggregate is not any site's own update
        if algorithm == "fedavg":
            for u in ups:
                fu = wire.flatten(u)
                assert max(float(np.max(np.abs(fu[k] - fs[k]))) for k in fu) > 100 * bound
        assert strat.handed[rnd] == 1                 # one parameters object for all sites
    # nothing that reached the server carried an array: the masked vectors are bytes
    trains = [r for r in grid.replies if r.has_content() and r.metadata.message_type == "train"]
    assert len(trains) == 2 * 4 * K                      # 4 SecAgg+ stages per round
    for r in trains:
        assert all(len(rec) == 0 for rec in r.content.array_records.values())
    assert res["wire"]["train"]["exchanges"] == 2 * 4


def test_refusals(server_identity):
    with pytest.raises(secagg.SecAggError, match="min-nodes >= 3"):
        spec = run_spec(dict(RUN, secagg=True, **{"min-nodes": 2}))
        secagg.check(spec, build(spec)[2])
    with pytest.raises(secagg.SecAggError, match="communicates nothing"):
        spec = run_spec(dict(RUN, algorithm="local", secagg=True, **{"min-nodes": 3}))
        secagg.check(spec, build(spec)[2])
    # a site of a SecAgg+ run does not answer a plain train message
    ctx = _context(100, 0, dict(RUN, **SECAGG))
    msg = _message(100, "train", RecordDict({"config": ConfigRecord({"server-round": 1})}))
    out = client_app.app(msg, ctx)
    assert out.has_error() and "refuses" in out.error.reason


@pytest.mark.slow
@pytest.mark.xdist_group("flower_deployments")      # see test_flower_deployment.DEPLOYMENTS
def test_local_deployment_secagg_three_supernodes(tmp_path):
    """A real loopback deployment (scripts/flower_local_deployment.sh --secagg): one
    SuperLink, 3 SuperNodes, 2 rounds of FedAvg under SecAgg+ on tiny synthetic data
    (flow-only model). Every round runs the 4 SecAgg+ exchanges, every site gets
    scores, and the ServerApp's strategy got only the aggregate."""
    from test_flower_deployment import BIN, RUN_CONFIG, SITES, logs_of, run_deployment
    assert (BIN / "flower-superlink").exists()
    rc, out, leftovers, wall = run_deployment(
        tmp_path, ["--sites", str(SITES), "--rounds", "2", "--algorithm", "fedavg", "--secagg",
                   "--run-config", RUN_CONFIG + " secagg-max-weight=8.0"], 540)
    assert rc == 0, f"script failed ({rc}):\n{out}\n{logs_of(tmp_path)}"
    assert not leftovers
    res = json.loads((tmp_path / "results" / "flower_results.json").read_text())
    assert res["algorithm"] == "fedavg" and res["secagg"]["sites"] == SITES
    assert sorted(res["sites"]) == [f"client{k}" for k in range(SITES)]
    for name, site in res["sites"].items():
        assert set(site["train"]) == {"1", "2"}, name
        assert 0.0 <= site["deployed"]["uf1"] <= 1.0 and 0.0 <= site["personal"]["uar"] <= 1.0
    for rnd in ("1", "2"):
        r = res["per_round"][rnd]
        assert r["exchanges"] == 4 and r["failures"] == 0
        assert res["secagg"]["handed_parameter_objects"][rnd] == 1
    assert "SecAgg+ (3 sites)" in out
    print(f"SecAgg+ deployment: {wall:.0f} s wall; rounds: "
          + ", ".join(f"{k}: {v['seconds']:.1f} s" for k, v in res["per_round"].items()))
