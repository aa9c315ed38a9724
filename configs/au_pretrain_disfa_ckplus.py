"""AU-module pre-training (paper §5.1) on CK+ peak frames, then MER fine-tuning.

Step 1 — train the AU branch (LFE, SSE, GSE/AFE, DPK-GAT, AU heads) with the AU
losses only (α = (0, 0.8, 0.8): the emotion term is off) on every CK+ sequence with
FACS labels (onset = first frame, apex = peak frame); no test split:

    fedpsyau train --config=configs/au_pretrain_disfa_ckplus.py --workdir=runs/au_pretrain \
        --config.data.root=/path/to/CK+

Step 2 — load those AU-branch params into every fold of the MER model and train it:

    fedpsyau train --config=configs/megc2019_composite_loso.py --workdir=runs/megc2019_pre \
        --config.model.init_from=runs/au_pretrain/final_model --config.pretrain.epochs=0

(``pretrain.epochs=0``: the composite config's own in-fold AU pre-training would start
every fold from scratch and replace the CK+ weights, so the start check refuses both.)

Recipe: the ``base_config`` schedule (1-epoch warm-up, cosine decay), kernel-only
weight decay and the horizontal flip (AUs are parsed without side, so a flipped face
keeps its labels); lr 1e-3 and 20 epochs fixed a priori (no validation split: the
pre-training has no test either); no class balance (the targets are multi-label AUs).

DISFA: the registry's ``load_dataset`` has no "disfa" entry yet (its reader exists:
``data_pipelines.readers.disfa``), so this config pre-trains on CK+ only.
"""
from fedpsyau_jax.config_loading import base_config


def get_config():
    c = base_config()
    c.data.name = "ckplus"
    c.data.kwargs.scheme = "emotion7"
    c.data.only_au_labelled = True
    c.protocol.kind = "all"
    c.prior.source = "fold_train"
    c.train.alpha = (0.0, 0.8, 0.8)
    c.train.epochs = 20
    c.train.batch_size = 32
    c.train.learning_rate = 1e-3
    c.train.class_balance = "none"
    c.export.final_model = "all_data"
    c.runtime.fold_chunk = 1
    return c
