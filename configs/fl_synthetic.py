"""Federated FED-PsyAU on a small synthetic dataset (fast; the embedded default).

Run:
    fedpsyau federate --config=configs/fl_synthetic.py --workdir=runs/fl_synthetic
    (or: python -m fedpsyau_jax.cli federate --config=configs/fl_synthetic.py --workdir ...)
Overrides: --config.fl.rounds=3 --config.protocol.seeds="(0, 1, 2)" --config.fl.algorithms="('pfedprox',)"

6 synthetic subjects × 6 samples, 2 clients of 3 subjects each (equal_subjects),
random 70/30 split per client, 2 repeat seeds, all five algorithms, 2 rounds × 1
local epoch. Synthetic data is NOT real: this checks the machinery, not the method.
"""
import ml_collections

from fedpsyau_jax.federated.config_defaults import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.data.kwargs = ml_collections.ConfigDict({"num_subjects": 6, "samples_per_subject": 6,
                                           "num_classes": 3, "seed": 0})
    return c
