"""A real Flower deployment on loopback, end to end (docs/flower.md, way 2).

scripts/flower_local_deployment.sh starts one flower-superlink and three
flower-supernode processes on 127.0.0.1, submits a 2-round FedAvg run on synthetic
data with `flwr run`, and stops what it started; the per-site losses and scores equal
the stacked simulator's for the same settings. The test bounds the whole script,
and in a finally stops the script (its trap then stops the Flower processes) and, if
anything it started is still alive, kills those exact process ids.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from cpu_priority import siblings_yield_cpu  # noqa: E402
from fedpsyau_jax.federated.flower.ports import free_base_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "flower_local_deployment.sh"
BIN = Path(sys.executable).parent
SITES = 3
# the settings of test_flower_equivalence.RUN, as Flower run-config overrides
# (the centralised recipe's schedule, flip, class weights and ROI source included)
RUN_CONFIG = ("use-au-branch=false batch-size=4 eval-batch-size=8 oversample=false lr=0.001 "
              "mu=0.05 theta=0.9 seed=0 dataset-kw='{\"num_subjects\": 6, \"samples_per_subject\": 4, "
              "\"num_classes\": 3, \"seed\": 1}' "
              "config-overrides='train.lr_schedule=warmup_cosine train.warmup_epochs=1.0 train.hflip=0.5 "
              "train.class_balance=weighted_ce train.au_norm=examples train.decay_kernels_only=true "
              "model.roi_source=flow28'")
LIMIT = 540          # s for the whole script (start-up, 2 rounds, evaluation, shutdown)
# Every real loopback deployment of the suite (this file, the SecAgg+ one, the fault
# drills) runs on ONE xdist worker, one after the other: each starts 4–5 processes
# that compile the same programs, so run one at a time the later ones load the first
# one's executables from the persistent compilation cache instead of compiling them
# 3–4 times at once; and several deployments at once on 2 cores starve heartbeats and
# ClientApp connections (a drill once lost an unkilled site that way).
DEPLOYMENTS = pytest.mark.xdist_group("flower_deployments")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:   # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _started(workdir: Path) -> list[int]:
    f = workdir / "pids"
    return [int(p) for p in f.read_text().split()] if f.is_file() else []


def run_deployment(workdir: Path, args: list[str], limit: float):
    """Run the deployment script, bounded by ``limit`` seconds; whatever happens, stop
    it (its trap stops the Flower processes) and then kill any process id it recorded
    as started that is still alive. Returns (exit code, output, leftovers, wall s)."""
    port = free_base_port(SITES + 1)
    env = dict(os.environ, FLWR_BIN=str(BIN), JAX_PLATFORMS="cpu")
    cmd = ["bash", str(SCRIPT), "--port", str(port), "--workdir", str(workdir),
           "--timeout", str(int(limit - 60)), *args]
    with siblings_yield_cpu():       # Flower's heartbeat deadlines vs. the other workers
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        t0 = time.monotonic()
        out = ""
        try:
            out, _ = proc.communicate(timeout=limit)
        finally:
            out = _stop(proc, workdir, out)
    leftovers = [p for p in _started(workdir) if _alive(p)]
    for p in leftovers:                           # exactly the ids it started
        os.kill(p, signal.SIGKILL)
    return proc.returncode, out, leftovers, time.monotonic() - t0


def _stop(proc, workdir: Path, out: str) -> str:
    """Stop the script if it still runs and wait (20 s at most) for what it started."""
    if proc.poll() is None:                       # bounded: stop the script (its trap
        proc.send_signal(signal.SIGTERM)          # stops the Flower processes)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate(timeout=10)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in _started(workdir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return out


def logs_of(workdir: Path) -> str:
    return "\n".join(f"--- {f.name}\n" + f.read_text(errors="replace")[-3000:]
                     for f in sorted((workdir / "logs").glob("*.log")))


@pytest.mark.slow
@DEPLOYMENTS
def test_local_deployment_three_supernodes_two_rounds(tmp_path):
    assert (BIN / "flower-superlink").exists() and (BIN / "flower-supernode").exists()
    rc, out, leftovers, wall = run_deployment(
        tmp_path, ["--sites", str(SITES), "--rounds", "2", "--algorithm", "fedavg",
                   "--run-config", RUN_CONFIG], LIMIT)
    assert rc == 0, f"script failed ({rc}):\n{out}\n{logs_of(tmp_path)}"
    assert not leftovers, f"processes still running after the script: {leftovers}"
    assert len(_started(tmp_path)) >= SITES + 2       # SuperLink (+SuperExec), SuperNodes, flwr run

    res = json.loads((tmp_path / "results" / "flower_results.json").read_text())
    assert res["algorithm"] == "fedavg" and res["rounds"] == 2
    assert sorted(res["sites"]) == [f"client{k}" for k in range(SITES)]
    for name, site in res["sites"].items():
        assert set(site["train"]) == {"1", "2"}
        for kind in ("personal", "deployed"):
            assert 0.0 <= site[kind]["uf1"] <= 1.0 and 0.0 <= site[kind]["uar"] <= 1.0, (name, site)
        assert site["train"]["1"]["num-examples"] == 6
    for rnd in ("1", "2"):
        r = res["per_round"][rnd]
        assert r["accepted"] == sorted(res["sites"]) and not r["rejected"] and not r["missing"]
    assert "site client0: personal UF1" in out

    # through the real transport, the same numbers as the stacked simulator with the
    # same recipe (RECIPE: schedule, flip, class weights, ROI source)
    from test_flower_equivalence import RECIPE, RUN, run_simulator
    assert RUN["config-overrides"] == RECIPE and RECIPE.replace("'", "") in RUN_CONFIG.replace("'", "")
    sim = run_simulator(dict(RUN, algorithm="fedavg"))
    for k, name in enumerate(sim["clients"]):
        site = res["sites"][name]
        for rnd in range(2):
            assert abs(site["train"][str(rnd + 1)]["train-loss"] - sim["loss_per_round"][rnd][k]) < 1e-4
        for kind in ("personal", "deployed"):
            for m in ("uf1", "uar", "accuracy"):
                assert abs(site[kind][m] - sim[kind][k][m]) < 1e-4, (name, kind, m)

    # what left the sites: every reply of the run, record by record
    replies = res["replies"]
    assert len(replies) == 2 * SITES + SITES           # 2 train rounds + 1 evaluation
    data_shapes = {(128, 128, 3), (28, 28, 3), (65, 2), (12, 12), (12,)}
    for rep in replies:
        recs = rep["records"]
        if rep["kind"] == "train":
            assert set(recs) == {"arrays", "metrics", "site"}
            names = recs["arrays"]["arrays"]
            assert names and all(n.startswith(("params/", "batch_stats/")) for n in names)
            assert any(n.startswith("batch_stats/") for n in names)     # FedAvg averages BN
            assert not any(tuple(s) in data_shapes for s, _ in names.values())
            assert all(d == "float32" for _, d in names.values())
            assert set(recs["metrics"]["keys"]) <= {
                "num-examples", "train-loss", "partition-id", "setup-seconds", "train-seconds",
                "personal-uf1", "personal-uar", "personal-accuracy", "num-test"}
        else:
            assert set(recs) == {"metrics", "site"}
            assert set(recs["metrics"]["keys"]) == {"num-examples", "partition-id", "uf1", "uar", "accuracy"}
        assert recs["site"]["keys"] == ["name"]
    print(f"deployment: {wall:.0f} s wall; rounds: "
          + ", ".join(f"{k}: {v['seconds']:.1f} s" for k, v in res["per_round"].items()))
