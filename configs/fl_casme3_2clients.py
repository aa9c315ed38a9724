"""Federated FED-PsyAU on CAS(ME)³ Part A: 2 clients with equal numbers of subjects.

The paper's setting: 3 classes (negative / positive / surprise), clients built by
dealing subjects at random into 2 equal groups, random 70/30 sample split per client,
10 repeat seeds, mean ± std of per-client UF1/UAR. Needs the licence-gated release:

    fedpsyau federate --config=configs/fl_casme3_2clients.py --workdir=runs/fl_casme3 \
        --config.data.root=/path/to/CASME3

(data.root holds ``annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` and
``data/part_A/spNO.*``). Tested on ``write_fixture_layout("casme3", ...)`` with tiny
overrides (tests/test_federated_configs.py).
"""
import ml_collections

from fedpsyau_jax.federated.config_defaults import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.name = "fl_casme3_2clients"
    c.data.name = "casme3"
    c.partition.scheme = "equal_subjects"
    c.partition.num_clients = 2
    c.protocol.splits = ("random", "subject")
    c.protocol.seeds = tuple(range(10))
    c.fl.rounds = 10
    c.fl.local_epochs = 1
    c.train.learning_rate = 5e-4
    c.train.batch_size = 16
    return c
