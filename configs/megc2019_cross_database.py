"""MEGC2019 composite, leave one database out: train on two of SMIC, CASME II and SAMM,
test on the third (three folds), with the composite recipe.

A database the model never saw is the setting a new clinic or lab meets: other people,
another camera, another lab's coding. Every number of this protocol is the pooled score
of the three held-out databases (and each one apart), at the fixed last epoch.

    fedpsyau train --config=configs/megc2019_cross_database.py --workdir=runs/xdb_full_s0
    fedpsyau train --config=configs/megc2019_cross_database.py --workdir=runs/xdb_flow_s0 \
        --config.model.use_au_branch=false        # flow-stream-only twin
    fedpsyau train --config=configs/megc2019_cross_database.py --workdir=runs/xdb_ststnet_s0 \
        --config.model.name=ststnet               # a baseline (ststnet | offapexnet | sssnet)
    fedpsyau report runs/xdb_full_s0 --paired-vs runs/xdb_flow_s0
    python experiments/cross_database/run_draws.py --arms full,flow --draws 10   # the study

Settings: those of configs/megc2019_composite_loso.py (chosen there on validation subjects
carved from training subjects, none on a test subject), except:

- protocol.kind leave_dataset_out — the protocol.
- pretrain.subject_folds 0 — stage 1 runs inside each fold on its training databases'
  AU-labelled subjects only (the shared part models of the LOSO recipe each hold out a
  fifth of the subjects, never a whole database, so no fold could use one).
- export.final_model none — the all-data model is the LOSO config's business.
- runtime.fold_chunk 1 — three folds of unequal size; speed only.
"""

from pathlib import Path

import ml_collections

from fedpsyau_jax.config_loading import load_config


def get_config() -> ml_collections.ConfigDict:
    c = load_config(Path(__file__).with_name("megc2019_composite_loso.py"))
    with c.unlocked():
        del c["config_file"]  # this file is the config, not the one it starts from
    c.protocol.kind = "leave_dataset_out"
    c.pretrain.subject_folds = 0
    c.export.final_model = "none"
    return c
