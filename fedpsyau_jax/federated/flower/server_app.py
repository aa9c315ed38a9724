"""The Flower ServerApp: one federated run of one algorithm (run config ``algorithm``).

It builds the model only as shapes (``jax.eval_shape``: the names and shapes a valid
reply must carry), runs ``FedPsyAUStrategy`` through Flower's round loop, prints one
line per site (personal and deployed UF1/UAR/accuracy, as the simulator reports them)
and, with run config ``results-dir``, writes ``flower_results.json`` there. With
``fl.pretrain_rounds`` the AU branch is pre-trained first (``flower.stage1``). With
``fl.new_site`` it then scores the site held out (``flower.new_site``): one line per k.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from fedpsyau_jax.federated.flower.new_site import model_template
from fedpsyau_jax.federated.flower.settings import build, run_spec, upload_template
from fedpsyau_jax.federated.flower.strategies import FedPsyAUStrategy

RESULTS_FILE = "flower_results.json"
LOG = logging.getLogger("fedpsyau.flower")

app = ServerApp()


def format_results(res: dict) -> str:
    lines = [
        f"FED-PsyAU on Flower: {res['algorithm']}, {res['rounds']} round(s)"
        + (f", SecAgg+ ({res['secagg']['sites']} sites)" if "secagg" in res else "")
    ]
    if "dp" in res and res["dp"]["epsilon_per_round"]:
        lines.append(
            f"  DP: epsilon {res['dp']['epsilon_per_round'][-1]:.4f} at delta "
            f"{res['dp']['delta']:g} (C={res['dp']['clip_norm']:g}, "
            f"z={res['dp']['noise_multiplier']:g}, sampling {res['dp']['sampling']})"
        )
    if "stage1" in res:
        from fedpsyau_jax.federated.flower.stage1 import format_line

        lines.append(format_line(res["stage1"]))
    for name in sorted(res["sites"]):
        s = res["sites"][name]
        p, d = s.get("personal", {}), s.get("deployed", {})
        lines.append(
            f"  site {name}: personal UF1 {p.get('uf1', float('nan')):.4f} "
            f"UAR {p.get('uar', float('nan')):.4f} | deployed UF1 "
            f"{d.get('uf1', float('nan')):.4f} UAR {d.get('uar', float('nan')):.4f} "
            f"acc {d.get('accuracy', float('nan')):.4f}"
        )
    if "new_site" in res:
        from fedpsyau_jax.federated.flower.new_site import format_lines

        lines += format_lines(res["new_site"])
    return "\n".join(lines)


@app.main()
def main(grid: Grid, context: Context) -> None:
    logging.getLogger("fedpsyau.flower").setLevel(logging.INFO)
    spec = run_spec(context.run_config)  # bad DP settings fail here, before round 1
    model, tx, algorithm = build(spec)
    if spec.secagg is not None:
        from fedpsyau_jax.federated.flower.secagg import run_secagg

        res = run_secagg(grid, context, spec, model, tx, algorithm)
    else:
        res = run_plain_or_dp(grid, spec, model, tx, algorithm)
    print(format_results(res), flush=True)
    if spec.results_dir:
        out = Path(spec.results_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / RESULTS_FILE).write_text(json.dumps(res, indent=1), encoding="utf-8")


def run_plain_or_dp(grid, spec, model, tx, algorithm) -> dict:
    """Flower's round loop with ``FedPsyAUStrategy``; under ``dp`` wrapped in Flower's
    central-DP wrapper and started from R_0 (``flower.dp``)."""
    strategy = FedPsyAUStrategy(
        algorithm,
        upload_template(model, tx, algorithm),
        spec.rounds,
        min_nodes=spec.min_nodes,
        node_wait_timeout=spec.node_wait_timeout,
        dp=spec.dp,
        new_site=spec.new_site.name if spec.new_site is not None else None,
        model_template=model_template(model, tx) if spec.new_site is not None else None,
        reply_timeout=spec.round_timeout,
    )
    runner, initial = strategy, ArrayRecord()
    if spec.dp is not None:
        from fedpsyau_jax.federated.flower import dp, wire
        from fedpsyau_jax.federated.privacy import PrivacyError

        if algorithm.reduce is None:
            raise PrivacyError(
                f"run-config dp=true: algorithm {algorithm.name!r} communicates "
                "nothing; there is nothing to make private"
            )
        dp.check_accountable(spec.dp, spec.rounds)
        initial = wire.to_array_record(dp.initial_reference(model, tx, algorithm, spec.seed))
        runner = dp.wrap_strategy(strategy, spec.dp)
        LOG.info(
            "DP: C=%g z=%g delta=%g sampling=%s, m=%g; epsilon after %d rounds: %.4f",
            spec.dp.clip_norm,
            spec.dp.noise_multiplier,
            spec.dp.delta,
            spec.dp.sampling,
            dp.divisor(spec.dp),
            spec.rounds,
            dp.epsilon(spec.dp, spec.rounds),
        )
    from fedpsyau_jax.federated.flower.secagg import CountingGrid

    counting: Any = CountingGrid(grid)  # a Grid (duck-typed) that counts payload bytes, as the SecAgg+ path counts them
    t0 = time.perf_counter()
    record1 = None
    if spec.stage1 is not None:  # stage 1 (fl.pretrain_rounds): the AU branch first
        from fedpsyau_jax.federated.flower import stage1

        record1 = stage1.serve(counting, spec, model, tx, strategy.node_roles)
    runner.start(
        grid=counting,
        initial_arrays=initial,
        num_rounds=spec.rounds,
        timeout=spec.round_timeout,
        train_config=ConfigRecord(),
        evaluate_config=ConfigRecord(),
    )
    res = strategy.results()
    res["wall_seconds"] = time.perf_counter() - t0
    if record1 is not None:
        res["stage1"] = record1
    if spec.new_site is not None:
        from fedpsyau_jax.federated.flower.new_site import serve

        res["new_site"] = serve(counting, strategy, spec)
    res["wire"] = {"train": counting.totals("train"), "evaluate": counting.totals("evaluate")}
    if spec.new_site is not None or spec.stage1 is not None:  # identification, stage 1's adoption
        res["wire"]["query"] = counting.totals("query")
    return res
