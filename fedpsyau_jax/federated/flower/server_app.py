"""The Flower ServerApp: one federated run of one algorithm (run config ``algorithm``).

It builds the model only as shapes (``jax.eval_shape``: the names and shapes a valid
reply must carry), runs ``FedPsyAUStrategy`` through Flower's round loop, prints one
line per site (personal and deployed UF1/UAR/accuracy, as the simulator reports them)
and, with run config ``results-dir``, writes ``flower_results.json`` there.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from fedpsyau_jax.federated.flower.settings import build, run_spec, upload_template
from fedpsyau_jax.federated.flower.strategies import FedPsyAUStrategy

RESULTS_FILE = "flower_results.json"

app = ServerApp()


def format_results(res: dict) -> str:
    lines = [f"FED-PsyAU on Flower: {res['algorithm']}, {res['rounds']} round(s)"]
    for name in sorted(res["sites"]):
        s = res["sites"][name]
        p, d = s.get("personal", {}), s.get("deployed", {})
        lines.append(f"  site {name}: personal UF1 {p.get('uf1', float('nan')):.4f} "
                     f"UAR {p.get('uar', float('nan')):.4f} | deployed UF1 "
                     f"{d.get('uf1', float('nan')):.4f} UAR {d.get('uar', float('nan')):.4f} "
                     f"acc {d.get('accuracy', float('nan')):.4f}")
    return "\n".join(lines)


@app.main()
def main(grid: Grid, context: Context) -> None:
    logging.getLogger("fedpsyau.flower").setLevel(logging.INFO)
    spec = run_spec(context.run_config)
    model, tx, algorithm = build(spec)
    strategy = FedPsyAUStrategy(algorithm, upload_template(model, tx, algorithm), spec.rounds,
                                min_nodes=spec.min_nodes, node_wait_timeout=spec.node_wait_timeout)
    t0 = time.perf_counter()
    strategy.start(grid=grid, initial_arrays=ArrayRecord(), num_rounds=spec.rounds,
                   timeout=spec.round_timeout, train_config=ConfigRecord(),
                   evaluate_config=ConfigRecord())
    res = strategy.results()
    res["wall_seconds"] = time.perf_counter() - t0
    print(format_results(res), flush=True)
    if spec.results_dir:
        out = Path(spec.results_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / RESULTS_FILE).write_text(json.dumps(res, indent=1), encoding="utf-8")
