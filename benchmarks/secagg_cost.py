"""Cost of SecAgg+ on a real loopback Flower deployment: round time and payload bytes.

    python benchmarks/secagg_cost.py [--rounds 3] [--sites 3] [--workdir DIR]

Runs ``scripts/flower_local_deployment.sh`` twice with the same settings (FedAvg,
tiny synthetic set, flow-only model, 3 SuperNodes): plain aggregation, then SecAgg+
(``--secagg``). Per round it reads from each run's ``flower_results.json`` the
ServerApp's round time (first message sent -> aggregate computed; SecAgg+: all four
protocol exchanges) and the payload bytes of every train exchange (Flower's protobuf
serialisation of each message's content, counted by ``secagg.CountingGrid``). Prints
one JSON object with both runs and ``uptime`` before and after each (the machine is
shared: load matters).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from fedpsyau_jax.federated.flower.ports import free_base_port

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("use-au-branch=false batch-size=4 eval-batch-size=8 oversample=false lr=0.001 "
            "seed=0 secagg-max-weight=8.0 dataset-kw='{\"num_subjects\": 6, "
            "\"samples_per_subject\": 4, \"num_classes\": 3, \"seed\": 1}'")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run(mode: str, rounds: int, sites: int, workdir: Path) -> dict:
    cmd = ["bash", str(ROOT / "scripts" / "flower_local_deployment.sh"), "--sites", str(sites),
           "--rounds", str(rounds), "--algorithm", "fedavg", "--port", str(free_base_port(sites + 1)),
           "--workdir", str(workdir), "--timeout", "1500", "--run-config", SETTINGS]
    if mode == "secagg":
        cmd.append("--secagg")
    before = uptime()
    env = dict(os.environ, FLWR_BIN=str(Path(sys.executable).parent), JAX_PLATFORMS="cpu")
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    after = uptime()
    if p.returncode != 0:
        raise SystemExit(f"{mode} run failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    res = json.loads((workdir / "results" / "flower_results.json").read_text())
    train = res["wire"]["train"]
    return {"mode": mode, "uptime_before": before, "uptime_after": after,
            "wall_seconds": res["wall_seconds"],
            "round_seconds": [res["per_round"][str(r)]["seconds"] for r in range(1, rounds + 1)],
            "train_exchanges_per_round": train["exchanges"] / rounds,
            "sent_bytes_per_round": train["sent_bytes"] / rounds,
            "received_bytes_per_round": train["received_bytes"] / rounds,
            "received_bytes_per_site_and_round": train["received_bytes"] / rounds / sites}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args(argv)
    base = a.workdir or Path(tempfile.mkdtemp(prefix="secagg_cost_"))
    out = {"rounds": a.rounds, "sites": a.sites, "settings": SETTINGS,
           "runs": [run(m, a.rounds, a.sites, base / m) for m in ("plain", "secagg")]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
