"""Why the AU branch learns AUs slowly: measured, on the real AU-labelled composite.

    python experiments/au_branch/au_branch_diagnosis.py --variant paper --out runs/au_diag
    python experiments/au_branch/au_branch_diagnosis.py --variant paper --model.au_node_norm=none --out runs/au_diag

Trains the full network on AU labels alone (α = (0, 1, 1)) on the 278 CASME II + SAMM
samples of the MEGC2019 composite that carry AU labels, subject 5-fold (the folds of
``protocols.kfold_subject_folds``, seed 1), with the composite recipe otherwise
(batch 32, AdamW on kernels, warm-up + cosine, flow-respecting flip, flow28 ROIs), and
records per epoch:

- the training BCE of both heads and the held-out ROC AUC / F1 of both heads, pooled
  over the 5 held-out folds (AUC by ranks over the known entries);
- at a few epochs, on fold 0: the gradient norm that each loss term (BCE of head A =
  AFE, BCE of head B = GAT) sends into each module (LFE, SSE, each GSE/AFE, the GATs,
  the heads), and the fraction of dead units after every ReLU of the branch (a channel
  that is zero for every training sample and position);
- the AU-node magnitude: the mean L2 norm of each AU node before any normalisation,
  for samples where that AU is present vs absent (how much of the AU signal lies in
  *how much* the region moved).

Nothing here is chosen on test subjects: these are diagnostics of the training
dynamics; the settings a run uses are fixed in its config.
Output: ``<out>/<variant>.json`` and a line per epoch on stdout.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fedpsyau_jax.config_loading import load_config
from fedpsyau_jax import api
from fedpsyau_jax.network.model import FedPsyAU, ConvBNReLU
from fedpsyau_jax.training.batching import epoch_plan, eval_plan
from fedpsyau_jax.training.losses import au_pos_weights, fedpsyau_loss
from fedpsyau_jax.training.metrics import au_detection_scores
from fedpsyau_jax.training.protocols import fold_prior, kfold_subject_folds
from fedpsyau_jax.training.train_state import make_optimizer, make_train_step, create_train_state
from fedpsyau_jax.training.settings import TrainSettings, lr_factor

MODULES = ("lfe", "sse", "afe_", "gat_", "au_head_afe", "au_head_gat", "dsi")


def module_of(name: str) -> str:
    for m in MODULES:
        if name.startswith(m):
            return m.rstrip("_")
    return name


def grad_norms_by_module(grads) -> dict[str, float]:
    sq: dict[str, float] = {}
    for name, sub in grads.items():
        m = module_of(name)
        sq[m] = sq.get(m, 0.0) + float(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(sub)))
    return {k: float(np.sqrt(v)) for k, v in sq.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/au_diag"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--folds", type=int, default=5, help="train only the first N of the k folds")
    ap.add_argument("--model.au_node_norm", dest="au_node_norm", default="l2")
    ap.add_argument("--probe_epochs", default="0,1,3,7,19", help="epochs of the gradient / ReLU probes ('' = none)")
    ap.add_argument("--alpha", default="0,1,1", help="loss weights (emotion CE, BCE head A, BCE head B)")
    ap.add_argument("--no_dropout", action="store_true", help="every dropout of the network off while training")
    ap.add_argument("--model.gat_dropout", dest="gat_dropout", type=float, default=0.5)
    ap.add_argument("--model.au_head_dropout", dest="au_head_dropout", type=float, default=0.5)
    ap.add_argument("--au_pos_weight", default="none", help="none | balanced")
    args = ap.parse_args(argv)

    cfg = load_config("configs/megc2019_composite_loso.py", ["data.only_au_labelled=true"])
    samples = api.load_samples(cfg)
    folds = kfold_subject_folds(samples.subject, args.k, True, 1)[:args.folds]
    model = FedPsyAU(num_classes=samples.num_classes, roi_source="flow28", au_node_norm=args.au_node_norm,
                     gat_dropout=args.gat_dropout, au_head_dropout=args.au_head_dropout)
    s = TrainSettings(epochs=args.epochs, learning_rate=args.lr, lr_schedule="warmup_cosine", warmup_epochs=1.0,
                      decay_kernels_only=True, hflip=0.5, au_norm="examples", alpha=(0.0, 1.0, 1.0),
                      class_balance="none")
    tx = make_optimizer(1.0, 0.01, True)
    data = {k: np.asarray(getattr(samples, k)) for k in ("flow128", "flow28", "landmarks", "label", "au", "au_mask")}
    probe_epochs = {int(e) for e in args.probe_epochs.split(",") if e}
    alpha = tuple(float(a) for a in args.alpha.split(","))
    if args.no_dropout:
        # Diagnostic only: every HashDropout of the network becomes the identity.
        from fedpsyau_jax.network import hash_dropout
        hash_dropout.HashDropout.__call__ = lambda self, x, *a, **k: x

    base_step = make_train_step(model, tx, alpha=alpha, hflip=0.5, au_norm="examples")

    @jax.jit
    def train_step(state, batch, beta, lr):
        return base_step(state, batch, beta, lr_scale=lr)

    @jax.jit
    def eval_step(state, batch, beta):
        v = {"params": state.params, "batch_stats": state.batch_stats, "priors": state.priors}
        _, gat, afe = model.apply(v, batch, beta, train=False)
        return jax.nn.sigmoid(gat), jax.nn.sigmoid(afe)

    @jax.jit
    def grads_per_term(state, batch, beta, key):
        def term(params, which):
            outputs, _ = model.apply({"params": params, "batch_stats": state.batch_stats, "priors": state.priors},
                                     batch, beta, train=True, rngs={"dropout": key}, mutable=["batch_stats"])
            _, parts = fedpsyau_loss(outputs, batch, batch["example_mask"], (0.0, 1.0, 1.0), "examples")
            return parts[which]
        return {w: jax.grad(term)(state.params, w) for w in ("bce_afe", "bce_gat")}

    @jax.jit
    def activations(state, batch, beta):
        v = {"params": state.params, "batch_stats": state.batch_stats, "priors": state.priors}
        _, inter = model.apply(v, batch, beta, train=False, capture_intermediates=lambda m, n: isinstance(m, ConvBNReLU))
        return inter["intermediates"]

    @jax.jit
    def raw_nodes(state, batch, beta):
        # AU nodes before normalisation: the same model with au_node_norm="none".
        v = {"params": state.params, "batch_stats": state.batch_stats, "priors": state.priors}
        m2 = model.clone(au_node_norm="none")
        _, inter = m2.apply(v, batch, beta, train=False,
                            capture_intermediates=lambda m, n: type(m).__name__ == "GroupAFE")
        return inter["intermediates"]

    pos_w = None

    def batch_of(idx, mask):
        b = {k: v[idx] for k, v in data.items()}
        b["example_mask"] = mask.astype(np.float32)
        if pos_w is not None:
            b["au_pos_weight"] = pos_w
        return b

    record = {"variant": args.variant, "args": vars(args) | {"out": str(args.out)}, "epochs": [], "probes": []}
    probs_gat = np.zeros((len(samples.label), 12), np.float32)
    probs_afe = np.zeros_like(probs_gat)
    per_epoch_probs = {e: (np.zeros_like(probs_gat), np.zeros_like(probs_gat)) for e in range(args.epochs)}
    train_bce = np.zeros((len(folds), args.epochs, 2))
    betas = s.betas()
    t0 = time.perf_counter()
    for fi, fold in enumerate(folds):
        d = fold_prior("fold_train", samples.au, samples.au_mask, fold.train_idx)
        state = create_train_state(model, tx, jax.random.key(fi), prior_d=d)
        if args.au_pos_weight == "balanced":
            pos_w = np.asarray(au_pos_weights(samples.au[fold.train_idx], samples.au_mask[fold.train_idx]))
        for epoch in range(args.epochs):
            rng = np.random.default_rng([0, fi, epoch])
            idx, mask = epoch_plan(rng, fold.train_idx, 32)
            lrs = s.learning_rate * lr_factor(s, (epoch + np.arange(len(idx)) / len(idx)) / args.epochs)
            state = state.replace(key=jax.random.fold_in(jax.random.key(100 + fi), epoch))
            sums = np.zeros(2)
            for t in range(len(idx)):
                batch = batch_of(idx[t], mask[t])
                if fi == 0 and epoch in probe_epochs and t == 0:
                    g = grads_per_term(state, batch, jnp.float32(betas[epoch]), jax.random.key(7))
                    acts = activations(state, batch_of(*[a[0] for a in eval_plan(fold.train_idx, len(fold.train_idx))]),
                                       jnp.float32(betas[epoch]))
                    dead = {}
                    for path, val in jax.tree_util.tree_flatten_with_path(acts)[0]:
                        name = "/".join(str(getattr(p, "key", p)) for p in path[:-1])
                        a = np.asarray(val)
                        ch = a.reshape(-1, a.shape[-1])
                        dead[name] = {"dead_channels": float((ch.max(0) <= 0).mean()),
                                      "zero_fraction": float((ch <= 0).mean()), "channels": int(ch.shape[-1])}
                    rn = raw_nodes(state, batch_of(*[a[0] for a in eval_plan(fold.train_idx, len(fold.train_idx))]),
                                   jnp.float32(betas[epoch]))
                    nodes = np.concatenate([np.asarray(rn[f"afe_G{i}"]["__call__"][0]) for i in range(1, 5)], 1)
                    mag = np.linalg.norm(nodes, axis=-1)                      # (n, 12)
                    au_t, au_m = samples.au[fold.train_idx], samples.au_mask[fold.train_idx]
                    mag_auc = au_detection_scores(au_t, au_m, mag)["auc_per_au"]
                    record["probes"].append({
                        "epoch": epoch,
                        "grad_norm": {w: grad_norms_by_module(gw) for w, gw in g.items()},
                        "relu": dead,
                        "node_magnitude_train_auc": mag_auc,
                        "node_magnitude_mean": float(mag.mean())})
                state, parts = train_step(state, batch, jnp.float32(betas[epoch]), jnp.float32(lrs[t]))
                sums += [float(parts["bce_afe"]), float(parts["bce_gat"])]
            train_bce[fi, epoch] = sums / len(idx)
            eidx, emask = eval_plan(fold.test_idx, 64)
            pg, pa = [], []
            for t in range(len(eidx)):
                g_, a_ = eval_step(state, batch_of(eidx[t], emask[t]), jnp.float32(betas[epoch]))
                pg.append(np.asarray(g_)); pa.append(np.asarray(a_))
            n = len(fold.test_idx)
            per_epoch_probs[epoch][0][fold.test_idx] = np.concatenate(pg)[:n]
            per_epoch_probs[epoch][1][fold.test_idx] = np.concatenate(pa)[:n]
            print(f"fold {fi} epoch {epoch:2d} bce afe/gat {train_bce[fi, epoch, 0]:.3f}/{train_bce[fi, epoch, 1]:.3f} "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
    test = np.concatenate([f.test_idx for f in folds])
    for e in range(args.epochs):
        sg = au_detection_scores(samples.au[test], samples.au_mask[test], per_epoch_probs[e][0][test])
        sa = au_detection_scores(samples.au[test], samples.au_mask[test], per_epoch_probs[e][1][test])
        record["epochs"].append({"epoch": e, "train_bce_afe": float(train_bce[:, e, 0].mean()),
                                 "train_bce_gat": float(train_bce[:, e, 1].mean()),
                                 "heldout_auc_gat": sg["mean_auc"], "heldout_auc_afe": sa["mean_auc"],
                                 "heldout_f1_gat": sg["mean_f1"], "heldout_f1_afe": sa["mean_f1"],
                                 "heldout_auc_per_au_gat": sg["auc_per_au"],
                                 "mean_prob_gat": float(per_epoch_probs[e][0][test].mean()),
                                 "max_prob_gat": float(per_epoch_probs[e][0][test].max())})
        r = record["epochs"][-1]
        print(f"epoch {e:2d} train bce {r['train_bce_afe']:.3f}/{r['train_bce_gat']:.3f} held-out AUC "
              f"gat {r['heldout_auc_gat']:.3f} afe {r['heldout_auc_afe']:.3f} F1 gat {r['heldout_f1_gat']:.3f} "
              f"afe {r['heldout_f1_afe']:.3f} mean p {r['mean_prob_gat']:.3f}")
    from fedpsyau_jax.training.au_probe import fit_predict_probe
    probe = np.zeros_like(probs_gat)
    for f in folds:
        probe[f.test_idx] = fit_predict_probe(samples.flow28[f.train_idx], samples.au[f.train_idx],
                                              samples.au_mask[f.train_idx], samples.flow28[f.test_idx])
    sp = au_detection_scores(samples.au[test], samples.au_mask[test], probe[test])
    record["probe"] = {"heldout_auc": sp["mean_auc"], "heldout_f1": sp["mean_f1"], "auc_per_au": sp["auc_per_au"]}
    print(f"linear probe on the same folds: held-out AUC {sp['mean_auc']:.3f} F1 {sp['mean_f1']:.3f}")
    record["seconds"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.variant}.json").write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
