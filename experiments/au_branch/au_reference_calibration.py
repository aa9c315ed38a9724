"""AU heads' scores standardised per fold model against a fixed unlabelled reference set.

    python experiments/au_branch/au_reference_calibration.py runs/megc2019_loso_au_shared

A post-hoc check, specified before it was run (issue 26). Each fold model's AU logits
are standardised against a fixed unlabelled reference set: all SMIC samples, which are
in every AU fold's training set but never AU-supervised. That is
z = (logit - mean_ref) / std_ref per AU and model. Printed: the pooled and
within-subject AUC of z, and F1 at thresholds in z units chosen on the stage-1
inner-validation rows (stage-1 models standardised the same way). Needs the run's fold
checkpoints (the workdir, not the committed predictions).
"""
import sys, numpy as np
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
import jax, jax.numpy as jnp
from fedpsyau_jax.training import report as lr
from fedpsyau_jax.training.fold_training import MODEL_CHECKPOINT
from fedpsyau_jax.training.checkpoints import restore_checkpoint
from fedpsyau_jax.training.metrics import au_detection_scores, au_within_subject_auc
from fedpsyau_jax.network.model import FedPsyAU
from fedpsyau_jax.training.au_pretraining import plan_pretraining, choose_thresholds, part_strata
if len(sys.argv) != 2:
    sys.exit("usage: python experiments/au_branch/au_reference_calibration.py RUN_WORKDIR  (a finished run with its fold checkpoints)")
run = Path(sys.argv[1])
cfg, samples, idx, preds, au, folds = lr.pooled(run)
from fedpsyau_jax.network.model import model_options
model = FedPsyAU(samples.num_classes, **model_options(cfg.model.to_dict()))
ref = np.flatnonzero(np.asarray(samples.dataset).astype(str) == "smic") if hasattr(samples, "dataset") else None
print("reference samples", len(ref))
batch_all = {k: jnp.asarray(v) for k, v in {"flow128": samples.flow128, "flow28": samples.flow28, "landmarks": samples.landmarks}.items()}
BETA = [jnp.float32(0.0)]  # the reference β schedule ends at 0 (the β of the last epoch, logged in metrics.jsonl)
apply = jax.jit(lambda v, b, beta: model.apply(v, b, beta, train=False))
def logits(variables, rows):
    out = []
    for i in range(0, len(rows), 64):
        r = rows[i:i + 64]
        _, g, a = apply(variables, {k: v[r] for k, v in batch_all.items()}, BETA[0])
        out.append(np.stack([np.asarray(g), np.asarray(a)]))
    return np.concatenate(out, 1)
from fedpsyau_jax.training.au_alignment import reference_stats, standardise
def z(variables, rows):
    L = logits(variables, np.concatenate([ref, rows]))
    Lr, Lt = L[:, :len(ref)], L[:, len(ref):]
    return np.stack([standardise(Lt[h], reference_stats(Lr[h])) for h in range(len(L))])
from fedpsyau_jax.network.model import init_variables
_t = init_variables(model, jax.random.key(0))
TARGET = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), {k: _t[k] for k in ("params", "batch_stats", "priors") if k in _t})
def load(d):
    v, meta = restore_checkpoint(d, MODEL_CHECKPOINT, TARGET)
    return v
p = cfg.pretrain
plan = plan_pretraining(folds, samples.subject, samples.au_mask, float(p.val_fraction), int(cfg.seed), int(p.get("subject_folds", 0)),
                        part_strata(p, samples))
Z, T = [], []
zval = {}
for f in folds:
    if not len(f.test_idx) or not (samples.au_mask[f.test_idx].sum(1) > 0).any():
        continue
    j = plan.of_fold[f.index]; pf = plan.folds[j]
    if j not in zval:
        v1 = load(run / "au_pretrain" / "folds" / f"{j:03d}_{pf.name}")
        zval[j] = (pf.test_idx, z(v1, pf.test_idx))
    vi, zv = zval[j]
    keep = ~np.isin(samples.subject[vi], f.test_subjects)
    v = load(run / "folds" / f"{f.index:03d}_{f.name}")
    zt = z(v, f.test_idx)
    # thresholds in z units on stage-1 inner validation (grid of z values)
    zgrid = np.linspace(-2, 4, 61)
    thr = [choose_thresholds(samples.au[vi][keep], samples.au_mask[vi][keep], zv[h][keep], grid=zgrid, centre=0.0)
           for h in range(2)]
    Z.append((f.test_idx, zt, np.stack(thr)))
idx = np.concatenate([i for i, _, _ in Z]); zz = np.concatenate([q for _, q, _ in Z], 1)
dec = np.concatenate([(q >= th[:, None, :]) for _, q, th in Z], 1)
k = samples.au_mask[idx].sum(1) > 0
for h, name in enumerate(("gat", "afe")):
    a = au_detection_scores(samples.au[idx][k], samples.au_mask[idx][k], zz[h][k], decisions=dec[h][k])
    w = au_within_subject_auc(samples.au[idx][k], samples.au_mask[idx][k], zz[h][k], samples.subject[idx][k])
    print(f"{name}: reference-standardised pooled AUC {a['mean_auc']:.3f} within {w['mean_auc']:.3f} F1 (z thresholds, stage-1 inner val) {a['mean_f1']:.3f}")
