"""A baseline flow network (STSTNet by default; Off-ApexNet, SSSNet) on the MEGC2019
composite, LOSO, with the training recipe it was published with in the re-run study
whose fixed-epoch figures RESULTS quotes (STSTNet 0.713, SSSNet 0.744–0.762 UF1).

    fedpsyau train --config=configs/megc2019_baseline_loso.py --workdir=runs/base_ststnet_loso
    fedpsyau train --config=configs/megc2019_baseline_loso.py --workdir=runs/base_sssnet_loso \
        --config.model.name=sssnet
    # leave one database out (the cross-database protocol)
    fedpsyau train --config=configs/megc2019_baseline_loso.py --workdir=runs/base_ststnet_xdb \
        --config.protocol.kind=leave_dataset_out
    # with FED-PsyAU's recipe instead: configs/megc2019_composite_loso.py --config.model.name=ststnet

Same samples, folds and pooled scores as configs/megc2019_composite_loso.py; only the
network and its recipe differ. The recipe is fixed a priori from the publication:

- Adam, learning rate 1e-4 constant, weight decay 1e-3, 200 epochs, batch 256,
  unweighted cross-entropy, no augmentation, evaluated after the last epoch (no early
  stopping on test subjects). The study's Adam adds the decay to the gradient (L2);
  here it is AdamW's decoupled decay on every parameter, the package's one optimiser.
- alpha (1, 0, 0): the emotion loss alone (a baseline has no AU outputs).
- runtime.fold_chunk 68: all 68 small folds vmapped in one program (speed only; results do
  not depend on it).
"""

from pathlib import Path

import ml_collections

from fedpsyau_jax.config_loading import load_config


def get_config() -> ml_collections.ConfigDict:
    c = load_config(Path(__file__).with_name("megc2019_composite_loso.py"))
    with c.unlocked():
        del c["config_file"]  # this file is the config, not the one it starts from
    c.model.name = "ststnet"
    c.model.use_au_branch = False
    c.pretrain.epochs = 0
    c.train.epochs = 200
    c.train.batch_size = 256
    c.train.eval_batch_size = 256
    c.train.learning_rate = 1e-4
    c.train.lr_schedule = "constant"
    c.train.weight_decay = 1e-3
    c.train.decay_kernels_only = False
    c.train.class_balance = "none"
    c.train.hflip = 0.0
    c.train.eval_flip = False
    c.train.alpha = (1.0, 0.0, 0.0)
    c.export.final_model = "none"
    c.runtime.fold_chunk = 68
    c.runtime.checkpoint_every = 50
    return c
