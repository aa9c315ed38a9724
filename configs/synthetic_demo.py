"""Synthetic demo: LOSO on a small synthetic dataset, end to end in a few minutes on 2 CPU cores.

    fedpsyau train --config=configs/synthetic_demo.py --workdir=runs/demo

6 synthetic subjects × 8 samples (3 classes, AU labels on), leave-one-subject-out
(6 folds, one at a time: on CPU a vmapped chunk of folds is slower per fold-step, see
benchmarks/RESULTS.md, "Speed") plus one model on all data exported as runs/demo/final_model
(use it with `fedpsyau predict`). The data are synthetic: the numbers show that the
pipeline learns, not how well it recognises real faces. Hyper-parameters (lr 1e-3,
12 epochs, batch 16) were chosen a priori for the run time, not tuned.
"""
from fedpsyau_jax.config_loading import base_config


def get_config():
    c = base_config()
    c.data.name = "synthetic"
    c.data.kwargs.num_subjects = 6
    c.data.kwargs.samples_per_subject = 8
    c.data.kwargs.num_classes = 3
    c.data.kwargs.seed = 0
    c.protocol.kind = "loso"
    c.prior.source = "fold_train"
    c.train.epochs = 12
    c.train.batch_size = 16
    c.train.eval_batch_size = 16
    c.train.learning_rate = 1e-3
    c.runtime.fold_chunk = 1
    return c
