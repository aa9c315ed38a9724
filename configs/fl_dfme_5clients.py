"""Federated FED-PsyAU on DFME: 5 clients with equal numbers of subjects, 7 classes.

The paper's setting: 7 classes (anger, contempt, disgust, fear, happiness,
sadness, surprise), subjects dealt at random into 5 equal clients, random 70/30
sample split per client, 10 repeat seeds. DFME has no AU labels: each client's data
prior D falls back to the reference preset (``fl.fallback_prior``). Needs the
(non-public) DFME release:

    fedpsyau federate --config=configs/fl_dfme_5clients.py --workdir=runs/fl_dfme \
        --config.data.root=/path/to/DFME

Tested on ``write_fixture_layout("dfme", ...)`` with tiny overrides.
"""
import ml_collections

from fedpsyau_jax.federated.config_defaults import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.name = "fl_dfme_5clients"
    c.data.name = "dfme"
    c.partition.scheme = "equal_subjects"
    c.partition.num_clients = 5
    c.protocol.splits = ("random", "subject")
    c.protocol.seeds = tuple(range(10))
    c.fl.rounds = 10
    c.fl.local_epochs = 1
    c.train.learning_rate = 5e-4
    c.train.batch_size = 32
    return c
