"""``federate(cfg, workdir)``: the whole federated experiment of a config (CLI mirror).

For every split in ``cfg.protocol.splits`` and algorithm in ``cfg.fl.algorithms``, the
repeat seeds are trained in chunks of ``cfg.protocol.seeds_per_chunk`` (all seeds ×
clients of a chunk in one compiled program), each chunk resumable and its result kept
as ``workdir/<split>/<algorithm>/seeds_<a>-<b>/result.json``; a re-run skips finished
chunks and resumes an interrupted one from its last round checkpoint. At the end:
``workdir/results.json`` (per-seed scores, per-client mean ± std, loss per round),
``workdir/results.md`` (the tables) and ``workdir/fl_<split>.png`` (a Fig. 5-style
figure: per-client UF1 per algorithm, and training loss per round).
With ``fl.dp.enabled`` every communicating algorithm runs under client-level DP
(``dp_runner``); ε after the run is printed before training and stored per round.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import time
from pathlib import Path

import numpy as np

from fedpsyau_jax.config_loading import ConfigError
from fedpsyau_jax.federated.settings import (
    build_algorithm,
    build_model,
    build_optimizer,
    build_trainer,
    fl_settings_from_config,
)

RESULT_FILE = "result.json"


def dp_from_config(cfg):
    """``DPSettings`` of ``cfg.fl.dp`` (None when DP is off); checked before any training."""
    d = cfg.fl.get("dp")
    if d is None or not bool(d.get("enabled", False)):
        return None
    from fedpsyau_jax.federated.privacy import DPSettings

    return DPSettings(
        clip_norm=float(d.clip_norm),
        noise_multiplier=float(d.noise_multiplier),
        delta=float(d.delta),
        sampling=str(d.sampling),
        rate=float(d.rate),
        per_round=int(d.per_round),
        allow_no_noise=bool(d.get("allow_no_noise", False)),
    )


def client_mesh_of(cfg):
    """The device mesh for the client rows (``runtime.shard_clients``): "auto" uses every
    visible device when there is more than one; "off" (or one device) none."""
    import jax

    mode = str(cfg.get("runtime", {}).get("shard_clients", "auto"))
    if mode not in ("auto", "off"):
        raise ConfigError(f"runtime.shard_clients {mode!r}: choose auto or off")
    if mode == "off" or jax.device_count() < 2:
        return None
    from fedpsyau_jax.federated.local_training import client_mesh

    return client_mesh()


def load_samples(cfg):
    """The dataset of ``cfg.data`` (as centralised training loads it); a release
    dataset without ``data.root`` is a ``ConfigError``."""
    from fedpsyau_jax.training.run_inputs import load_samples as load

    d = cfg.data
    if d.name not in ("synthetic", "megc2019_composite") and not d.get("root"):
        raise ConfigError(
            f"config {cfg.get('config_file', '?')}: dataset {d.name!r} needs "
            "data.root (e.g. --set data.root=/path/to/release)"
        )
    return load(cfg)


def split_seeds(cfg, split: str) -> tuple[int, ...]:
    """Repeat seeds of ``split``: ``protocol.seeds_by_split[split]`` if given, else
    ``protocol.seeds``."""
    by = cfg.protocol.get("seeds_by_split")
    if by is not None and split in by:
        return tuple(int(s) for s in by[split])
    return tuple(int(s) for s in cfg.protocol.seeds)


def _new_site_line(ns: dict, what: str) -> str:
    """One log line: the new site's UF1 from the start model and after adaptation."""
    start = np.nanmean([d["uf1"] for d in ns["start"]])
    parts = [f"{what}: new site {ns['name']} ({ns['subjects']} subjects) UF1 {start:.3f} unseen"]
    for k, runs in ns["adapt"].items():
        a = np.nanmean([r["adapted"]["uf1"] for r in runs])
        b = np.nanmean([r["start"]["uf1"] for r in runs])
        parts.append(f"k={k}: {a:.3f} (start {b:.3f} on the same subjects)")
    return "; ".join(parts)


def _chunks(seeds, size: int):
    seeds = [int(s) for s in seeds]
    size = max(1, int(size) or len(seeds))
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def federate(cfg, workdir, progress: bool = True, log=print, summarise_only: bool = False) -> dict:
    """Run every (split, algorithm, seed chunk) of ``cfg``; returns the summary dict.

    summarise_only: train nothing; summarise the chunks already finished in
    ``workdir`` (the unfinished ones are listed under ``missing_chunks``).
    """
    import jax

    from fedpsyau_jax.core.atomic_files import write_json_atomic
    from fedpsyau_jax.training.batching import device_data
    from fedpsyau_jax.federated.partitions import partition_clients
    from fedpsyau_jax.federated.report import summarise, write_figures, write_markdown
    from fedpsyau_jax.federated.rounds import run_federation
    from fedpsyau_jax.federated.runner import plan_rows

    workdir = Path(workdir)
    settings = fl_settings_from_config(cfg)
    dp = dp_from_config(cfg)
    samples = load_samples(cfg)
    p = cfg.partition
    mapping = dict(p.mapping) if p.get("mapping") else None
    clients = partition_clients(samples, p.scheme, p.get("num_clients"), int(p.get("seed", 0)), mapping)
    from fedpsyau_jax.federated.new_site import new_site_settings, split_new_site

    site = new_site_settings(cfg)
    site_idx = None
    if site.name:
        if dp is not None:
            raise ConfigError("fl.new_site with fl.dp: not supported (the DP simulator keeps no final models)")
        # the new site leaves the partition before anything is planned: no split, plan,
        # prior or update of the federation can involve its samples
        clients, site_idx = split_new_site(clients, site.name)
    if dp is not None:  # refuse settings that cannot be accounted before training
        from fedpsyau_jax.federated.privacy import epsilon_after_rounds

        dp = dataclasses.replace(dp, num_clients=len(clients))
        eps = epsilon_after_rounds(dp, settings.rounds)
        log(
            f"client-level DP: C={dp.clip_norm} z={dp.noise_multiplier} sampling={dp.sampling} "
            f"delta={dp.delta}: epsilon after {settings.rounds} rounds = {eps:.3f}"
        )
    workdir.mkdir(parents=True, exist_ok=True)  # only once the settings are known good
    write_json_atomic(workdir / "config.json", json.loads(cfg.to_json_best_effort()))
    log(f"data {cfg.data.name}: {len(samples)} samples; clients: " + ", ".join(f"{n}={len(i)}" for n, i in clients))
    model = build_model(cfg, samples.num_classes)
    # lr 1 in the optimiser: every step's rate (lr × schedule) is an argument of the
    # compiled step (runner.round_lrs), as in centralised training.
    tx = build_optimizer(cfg, settings)
    trainer = build_trainer(cfg, model, tx, settings, mesh=client_mesh_of(cfg))
    # what every chunk's run shares
    data = device_data(samples)
    run = functools.partial(
        run_federation,
        trainer=trainer,
        model=model,
        tx=tx,
        samples=samples,
        data=data,
        settings=settings,
        progress=progress,
    )

    from fedpsyau_jax.federated.stage1 import run_stage1, stage1_settings

    settings1 = stage1_settings(cfg, settings)
    if settings1 is not None and dp is not None:
        raise ConfigError("fl.pretrain_rounds with fl.dp: stage 1 in federation is not private yet")
    results: dict[str, dict[str, list[dict]]] = {}
    missing: list[str] = []
    t0 = time.perf_counter()
    for split in cfg.protocol.splits:
        for algo_name in cfg.fl.algorithms:
            algorithm = build_algorithm(cfg, algo_name)
            parts = []
            for chunk in _chunks(split_seeds(cfg, split), cfg.protocol.seeds_per_chunk):
                cdir = workdir / split / algo_name / f"seeds_{chunk[0]}-{chunk[-1]}"
                done = cdir / RESULT_FILE
                if done.is_file():
                    parts.append(json.loads(done.read_text(encoding="utf-8")))
                    continue
                if summarise_only:
                    missing.append(f"{split}/{algo_name}/seeds_{chunk[0]}-{chunk[-1]}")
                    continue
                communicates = algorithm.reduce is not None  # Local releases nothing: no DP (ε = 0)
                rows = plan_rows(samples, clients, chunk, split, settings)
                pretrained = None
                if settings1 is not None:  # shared by every algorithm of this (split, chunk)
                    mode = str(cfg.fl.get("pretrain_mode", "federated"))
                    pretrained = run_stage1(
                        cfg=cfg,
                        settings1=settings1,
                        rows=rows,
                        samples=samples,
                        data=data,
                        model=model,
                        tx=tx,
                        build_trainer=lambda st: build_trainer(cfg, model, tx, st, mesh=client_mesh_of(cfg)),
                        cdir=workdir / split / f"stage1_{mode}" / f"seeds_{chunk[0]}-{chunk[-1]}",
                        run=run,
                    )
                kept: list = []
                res = run(
                    algorithm=algorithm,
                    rows=rows,
                    dp=dp if communicates else None,
                    workdir=cdir,
                    desc=f"{split}/{algo_name} seeds {chunk[0]}-{chunk[-1]}" + (" (DP)" if dp and communicates else ""),
                    keep_states=kept if site_idx is not None else None,
                    pretrained=pretrained,
                )
                res["split"] = split
                if site_idx is not None:
                    from fedpsyau_jax.federated.new_site import evaluate_new_site

                    res["new_site"] = evaluate_new_site(
                        algorithm=algorithm,
                        states=kept[0],
                        rows=rows,
                        samples=samples,
                        data=data,
                        site_idx=site_idx,
                        settings=settings,
                        site=site,
                        make_trainer=lambda t: build_trainer(cfg, model, t, settings, mesh=None),
                        tx=tx,
                    )
                    log(_new_site_line(res["new_site"], f"{split}/{algo_name} seeds {chunk}"))
                write_json_atomic(done, res)
                shutil.rmtree(cdir / "checkpoints", ignore_errors=True)
                parts.append(res)
                uf1 = np.asarray([d["uf1"] for d in res["deployed"]], np.float64)
                tested = np.isfinite(uf1)  # a client without test samples has no score
                log(
                    f"{split}/{algo_name} seeds {chunk}: mean deployed UF1 "
                    f"{np.mean(uf1[tested]) if tested.any() else float('nan'):.3f}"
                    + ("" if tested.all() else f" over the {int(tested.sum())} of {len(uf1)} rows with test samples")
                    + f" ({res['train_seconds']:.0f} s)"
                    + (f", epsilon {res['epsilon_per_round'][-1]:.3f}" if "epsilon_per_round" in res else "")
                )
            if parts:
                results.setdefault(split, {})[algo_name] = parts
    summary = summarise(results, cfg)
    summary["missing_chunks"] = missing
    if dp is not None:
        from fedpsyau_jax.federated.privacy import epsilon_after_rounds

        summary["dp"] = {**dp.__dict__, "epsilon": epsilon_after_rounds(dp, settings.rounds)}
    summary["wall_seconds_this_call"] = time.perf_counter() - t0
    summary["jax"] = {"version": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    write_json_atomic(workdir / "results.json", summary)
    (workdir / "results.md").write_text(
        write_markdown(summary) + "\n" + write_markdown(summary, "personal", header=False), encoding="utf-8"
    )
    write_figures(summary, workdir)
    return summary
