"""Defaults of every ``configs/fl_*.py`` config: the one config schema of
``config_loading.base_config`` (data, model, train, runtime — the sections centralised
training reads) plus the federation's own sections. Each config overrides what differs.

Added sections and keys:
- ``partition``  scheme, num_clients, seed, mapping (clients from subjects or datasets)
- ``protocol``   splits, seeds (repeat seeds), seeds_by_split, seeds_per_chunk (seeds
                 compiled together), train_fraction (a client's training share)
- ``fl``         algorithms, rounds, local_epochs, mu, theta, reset_optimizer,
                 eval_every_round, freeze_au_branch, prior, fallback_prior, mode, dp
- ``runtime.shard_clients``  auto | off; ``runtime.checkpoint_every`` counts rounds here

The ``train`` values below are the federated defaults (a constant rate of 5e-4, no
flip, class-balanced oversampling, batch 8): configs that train with the centralised
recipe set its keys (``configs/fl_megc2019_recipe.py``).
"""

import ml_collections

from fedpsyau_jax.config_loading import base_config as schema


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by every ``fl_*`` config (each config overrides what differs)."""
    c = schema()
    c.name = "fl_synthetic"
    c.data.kwargs = ml_collections.ConfigDict()
    c.model.group_tokens = "paper"
    c.model.roi_source = "flow128"
    with c.protocol.unlocked():
        c.protocol.splits = ("random",)
        c.protocol.seeds = (0, 1)
        c.protocol.seeds_per_chunk = 10
        c.protocol.train_fraction = 0.7
    c.partition = ml_collections.ConfigDict(
        {"scheme": "equal_subjects", "num_clients": 2, "seed": 0, "mapping": ml_collections.ConfigDict()}
    )
    c.fl = ml_collections.ConfigDict(
        {
            "algorithms": ("local", "fedavg", "fedprox", "pfedprox", "fedrep"),
            "rounds": 2,
            "local_epochs": 1,
            "mu": 0.01,  # FedProx / P-FedProx proximal coefficient
            "theta": 0.9,  # P-FedProx self weight (paper)
            "reset_optimizer": False,  # True: fresh AdamW every round (reference); False: kept (a priori)
            "eval_every_round": False,  # True: deployed test UF1 per round, for convergence plots only
            "freeze_au_branch": False,  # True: the paper's variant, AU branch neither trained nor sent
            # D of a client: from its own training AU labels, or this preset without any
            "prior": "client_train",
            "fallback_prior": "reference_dfme",
            "mode": "step",  # "step": jitted vmapped step per batch; "scan": one program per round (slow on CPU)
            # A site kept out of the federation (a client name of the partition; "" none),
            # scored with the federation's mean model and after fine-tuning on k of its
            # subjects (federated/new_site.py)
            # Stage 1 in federation (federated/stage1.py): AU-only rounds before the
            # emotion rounds; 0 = none; "federated" (FedAvg) or "local" (each site alone)
            "pretrain_rounds": 0,
            "pretrain_mode": "federated",
            "new_site": "",
            "adapt_k": (),
            "adapt_repeats": 3,
            "adapt_epochs": 10,
            # Client-level DP (federated/dp_aggregation.py): clip each update to C, Gaussian
            # noise z·C on the sum, equal client weights; clients sampled per round.
            "dp": ml_collections.ConfigDict(
                {
                    "enabled": False,
                    "clip_norm": 1.0,
                    "noise_multiplier": 1.0,
                    "delta": 1e-5,
                    "sampling": "all",  # all | fixed (per_round of K) | poisson (rate)
                    "rate": 1.0,
                    "per_round": 0,
                    "allow_no_noise": False,  # True: accept z = 0 (clipping only, ε = inf)
                }
            ),
        }
    )
    t = c.train
    t.learning_rate = 5e-4
    t.batch_size = 8
    t.eval_batch_size = 32
    t.class_balance = "oversample"  # oversample | weighted_ce | none
    t.lr_schedule = "constant"  # constant | warmup_cosine (over rounds·local_epochs)
    t.warmup_epochs = 0.0
    t.min_lr_ratio = 0.0
    t.decay_kernels_only = False
    t.hflip = 0.0
    t.au_norm = "known_entries"
    # "auto": with more than one device, the (seed × client) rows of every chunk are
    # split over all devices (padded to a multiple of the device count); "off": one device.
    with c.runtime.unlocked():
        c.runtime.shard_clients = "auto"
    c.runtime.checkpoint_every = 1
    return c
