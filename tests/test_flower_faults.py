"""Fault drills on a real loopback deployment (run in CI, marked slow).

Each drill runs scripts/flower_local_deployment.sh with 3 SuperNodes and kills
SuperNode 2 (with its ClientApp) once round 2 has started: the round goes on with the
other two and the site rejoins from its own state; with a minimum of 3 the run stops
with a clear error instead of hanging. Measured: 139 s and 93 s on an idle 2-core
machine (the SuperLink needs two missed heartbeats to declare a node unavailable).
"""
import json

import pytest

pytest.importorskip("flwr")

from test_flower_deployment import RUN_CONFIG, _started, logs_of, run_deployment  # noqa: E402

# Slow (about 4 min together on an idle 2-core machine) but run in CI: the issue asks
# for each fault to be a test.
# The drills share one xdist worker with every other real deployment of the suite
# (test_flower_deployment.DEPLOYMENTS): one deployment at a time.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flower_deployments")]
LIMIT = 720


def test_killed_supernode_round_goes_on_and_the_site_rejoins(tmp_path):
    rc, out, leftovers, wall = run_deployment(
        tmp_path, ["--sites", "3", "--rounds", "3", "--min-nodes", "2", "--kill-site", "2",
                   "--at-round", "2", "--restart-after", "10",
                   "--run-config", RUN_CONFIG + " round-timeout=300"], LIMIT)
    assert rc == 0, f"{out}\n{logs_of(tmp_path)}"
    assert not leftovers and _started(tmp_path)
    res = json.loads((tmp_path / "results" / "flower_results.json").read_text())
    r2, r3 = res["per_round"]["2"], res["per_round"]["3"]
    assert r2["accepted"] == ["client0", "client1"]
    assert "client2" in r2["missing"] or "Node Unavailable" in r2["rejected"].get("client2", "")
    assert r3["accepted"] == ["client0", "client1", "client2"]          # rejoined
    assert "client2" in (tmp_path / "logs" / "run.log").read_text()     # the log names it
    restarted = (tmp_path / "logs" / "supernode2.restarted.log").read_text()
    assert "state restored from" in restarted                           # resumed its own state
    assert set(res["sites"]["client2"]["train"]) == {"1", "3"}


def test_below_the_minimum_is_a_clear_error_not_a_hang(tmp_path):
    rc, out, leftovers, wall = run_deployment(
        tmp_path, ["--sites", "3", "--rounds", "3", "--min-nodes", "3", "--kill-site", "2",
                   "--at-round", "2", "--run-config", RUN_CONFIG + " round-timeout=300"], LIMIT)
    assert rc != 0 and wall < LIMIT
    assert not leftovers
    log = (tmp_path / "logs" / "run.log").read_text()
    assert "RoundFailed" in log and "needs 3" in log and "client2" in log, log[-3000:]
    assert not (tmp_path / "results" / "flower_results.json").exists()
