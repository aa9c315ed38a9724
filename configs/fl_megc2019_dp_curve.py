"""Utility–privacy curve of client-level DP on the MEGC2019 composite.

    python scripts/dp_curve.py --config=configs/fl_megc2019_dp_curve.py --out=runs/dp_curve

For each partition in ``curve.partitions`` and each noise multiplier z in
``curve.noise_multipliers`` (plus one run without DP), ``scripts/dp_curve.py`` runs
``fedpsyau federate`` in ``<out>/<partition>/z_<z>`` (resumable: finished chunks are
kept) and plots mean per-client UF1 of the deployed model against ε. Figures:
benchmarks/RESULTS.md, "Client-level DP: utility against privacy".

Every setting was fixed before any run, nothing chosen on a test split (how:
docs/notes/privacy.md):
- the local recipe of configs/fl_megc2019_recipe.py (lr 3e-4 warm-up + cosine, class-
  weighted CE, flip 0.5, paper groups, flow28 ROIs); FedAvg and P-FedProx; random 70/30
  split; seeds 0 and 1 (the compute budget).
- C = 1.0 — the clip norm; updates of this 3.8M-parameter model after a local epoch are
  larger, so C mostly rescales them (the clip fraction is stored per round).
- δ = 1e-5 — below 1/(number of people) = 1/68.
- z ∈ {0 (clipping only, ε = ∞), 0.1, 0.3, 1, 2, 4} and no DP — from the accountant
  alone: z = 0.1 and 0.3 give ε in the hundreds (no meaningful privacy; the shape of the
  curve), z = 1–4 give ε from ~20 down to ~1–4.
- by_dataset: 3 sites, every site every round ("all"), 10 rounds × 2 local epochs.
- per_subject: 68 people, Poisson sampling with rate 0.1 per round (≈ 7 people; the
  add/remove accounting is tighter than fixed-size replace-one: z = 1, 30 rounds gives
  ε ≈ 5.0 against 33 for 7-of-68 fixed-size), divisor q·K = 6.8, 30 rounds × 1 local
  epoch, batch 8; a person with one clip only trains (no test split). Seed 0 and
  z ∈ {0, 1, 2, 4} plus no DP only (the compute budget: the full grid would take about
  3.3 h). Its "no DP" point keeps the Poisson sampling and fixed divisor of the DP points,
  without clipping or noise (``baseline = "sampled"``): plain federation would train all
  68 people every round, another protocol.
"""
from pathlib import Path

import ml_collections

from fedpsyau_jax.config_loading import load_config


def recipe_config() -> ml_collections.ConfigDict:
    c = load_config(Path(__file__).with_name("fl_megc2019_recipe.py"))
    c.config_file = str(Path(__file__))          # this file made the config, not the recipe's
    return c


def get_config() -> ml_collections.ConfigDict:
    c = recipe_config()
    c.name = "fl_megc2019_dp_curve"
    c.fl.algorithms = ("fedavg", "pfedprox")
    c.protocol.splits = ("random",)
    c.protocol.seeds = (0, 1)
    c.fl.dp.enabled = True
    c.fl.dp.clip_norm = 1.0
    c.fl.dp.delta = 1e-5
    c.runtime.checkpoint_every = 5
    c.curve = ml_collections.ConfigDict({
        "noise_multipliers": (0.0, 0.1, 0.3, 1.0, 2.0, 4.0),
        "partitions": ml_collections.ConfigDict({
            "by_dataset": ml_collections.ConfigDict({
                "scheme": "by_dataset", "num_clients": 3, "sampling": "all", "rate": 1.0,
                "per_round": 0,
                "rounds": 10, "local_epochs": 2, "batch_size": 16}),
            "per_subject": ml_collections.ConfigDict({
                "scheme": "per_subject", "num_clients": 68, "sampling": "poisson", "rate": 0.1,
                "per_round": 0,
                "rounds": 30, "local_epochs": 1, "batch_size": 8,
                "seeds": (0,), "noise_multipliers": (0.0, 1.0, 2.0, 4.0), "baseline": "sampled"}),
        }),
    })
    return c
