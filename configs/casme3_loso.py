"""CAS(ME)³ Part A, 3 classes (negative / positive / surprise; others dropped), LOSO.

    fedpsyau train --config=configs/casme3_loso.py --workdir=runs/casme3_loso \
        --config.data.root=/path/to/CASME3_release

``data.root`` is the licence-gated release folder (label sheet
``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` + ``data/part_A/spNO.*/<task>/color/*.jpg``);
the video pipeline turns every clip into flows once and caches them
(``data.cache_dir`` or ``$FEDPSYAU_CACHE``). D from each fold's training subjects.
Recipe (``base_config`` defaults unless set below; none chosen on test subjects):
linear warm-up (1 epoch) then cosine decay of the learning rate, AdamW weight decay
0.01 on kernels only, flow-respecting horizontal flip with probability 0.5, AU BCE
normalised per example (``losses.masked_au_bce``), class balance as set below. The
peak learning rate and epochs are the reference defaults (SPEC §7), fixed a priori: the
release is licence-gated and not here to validate on. With the data at hand, choose
them on training subjects only: ``python scripts/select_settings.py --config=<this file>
--workdir=runs/select --grid "train.learning_rate=5e-5,3e-4,1e-3"``.
Class balance: oversampling (reference practice; CAS(ME)³ is strongly unbalanced).
"""
from fedpsyau_jax.config_loading import base_config


def get_config():
    c = base_config()
    c.data.name = "casme3"
    c.data.kwargs.scheme = "megc3"
    c.protocol.kind = "loso"
    c.prior.source = "fold_train"
    c.train.epochs = 30
    c.train.batch_size = 32
    c.train.learning_rate = 5e-5
    c.train.class_balance = "oversample"
    c.runtime.fold_chunk = 8
    return c
