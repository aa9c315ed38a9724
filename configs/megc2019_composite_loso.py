"""MEGC2019 composite (SMIC + CASME II + SAMM; 442 samples, 68 subjects, 3 classes), LOSO.

The composite recipe; its figures are in benchmarks/RESULTS.md.

    fedpsyau train --config=configs/megc2019_composite_loso.py --workdir=runs/megc2019_loso
    fedpsyau train --config=configs/megc2019_composite_loso.py --workdir=runs/megc2019_loso_flow \
        --config.model.use_au_branch=false         # flow-stream-only twin (paper Table 3, I)
    fedpsyau train --config=configs/megc2019_composite_loso.py --workdir=runs/megc2019_loso_ref \
        --config.model.group_tokens=reference     # the reference code's G3/G4 token sets
    fedpsyau report runs/megc2019_loso --paired-vs runs/megc2019_loso_flow

Data: the released composite (28×28 flows + apex faces) read from the shared data folder
at run time (``FEDPSYAU_SHARED_DATA``); AU labels from the CASME II / SAMM sheets, none for
SMIC; D recomputed from each fold's training subjects. Every model is evaluated at the
fixed last epoch; no setting was chosen on a test subject. How each setting was fixed,
with the measurements: docs/notes/au_branch_study.md ("How the composite recipe's
settings were fixed") and docs/notes/loso_history.md.

- data.kwargs.landmark_frame flow — a data fix: the released SAMM flows were cut from
  another face box than the apex crops the landmarks come from, so the SAMM landmarks are
  mapped into the flows' frame (measured without labels,
  experiments/au_branch/landmark_flow_frame.py). Earlier runs: landmark_frame=apex.
- epochs 20, batch 32 — fixed a priori from the compute budget (one full-model LOSO in
  about 100 min on 2 CPU cores).
- learning_rate 3e-4, model.roi_source flow28 — chosen on validation subjects carved from
  the training subjects (``scripts/select_settings.py``); flow28 cuts the ROI patches from
  the real 28-px flow (the composite's 128-px flow is an upsample of it).
- warm-up + cosine schedule, weight decay 0.01 on kernels only, hflip 0.5 (exact on the
  flow), au_norm examples (per-sample AU weight) — the standard recipe, fixed a priori.
- class_balance weighted_ce — balances the classes (250 : 109 : 83) like the reference's
  oversampling, without the 1.7× longer epochs oversampling costs.
- model.gat_dropout 0, model.au_head_dropout 0 (paper 0.5), train.au_pos_weight balanced —
  with the paper's dropouts the AU branch does not fit its AU labels and stays at the base
  rate; without the per-AU positive weight n⁻/n⁺ rare AUs stay under 0.5.
- pretrain.* (20 epochs at 1e-3, balanced BCE, 20 % inner validation) — stage 1: the AU
  branch trained on AU labels alone from the fold's training subjects; per-AU thresholds
  are chosen on its inner-validation subjects.
- pretrain.subject_folds 5 — stage 1 as 5 models on a subject 5-fold of the AU-labelled
  subjects, shared by the LOSO folds, at about a tenth of the cost of one per fold.
  Earlier runs: --config.pretrain.subject_folds=0.
- pretrain.part_balance dataset — each part gets an even share of every dataset, so that
  the stage-1 models put their AU scores on similar scales. Earlier runs: =none.
- train.eval_flip true — every evaluated output is the mean of the logits on the sample and
  on its mirror image (the recipe trains on both orientations). Earlier runs: =false.
- pretrain.au_calibration thresholds (the default) — ``platt`` was measured and not
  adopted: per-AU maps fitted on about 9 subjects are too noisy.
- runtime.checkpoint_every 5 — speed only: a killed run resumes from the last multiple of
  5 epochs; results do not depend on it.
The paper's branch: --config.model.gat_dropout=0.5 --config.model.au_head_dropout=0.5
--config.train.au_pos_weight=none --config.pretrain.epochs=0.
"""
from fedpsyau_jax.config_loading import base_config


def get_config():
    c = base_config()
    c.data.name = "megc2019_composite"
    # landmarks in the flows' frame (SAMM's flows and apex crops differ)
    c.data.kwargs.landmark_frame = "flow"
    c.protocol.kind = "loso"
    c.prior.source = "fold_train"
    c.train.epochs = 20
    c.train.batch_size = 32
    c.train.eval_batch_size = 32
    c.train.learning_rate = 3e-4
    c.train.lr_schedule = "warmup_cosine"
    c.train.warmup_epochs = 1.0
    c.train.min_lr_ratio = 0.0
    c.train.weight_decay = 0.01
    c.train.decay_kernels_only = True
    c.train.class_balance = "weighted_ce"
    c.train.hflip = 0.5
    c.train.au_norm = "examples"
    c.train.eval_flip = True
    c.model.roi_source = "flow28"
    c.model.gat_dropout = 0.0
    c.model.au_head_dropout = 0.0
    c.train.au_pos_weight = "balanced"
    c.pretrain.epochs = 20
    c.pretrain.learning_rate = 1e-3
    c.pretrain.au_pos_weight = "balanced"
    c.pretrain.val_fraction = 0.2
    c.pretrain.subject_folds = 5
    c.pretrain.part_balance = "dataset"
    c.export.final_model = "all_data"
    c.runtime.fold_chunk = 1
    c.runtime.checkpoint_every = 5
    return c
