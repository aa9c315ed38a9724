"""Figures for benchmarks/RESULTS.md: bytes per round per site, simulator round time.

    python -m fedpsyau_jax.federated.flower.benchmark bytes
        upload / broadcast bytes per site and round for every algorithm, full and
        flow-only model (from shapes only; nothing is trained)
    python -m fedpsyau_jax.federated.flower.benchmark simulator --run-config "k=v ..."
        seconds per round of the stacked simulator for the same run settings and
        sites as a Flower run (3 partitions of the run's dataset), after a warm-up run

The Flower side's figures come from a run's ``flower_results.json`` (per round:
seconds, upload and broadcast bytes; per site: setup and training seconds).
"""

from __future__ import annotations

import argparse
import json
import time


def bytes_table() -> list[dict]:
    from fedpsyau_jax.federated.flower import wire
    from fedpsyau_jax.federated.flower.settings import broadcast_template, build, run_spec, upload_template

    rows = []
    for au in (True, False):
        for name in ("local", "fedavg", "fedprox", "pfedprox", "fedrep"):
            model, tx, algo = build(run_spec({"algorithm": name, "use-au-branch": au}))
            up = upload_template(model, tx, algo)
            b = broadcast_template(algo, up)
            size = lambda t: sum(int(s.size) * s.dtype.itemsize for s in __import__("jax").tree.leaves(t))
            rows.append(
                {
                    "model": "full" if au else "flow-only",
                    "algorithm": name,
                    "upload_arrays": len(wire.spec(up)),
                    "upload_bytes": size(up),
                    "broadcast_bytes": 0 if b is None else size(b),
                }
            )
    return rows


def simulator_round_seconds(run_config: dict, sites: int = 3) -> dict:
    from fedpsyau_jax.federated.flower.settings import build, build_local_trainer, run_spec
    from fedpsyau_jax.federated.partitions import partition_clients
    from fedpsyau_jax.federated.rounds import run_federation
    from fedpsyau_jax.federated.runner import plan_rows
    from data_pipelines.datasets import load_dataset
    from fedpsyau_jax.training.batching import device_data

    spec = run_spec(run_config)
    samples = load_dataset(spec.dataset, **spec.dataset_kw)
    model, tx, algo = build(spec)
    clients = partition_clients(samples, spec.partition_scheme, sites, spec.partition_seed)
    rows = plan_rows(samples, clients, [spec.seed], spec.split, spec.settings)
    trainer = build_local_trainer(spec, model, tx)
    data = device_data(samples)
    kw = dict(
        trainer=trainer,
        algorithm=algo,
        model=model,
        tx=tx,
        samples=samples,
        data=data,
        rows=rows,
        settings=spec.settings,
        progress=False,
    )
    t = time.perf_counter()
    run_federation(**kw)  # compiles
    first = time.perf_counter() - t
    t = time.perf_counter()
    res = run_federation(**kw)
    warm = time.perf_counter() - t
    return {
        "algorithm": algo.name,
        "sites": sites,
        "rounds": spec.rounds,
        "first_run_seconds": first,
        "warm_run_seconds": warm,
        "warm_seconds_per_round": warm / spec.rounds,
        "train_seconds": res["train_seconds"],
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("bytes", "simulator"))
    p.add_argument("--run-config", default="", help='Flower-style "key=value ..." overrides')
    p.add_argument("--sites", type=int, default=3)
    a = p.parse_args(argv)
    if a.what == "bytes":
        print(json.dumps(bytes_table(), indent=1))
        return
    from flwr.common.config import parse_config_args

    print(json.dumps(simulator_round_seconds(parse_config_args([a.run_config]), a.sites), indent=1))


if __name__ == "__main__":
    main()
