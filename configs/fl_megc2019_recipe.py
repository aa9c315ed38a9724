"""Federated FED-PsyAU on the MEGC2019 composite with the centralised recipe: five
algorithms, two splits, 6 seeds. Figures: benchmarks/RESULTS.md, "Federated algorithms at
the recipe's schedule".

    # composite split by source dataset (3 clients: CASME II, SAMM, SMIC)
    fedpsyau federate --config=configs/fl_megc2019_recipe.py --workdir=runs/fl_recipe_by_dataset
    # 5 clients with equal numbers of subjects (the paper's partition)
    fedpsyau federate --config=configs/fl_megc2019_recipe.py --workdir=runs/fl_recipe_5clients \
        --config.partition.scheme=equal_subjects --config.partition.num_clients=5 \
        --config.protocol.splits="('random',)"
    # the paper's variant with the AU branch frozen (not among the measured results)
    fedpsyau federate --config=configs/fl_megc2019_recipe.py --workdir=runs/fl_recipe_frozen \
        --config.fl.freeze_au_branch=true

Every setting was fixed before any federated run, nothing chosen on a client's test split
(how: docs/notes/federated.md):
- local training = the centralised LOSO recipe (configs/megc2019_composite_loso.py, whose
  lr 3e-4 and roi_source flow28 were chosen on inner validation subjects): AdamW, weight
  decay 0.01 on kernels only, class-weighted CE with each client's own training labels,
  linear warm-up (1 epoch) + cosine decay to 0 over the whole run, flow-respecting flip
  0.5, per-sample AU-loss normalisation, paper AU groups.
- 10 rounds × 2 local epochs = 20 epochs, the centralised budget per model.
- seeds 0–5 — what the time budget allowed; 6 is also the fewest seeds whose exact
  two-sided Wilcoxon p can fall below 0.05 (2 / 2**6 = 0.031).
- 5 clients: the random 70/30 split only (the paper's protocol; both splits did not fit
  the time budget).
- batch 16: a client holds 100–115 training samples (70 %), 7 steps per epoch.
- μ = 0.01 (FedProx, P-FedProx) and θ = 0.9 — the paper's.
- optimiser state kept across rounds (fl.reset_optimizer=false): sites are persistent;
  the reference's fresh AdamW every round re-runs bias correction.
- evaluation: the deployed and the personal model after the last round; the per-round
  test UF1 is recorded for the convergence figure only.
- the AU branch that learns, as in the centralised recipe: no dropout in the GATs and AU
  heads, the AU BCE's positive term weighted n⁻/n⁺ by each client's own AU labels, and
  test outputs averaged over the sample and its mirror image. The deployed models' AU
  heads are scored on each client's test split (``deployed_au`` in result.json).
  Stage 1 (AU pre-training) is off here: --config.fl.pretrain_rounds=10 turns it on
  (fl.pretrain_mode federated, the default: FedAvg of the AU branch; local: each site
  alone). Measured on the new-site config: both lift the AU heads above 0.80 AUC on
  held-out subjects, the federated one by 0.03 more; emotion UF1 unchanged at three
  seeds. The committed results
  before this fix: --config.model.gat_dropout=0.5 --config.model.au_head_dropout=0.5
  --config.train.au_pos_weight=none --config.train.eval_flip=false
"""
from pathlib import Path

import ml_collections

from fedpsyau_jax.config_loading import load_config
from fedpsyau_jax.federated.config_defaults import base_config

#: The centralised recipe's keys carried over to every client's local training.
RECIPE_KEYS = ("lr_schedule", "warmup_epochs", "min_lr_ratio", "weight_decay", "decay_kernels_only",
               "class_balance", "hflip", "au_norm", "au_pos_weight", "eval_flip")
#: The centralised recipe's network options (the AU branch that learns: no dropout on its path).
MODEL_KEYS = ("roi_source", "group_tokens", "gat_dropout", "au_head_dropout")


def central_config() -> ml_collections.ConfigDict:
    return load_config(Path(__file__).with_name("megc2019_composite_loso.py"))


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.name = "fl_megc2019_recipe"
    c.data.name = "megc2019_composite"
    # landmarks in the flows' frame (SAMM's flows and apex crops differ)
    c.data.kwargs.landmark_frame = "flow"
    central = central_config()
    for key in MODEL_KEYS:
        c.model[key] = central.model[key]
    c.train.learning_rate = central.train.learning_rate
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
    c.runtime.checkpoint_every = 2
    return c
