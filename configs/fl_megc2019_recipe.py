"""Federated FED-PsyAU on the MEGC2019 composite with the centralised recipe (issue: the
federated result at a real schedule). Five algorithms, two splits, 6 seeds.

    # composite split by source dataset (3 clients: CASME II, SAMM, SMIC)
    fedpsyau federate --config=configs/fl_megc2019_recipe.py --workdir=runs/fl_recipe_by_dataset
    # 5 clients with equal numbers of subjects (the paper's partition)
    fedpsyau federate --config=configs/fl_megc2019_recipe.py --workdir=runs/fl_recipe_5clients \
        --config.partition.scheme=equal_subjects --config.partition.num_clients=5 \
        --config.protocol.splits="('random',)"
    # the paper's variant with the AU branch frozen
    fedpsyau federate --config=configs/fl_megc2019_recipe.py --workdir=runs/fl_recipe_frozen \
        --config.fl.freeze_au_branch=true

Every setting fixed BEFORE any federated run (nothing chosen on a client's test split):
- local recipe = the centralised LOSO recipe (configs/megc2019_composite_loso.py, whose
  lr 3e-4 and roi_source flow28 were chosen on inner validation subjects): AdamW, weight
  decay 0.01 on kernels only, class-weighted CE with each client's own training
  labels, linear warm-up (1 epoch) + cosine decay to 0 over the whole run, flow-
  respecting flip 0.5, per-sample AU-loss normalisation, paper AU groups.
- 10 rounds × 2 local epochs = 20 epochs, the centralised budget per model — A PRIORI
  from the 4-hour budget for the whole experiment (2 partitions × 2 splits × 5
  algorithms × seeds on 2 CPU cores).
- seeds 0–5 — A PRIORI, before any run of this config: one (split, algorithm, seed) of
  10 rounds × 2 epochs at 3 sites takes 105–120 s here (measured on the DP curve's
  by_dataset runs of the same recipe, 2026-12-02), i.e. 20 of them per seed over both
  partitions ≈ 37 min per seed; 6 seeds ≈ 3.7 h fits the 4 hours, 10 (≈ 6.1 h) does not.
  6 is also the fewest seeds whose exact two-sided Wilcoxon p can fall below 0.05
  (2 / 2**6 = 0.031). The frozen-AU-branch variant is not in the budget.
- 5 clients: random 70/30 split only (the paper's protocol) — decided 2026-12-02 after
  its first 5 runs (Local, seeds 0–4, before any federated algorithm had run on this
  partition): at 5 sites a run takes 4.5–5 min here, not the 2 min the estimate
  above assumed, so both splits (≈ 4.5 h) do not fit what was left of the 4 hours
  (2.3 h) and the random split alone (≈ 2 h) does. Run it as
  `... --config.partition.num_clients=5 --config.protocol.splits="('random',)"`.
- batch 16 — A PRIORI: a client holds 100–115 training samples (70 %), 7 steps per epoch.
- μ = 0.01 (FedProx, P-FedProx) and θ = 0.9 — paper.
- optimiser state kept across rounds (fl.reset_optimizer=false) — A PRIORI: sites are
  persistent; the reference's fresh AdamW every round re-runs bias correction.
- evaluation: the deployed and the personal model after the last round (fixed); the
  per-round test UF1 is recorded for the convergence figure only.
"""
from pathlib import Path

import ml_collections

from fedpsyau_jax.config_loading import load_config
from fedpsyau_jax.federated.config_defaults import base_config

#: The centralised recipe's keys carried over to every client's local training.
RECIPE_KEYS = ("lr_schedule", "warmup_epochs", "min_lr_ratio", "weight_decay", "decay_kernels_only",
               "class_balance", "hflip", "au_norm")


def central_config() -> ml_collections.ConfigDict:
    return load_config(Path(__file__).with_name("megc2019_composite_loso.py"))


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.name = "fl_megc2019_recipe"
    c.data.name = "megc2019_composite"
    # landmarks in the flows' frame (SAMM's flows and apex crops differ; issue 26)
    c.data.kw.landmark_frame = "flow"
    central = central_config()
    c.model.roi_source = central.model.roi_source
    c.model.group_tokens = central.model.group_tokens
    c.train.lr = central.train.learning_rate
    for key in RECIPE_KEYS:
        c.train[key] = central.train[key]
    c.partition.scheme = "by_dataset"
    c.partition.num_clients = 3
    c.protocol.splits = ("random", "subject")
    c.protocol.seeds = tuple(range(6))
    c.protocol.seeds_per_chunk = 1
    c.fl.rounds = 10
    c.fl.local_epochs = 2
    c.fl.mu = 0.01
    c.fl.theta = 0.9
    c.fl.reset_optimizer = False
    c.fl.eval_every_round = True     # Fig. 5-style curves; the result is still the last round
    c.train.batch_size = 16
    c.train.eval_batch_size = 32
    c.train.checkpoint_every = 2
    return c
