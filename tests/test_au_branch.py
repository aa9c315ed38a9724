"""The AU branch's fix and its yardsticks (issue #26): the linear probe, the balanced AU
loss, the AU-branch options, AU pre-training's fold plan and the per-AU thresholds."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fedpsyau_jax.network.model import FedPsyAU, example_batch, init_variables, model_options
from fedpsyau_jax.training import au_probe
from fedpsyau_jax.training.au_pretraining import choose_thresholds, plan_pretraining
from fedpsyau_jax.training.losses import au_pos_weights, masked_au_bce, weighted_bce
from fedpsyau_jax.training.metrics import _auc, au_subject_bootstrap
from fedpsyau_jax.training.protocols import loso_folds


# ------------------------------------------------------------------ linear probe
def _linear_task(n, d=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = np.zeros((d, 12))
    for a in range(12):
        w[rng.choice(d, 4, replace=False), a] = rng.normal(2.0, 0.5, 4)
    logit = x @ w - 2.5                    # rare positives, as AUs are
    y = (logit + rng.logistic(size=logit.shape) * 0.5 > 0).astype(np.float32)
    return x.astype(np.float32), y

from conftest import SHARED_STAGE1  # noqa: E402


def test_probe_solves_the_balanced_logistic_regression_exactly():
    """KKT of ½‖w‖² + C Σ s_i ℓ_i at the returned (α, b): the gradient vanishes."""
    x, y = _linear_task(80)
    xs, = au_probe.standardise(x)
    k = xs @ xs.T
    for a in (0, 5):
        pos = y[:, a] > 0.5
        s = np.where(pos, len(y) / (2 * pos.sum()), len(y) / (2 * (~pos).sum()))
        alpha, b = jax.jit(au_probe._fit_one)(jnp.asarray(k, jnp.float32), jnp.asarray(y[:, a]),
                                              jnp.asarray(s, jnp.float32), jnp.float32(1.0))
        w = xs.T @ np.asarray(alpha, np.float64)
        p = 1 / (1 + np.exp(-(xs @ w + float(b))))
        r = s * (p - y[:, a])
        assert np.linalg.norm(w + xs.T @ r) < 1e-3 * max(1.0, np.linalg.norm(w))
        assert abs(r.sum()) < 1e-3


def test_probe_predictions_are_cached_by_their_inputs(tmp_path, monkeypatch):
    """``au_probe.probe_predictions``: per fold on its training rows; a second call on the
    same inputs and folds reads the cache without fitting, a changed label fits again."""
    from fedpsyau_jax.training.protocols import Fold

    x, y = _linear_task(60, d=28 * 28 * 3, seed=2)
    flow = x.reshape(60, 28, 28, 3)
    mask = np.ones_like(y)
    folds = [Fold(i, f"f{i}", np.setdiff1d(np.arange(60), t), t, ()) for i, t in enumerate(np.split(np.arange(60), 3))]
    idx = np.arange(60)[::-1]
    first = au_probe.probe_predictions(flow, y, mask, folds, idx, cache_dir=tmp_path)
    for f in folds:
        np.testing.assert_allclose(
            first[np.searchsorted(-idx, -f.test_idx)],
            au_probe.fit_predict_probe(flow[f.train_idx], y[f.train_idx], mask[f.train_idx], flow[f.test_idx]), atol=1e-6)
    assert len(list(tmp_path.glob("probe-*.npz"))) == 1

    def no_fit(*a, **k):
        raise AssertionError("fitted again")

    real_fit = au_probe.fit_predict_probe
    monkeypatch.setattr(au_probe, "fit_predict_probe", no_fit)
    np.testing.assert_array_equal(au_probe.probe_predictions(flow, y, mask, folds, idx, cache_dir=tmp_path), first)
    monkeypatch.setattr(au_probe, "fit_predict_probe", real_fit)
    y2 = y.copy()
    y2[0, 0] = 1 - y2[0, 0]
    au_probe.probe_predictions(flow, y2, mask, folds, idx, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("probe-*.npz"))) == 2


def test_probe_c_is_chosen_on_inner_validation_subjects_of_the_training_rows(monkeypatch):
    """``choose_c`` fits on inner-train subjects and scores on validation subjects, all
    from the rows it is given; in ``probe_predictions(c="inner")`` those are each fold's
    training rows, so a test subject never takes part in the choice."""
    from fedpsyau_jax.training.protocols import Fold

    x, y = _linear_task(60, d=28 * 28 * 3, seed=3)
    flow = x.reshape(60, 28, 28, 3)
    mask = np.ones_like(y)
    subjects = np.repeat([f"s{i}" for i in range(10)], 6)
    seen = []
    real_fit = au_probe.fit_predict_probe

    def spy(xtr, ytr, mtr, xte, c=1.0):
        seen.append((float(c), len(xtr), len(xte)))
        return real_fit(xtr, ytr, mtr, xte, c)

    monkeypatch.setattr(au_probe, "fit_predict_probe", spy)
    c = au_probe.choose_c(flow, y, mask, subjects, grid=(1e-3, 1.0))
    assert c in (1e-3, 1.0) and [s[0] for s in seen] == [1e-3, 1.0]
    assert all(n_tr == 48 and n_val == 12 for _, n_tr, n_val in seen)   # 2 of 10 subjects validate
    # the choice equals the best validation AUC, recomputed here
    seen.clear()
    folds = [Fold(0, "f0", np.arange(12, 60), np.arange(12), ("s0", "s1"))]
    au_probe.probe_predictions(flow, y, mask, folds, np.arange(12), c="inner", subjects=subjects)
    assert len(seen) == len(au_probe.C_GRID) + 1
    assert all(n_tr + n_val == 48 for _, n_tr, n_val in seen[:-1])     # only the fold's training rows
    assert seen[-1][1:] == (48, 12)                                    # refit on all of them, test the fold


def test_probe_ranks_held_out_linear_signal_and_ignores_unlabelled_samples():
    x, y = _linear_task(300, seed=1)
    mask = np.ones_like(y)
    mask[:40] = 0                          # unlabelled samples (like SMIC) take no part
    y_bad = y.copy()
    y_bad[:40] = 1 - y_bad[:40]            # ... so wrong labels there change nothing
    p1 = au_probe.fit_predict_probe(x[:200], y[:200], mask[:200], x[200:])
    p2 = au_probe.fit_predict_probe(x[:200], y_bad[:200], mask[:200], x[200:])
    np.testing.assert_allclose(p1, p2, atol=1e-5)
    aucs = [_auc(p1[:, a], y[200:, a] > 0.5) for a in range(12) if 0 < y[200:, a].sum() < 100]
    assert np.mean(aucs) > 0.85


# ------------------------------------------------------------------ balanced AU loss
def test_weighted_bce_is_plain_bce_at_weight_one_and_weights_positives():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(5, 12)), jnp.float32)
    t = jnp.asarray(rng.random((5, 12)) < 0.3, jnp.float32)
    np.testing.assert_allclose(weighted_bce(logits, t, jnp.ones(12)), optax.sigmoid_binary_cross_entropy(logits, t),
                               rtol=1e-5, atol=1e-6)
    w = jnp.arange(1, 13, dtype=jnp.float32)
    got = weighted_bce(logits, t, w)
    want = -(w * t * jax.nn.log_sigmoid(logits) + (1 - t) * jax.nn.log_sigmoid(-logits))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_au_pos_weights_balance_known_labels_only():
    au = np.zeros((10, 12), np.float32)
    au[:2, 0] = 1                           # AU1: 2 positives, 8 negatives -> 4
    au[:5, 1] = 1                           # AU2: 5 / 5 -> 1
    mask = np.ones_like(au)
    mask[5:, 1] = 0                         # AU2 known on 5 samples, all positive -> 0 neg -> clipped to 1
    w = np.asarray(au_pos_weights(jnp.asarray(au), jnp.asarray(mask)))
    assert w[0] == pytest.approx(4.0) and w[1] == pytest.approx(1.0)
    assert w[2] == 1.0                      # no positive: weight 1
    # the balanced loss rewards a constant "absent" prediction no better than "present"
    b = jnp.ones(10)
    lo = masked_au_bce(jnp.full((10, 12), -3.0), jnp.asarray(au), jnp.asarray(mask), b, pos_weight=jnp.asarray(w))
    hi = masked_au_bce(jnp.full((10, 12), 3.0), jnp.asarray(au), jnp.asarray(mask), b, pos_weight=jnp.asarray(w))
    plain_lo = masked_au_bce(jnp.full((10, 12), -3.0), jnp.asarray(au), jnp.asarray(mask), b)
    assert float(lo) > float(plain_lo)


# ------------------------------------------------------------------ branch options
def test_au_node_norm_and_branch_dropout_options():
    batch = example_batch(4)
    outs = {}
    for norm in ("l2", "none"):
        m = FedPsyAU(3, au_node_norm=norm)
        v = init_variables(m, jax.random.key(0))
        _, inter = m.apply(v, batch, 0.3, train=False,
                           capture_intermediates=lambda mod, _: type(mod).__name__ == "GroupAFE")
        nodes = np.concatenate([np.asarray(inter["intermediates"][f"afe_G{i}"]["__call__"][0]) for i in range(1, 5)], 1)
        outs[norm] = np.linalg.norm(nodes, axis=-1)
    np.testing.assert_allclose(outs["l2"][outs["l2"] > 0.5], 1.0, rtol=1e-4)
    assert np.std(outs["none"]) > 1e-3       # the magnitude (how much a region moved) is kept
    with pytest.raises(ValueError, match="au_node_norm"):
        FedPsyAU(3, au_node_norm="l1").init(jax.random.key(0), batch, 0.3)
    # Without the AU branch's dropouts, only the SSE's dropout (0.1) still makes the AU
    # logits of a training step depend on the dropout key: far less than with the paper's
    # 0.5 in every DPK-GAT (twice) and AU head.
    v = init_variables(FedPsyAU(3), jax.random.key(0))

    def key_spread(model):
        run = lambda k: model.apply(v, batch, 0.3, train=True, rngs={"dropout": jax.random.key(k)},
                                    mutable=["batch_stats"])[0]
        a, b = run(1), run(2)
        return float(jnp.abs(a[1] - b[1]).mean()), float(jnp.abs(a[0] - b[0]).mean())

    fixed_au, fixed_emotion = key_spread(FedPsyAU(3, gat_dropout=0.0, au_head_dropout=0.0))
    paper_au, _ = key_spread(FedPsyAU(3))
    assert fixed_au < 0.5 * paper_au
    assert fixed_emotion > 0                                               # the DSI keeps its dropout


def test_model_options_from_config_and_old_metadata():
    assert model_options({"roi_source": "flow28", "gat_dropout": 0})["gat_dropout"] == 0.0
    old = model_options({"roi_source": "flow128"}, {"group_tokens": "reference"})
    assert old == {"group_tokens": "reference", "roi_source": "flow128", "au_node_norm": "l2",
                   "gat_dropout": 0.5, "au_head_dropout": 0.5, "architecture": "fedpsyau"}


# ------------------------------------------------------------------ pre-training plan, thresholds
def test_pretraining_plan_never_sees_test_subjects_and_shares_equal_sets():
    # subjects a*, b* have AU labels; s* (SMIC-like) have none
    subjects = np.array(["a1"] * 3 + ["a2"] * 3 + ["b1"] * 2 + ["b2"] * 4 + ["a3"] * 2 + ["s1"] * 3 + ["s2"] * 2)
    au_mask = np.ones((len(subjects), 12), np.float32)
    au_mask[np.char.startswith(subjects, "s")] = 0
    folds = loso_folds(subjects)
    plan = plan_pretraining(folds, subjects, au_mask, val_fraction=0.25, seed=0)
    for f in folds:
        pf = plan.folds[plan.of_fold[f.index]]
        stage1 = set(subjects[pf.train_idx]) | set(subjects[pf.test_idx])
        assert not stage1 & set(f.test_subjects)                      # no test subject in stage 1
        assert not set(subjects[pf.train_idx]) & set(subjects[pf.test_idx])
        assert (au_mask[pf.train_idx].sum(1) > 0).all()
        assert len(pf.test_idx) > 0
    s_folds = [f for f in folds if f.name.startswith("s")]
    assert len({plan.of_fold[f.index] for f in s_folds}) == 1          # SMIC folds share one stage 1
    assert len(plan.folds) == 5 + 1
    again = plan_pretraining(folds, subjects, au_mask, val_fraction=0.25, seed=0)
    assert [tuple(f.test_idx) for f in again.folds] == [tuple(f.test_idx) for f in plan.folds]


def test_thresholds_maximise_validation_f1():
    au = np.zeros((8, 12), np.float32)
    au[:3, 0] = 1
    prob = np.full((8, 12), 0.1, np.float32)
    prob[:3, 0] = [0.3, 0.35, 0.4]             # positives score 0.3-0.4, negatives 0.1 ...
    prob[3, 0] = 0.32                          # ... but one negative at 0.32
    mask = np.ones_like(au)
    t = choose_thresholds(au, mask, prob)
    assert t[0] == pytest.approx(0.35) or t[0] == pytest.approx(0.3)
    pred = prob[:, 0] >= t[0]
    tp = (pred & (au[:, 0] > 0)).sum()
    assert 2 * tp / (2 * tp + (pred & (au[:, 0] == 0)).sum() + (~pred & (au[:, 0] > 0)).sum()) >= 0.8
    assert t[1] == 0.5                         # no positive among the validation samples


def test_au_subject_bootstrap_interval_contains_point():
    rng = np.random.default_rng(0)
    au = (rng.random((60, 12)) < 0.3).astype(np.float32)
    prob = np.clip(au * 0.6 + rng.random((60, 12)) * 0.5, 0, 1)
    subj = np.repeat(np.arange(12), 5)
    b = au_subject_bootstrap(au, np.ones_like(au), prob, subj, n=50)
    assert b["mean_auc_ci95"][0] <= b["mean_auc"] <= b["mean_auc_ci95"][1]
    assert b["mean_auc"] > 0.8 and b["subjects"] == 12


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    """A tiny LOSO (4 subjects) with 2 epochs of in-fold AU pre-training and 2 of the
    whole model (the reference β schedule changes β every epoch), run through
    ``api.train`` while JAX's trace and compile events are recorded with the run phase
    they fall in."""
    from jax._src import dispatch, monitoring

    from fedpsyau_jax import api
    from fedpsyau_jax.config_loading import load_config

    overrides = [
        "data.kwargs.num_subjects=4",
        "data.kwargs.samples_per_subject=6",
        "train.epochs=2",
        "train.batch_size=8",
        "train.eval_batch_size=8",
        "train.beta_schedule=reference",
        "pretrain.epochs=2",
        "pretrain.val_fraction=0.34",
        "model.gat_dropout=0.0",
        "model.au_head_dropout=0.0",
        "export.final_model=none",
    ]
    cfg = load_config(str(Path(__file__).resolve().parent.parent / "configs" / "synthetic_demo.py"), overrides)
    phase, events = ["start"], []

    def listener(event, duration, **kw):
        if event in (dispatch.JAXPR_TRACE_EVENT, dispatch.BACKEND_COMPILE_EVENT):
            events.append((phase[0], event.rsplit("/", 1)[-1], str(kw.get("fun_name"))))

    def on_epoch(folds, epoch, **kw):
        if phase[0] == "start":
            phase[0] = "first fold, after its first epoch"

    def on_fold_done(fold, predictions):
        phase[0] = "after the first fold"

    wd = tmp_path_factory.mktemp("pretrained_run") / "run"
    monitoring.register_event_duration_secs_listener(listener)
    try:
        summary = api.train(
            cfg, wd, verbose=False, show_progress=False, hooks=api.RunHooks(on_epoch=on_epoch, on_fold_done=on_fold_done)
        )
    finally:
        monitoring.unregister_event_duration_listener(listener)
    return cfg, wd, summary, events


def test_a_run_traces_and_compiles_nothing_after_its_first_fold(pretrained_run):
    """One program per step kind serves every fold, epoch and β value: once the first
    fold is done nothing is traced or compiled again, and between the first epoch's
    end and the fold's end only its evaluation is new (the recompilation counter)."""
    _, _, _, events = pretrained_run
    assert [e for e in events if e[0] == "start" and "step_one" in e[2]], "the train step was not seen compiling"
    assert [e for e in events if e[0] == "after the first fold"] == []
    mid = {name for p, _, name in events if p == "first fold, after its first epoch"}
    assert not [n for n in mid if "step" in n or "init" in n], mid


def test_in_fold_pretraining_end_to_end_writes_thresholded_decisions_and_resumes(pretrained_run):
    """Stage 1 (AU labels only, inner-validation subjects held out) runs inside every
    fold through ``api.train``; each fold's predictions carry probabilities, per-AU
    thresholds in (0, 1) and the decisions they give; a second call finds nothing to do."""
    from fedpsyau_jax import api
    from fedpsyau_jax.training.run_logging import read_jsonl

    cfg, wd, summary, _ = pretrained_run
    assert {h: summary["au_detection"][h]["threshold"] for h in ("gat", "afe")} == {"gat": "per-AU", "afe": "per-AU"}
    events = read_jsonl(wd / "metrics.jsonl")
    pre = [e for e in events if e["event"] == "pretrain_epoch"]
    assert pre and {e["epoch"] for e in pre} == {1, 2}
    assert all(np.isfinite(e["loss"]) for e in pre)
    done = [e for e in events if e["event"] == "pretrain_done"]
    assert len(done) == 1
    preds = sorted(wd.glob("folds/*/predictions.npz"))
    assert len(preds) == 4
    for p in preds:
        z = np.load(p)
        for head in ("gat", "afe"):
            prob, thr, dec = z[f"au_prob_{head}"], z[f"au_threshold_{head}"], z[f"au_pred_{head}"]
            assert thr.shape == (12,) and np.all((thr > 0) & (thr < 1))
            np.testing.assert_array_equal(dec, (prob >= thr).astype(np.int8))
    n_lines = len(events)
    api.train(cfg, wd, verbose=False, show_progress=False)  # resume: all folds finished
    again = read_jsonl(wd / "metrics.jsonl")
    assert not [e for e in again[n_lines:] if e["event"] in ("pretrain_epoch", "epoch")]


def test_shared_pretraining_plan_k_models_never_see_the_fold_test_subject():
    # a*/b* carry AU labels (10 subjects), s* (SMIC-like) none
    subj_ids = [f"a{i}" for i in range(6)] + [f"b{i}" for i in range(4)] + ["s1", "s2"]
    subjects = np.repeat(np.array(subj_ids), 3)
    au_mask = np.ones((len(subjects), 12), np.float32)
    au_mask[np.char.startswith(subjects, "s")] = 0
    folds = loso_folds(subjects)
    plan = plan_pretraining(folds, subjects, au_mask, val_fraction=0.25, seed=0, subject_folds=5)
    shared = list(range(5))
    assert [len(plan.folds[j].test_subjects) for j in shared] == [2] * 5   # 10 subjects, 5 parts
    for f in folds:
        j = plan.of_fold[f.index]
        pf = plan.folds[j]
        assert not set(subjects[pf.train_idx]) & set(f.test_subjects)      # stage 1 never trains on it
        assert set(pf.train_idx) <= set(f.train_idx)
        if f.test_subjects[0].startswith(("a", "b")):
            assert j in shared                                              # every AU LOSO fold shares
            assert plan.exclude[f.index] == f.test_subjects                 # ... and drops itself from thresholds
            assert set(f.test_subjects) <= set(pf.test_subjects)
    s_folds = [f for f in folds if f.name.startswith("s")]
    assert len({plan.of_fold[f.index] for f in s_folds}) == 1 and plan.of_fold[s_folds[0].index] not in shared
    assert len(plan.folds) == 5 + 1
    # thresholds of a fold are chosen without its own test subject's rows
    from fedpsyau_jax.training.au_pretraining import thresholds_from_predictions

    f = next(f for f in folds if f.test_subjects == ("a0",))
    pf = plan.folds[plan.of_fold[f.index]]
    au = np.zeros((len(subjects), 12), np.float32)
    au[subjects == "a0", 0] = 1                      # only the test subject has AU 0 present
    pred = {"test_idx": pf.test_idx, "au_prob_gat": np.full((len(pf.test_idx), 12), 0.2, np.float32)}
    pred["au_prob_afe"] = pred["au_prob_gat"]
    keep = ~np.isin(subjects[pf.test_idx], plan.exclude[f.index])
    assert thresholds_from_predictions(pred, au, au_mask, keep)["gat"][0] == 0.5   # no positive left: 0.5
    assert thresholds_from_predictions(pred, au, au_mask)["gat"][0] != 0.5


def _shared_stage1_config(*extra: str):
    from conftest import shared_stage1_config

    return shared_stage1_config(*extra)


@SHARED_STAGE1
def test_shared_pretraining_end_to_end_trains_k_stage1_models(shared_stage1_run):
    """``pretrain.subject_folds=2``: two stage-1 models serve all five LOSO folds, every
    fold gets thresholds in (0, 1) and decisions, and the fold's test subject is one of
    its stage-1 model's held-out subjects."""
    from fedpsyau_jax.training.run_logging import read_jsonl

    _, wd, _, _ = shared_stage1_run
    assert len(list((wd / "folds").glob("*/predictions.npz"))) == 5
    stage1 = sorted(p.parent.name for p in (wd / "au_pretrain" / "folds").glob("*/predictions.npz"))
    # two shared parts, and one stage-1 model of its own for the fold whose test subject
    # has no AU labels (it is in neither part's held-out subjects)
    assert stage1 == ["000_pre000_part0", "001_pre001_part1", "002_pre002_syn_s02"]
    cfg = shared_stage1_run[0]
    from fedpsyau_jax import api

    samples = api.load_samples(cfg)
    assert samples.au_mask[np.asarray(samples.subject) == "syn_s02"].sum() == 0
    held_out = {n: set(np.load(wd / "au_pretrain" / "folds" / n / "predictions.npz")["test_idx"]) for n in stage1}
    for p in sorted((wd / "folds").glob("*/predictions.npz")):
        z = np.load(p)
        if not p.parent.name.endswith("syn_s02"):  # served by a shared part that held its subject out
            assert any(set(z["test_idx"]) <= h for n, h in held_out.items() if "_part" in n)
        for head in ("gat", "afe"):
            thr = z[f"au_threshold_{head}"]
            assert thr.shape == (12,) and np.all((thr > 0) & (thr < 1))
            np.testing.assert_array_equal(z[f"au_pred_{head}"], (z[f"au_prob_{head}"] >= thr).astype(np.int8))
    done = [e for e in read_jsonl(wd / "metrics.jsonl") if e["event"] == "pretrain_done"]
    assert done[0]["stage1_folds"] == 3


@SHARED_STAGE1
def test_stage1_alone_saves_models_that_reload_as_trained_and_train_reuses_it(shared_stage1_run):
    """``api.pretrain_au``: the stage-1 models carry the config's network options (here
    ROIs from the 28-px flow, not the default), so ``load_model`` rebuilds the network
    that was trained and reproduces the stored held-out probabilities; a later ``train``
    in the same workdir does not train stage 1 again."""
    from fedpsyau_jax import api
    from fedpsyau_jax.training.fold_training import MODEL_CHECKPOINT
    from fedpsyau_jax.training.run_logging import read_jsonl

    cfg, wd, plan, before = shared_stage1_run  # pretrain_au, then train in the same workdir
    samples = api.load_samples(cfg)
    stage1 = sorted((wd / "au_pretrain" / "folds").glob("*_pre*"))
    assert len(stage1) == len(plan.folds) == 3 and sum("_part" in d.name for d in stage1) == 2
    for d in stage1:
        z = np.load(d / "predictions.npz")
        model, v, meta = api.load_model(d / MODEL_CHECKPOINT)
        assert model.roi_source == "flow28"
        batch = {k: getattr(samples, k)[z["test_idx"]] for k in ("flow128", "flow28", "landmarks")}
        np.testing.assert_allclose(api.model_probabilities(model, v, meta, batch)[1], z["au_prob_gat"], atol=1e-5)
    epochs = sum(e["event"] == "pretrain_epoch" for e in read_jsonl(wd / "metrics.jsonl"))
    assert before > 0 and epochs == before


def test_dataset_balanced_parts_spread_every_dataset_evenly_where_random_parts_do_not():
    """``pretrain.part_balance=dataset``: a composite where one dataset has many small
    subjects and the other few large ones. Dealt at random, some parts get most of one
    dataset (the seed-0 composite had 71/15 and 4/38 CASME II/SAMM samples in two parts);
    balanced, every part's count of each dataset is within one subject of the others."""
    from fedpsyau_jax.training.au_pretraining import balanced_parts

    rng = np.random.default_rng(3)
    a = [(f"a{i}", int(n)) for i, n in enumerate(rng.integers(1, 12, 24))]   # CASME II-like
    b = [(f"b{i}", int(n)) for i, n in enumerate(rng.integers(1, 9, 28))]    # SAMM-like
    subjects = np.array([s for s, n in a + b for _ in range(n)])
    dataset = np.where(np.char.startswith(subjects, "a"), "casme2", "samm")
    au_mask = np.ones((len(subjects), 12), np.float32)
    folds = loso_folds(subjects)

    def mix(plan):
        return np.array([[(dataset[plan.folds[j].test_idx] == d).sum() for d in ("casme2", "samm")] for j in range(5)])

    spread = lambda m: (m.max(0) - m.min(0)).max()
    rand = [mix(plan_pretraining(folds, subjects, au_mask, 0.2, seed, 5)) for seed in range(5)]
    bal = [plan_pretraining(folds, subjects, au_mask, 0.2, seed, 5, strata=dataset) for seed in range(3)]
    largest = max(n for _, n in a + b)
    for plan in bal:
        m = mix(plan)
        assert spread(m) <= largest, m                      # within one subject, per dataset
        assert set(np.concatenate([plan.folds[j].test_idx for j in range(5)])) == set(range(len(subjects)))
        for f in folds:                                      # the usual roles still hold
            pf = plan.folds[plan.of_fold[f.index]]
            assert not set(subjects[pf.train_idx]) & set(f.test_subjects)
    assert max(spread(m) for m in rand) > 2 * max(spread(mix(p)) for p in bal)
    # called alone: every subject gets a part and no part stays empty
    parts = balanced_parts(subjects, dataset, 5, 0)
    assert set(parts) == {s for s, _ in a + b} and set(parts.values()) == set(range(5))


def test_part_balance_is_a_checked_name_and_old_runs_keep_their_fingerprint():
    from fedpsyau_jax.core.errors import UserError
    from fedpsyau_jax.training.fold_training import settings_fingerprint
    from fedpsyau_jax.training.settings import TrainSettings
    from fedpsyau_jax.training.preflight import check_names

    cfg = _shared_stage1_config("pretrain.part_balance=by_dataset")
    with pytest.raises(UserError, match="pretrain.part_balance"):
        check_names(cfg)
    s = TrainSettings()
    old = {"pretrain": {"epochs": 20, "subject_folds": 5}}
    assert settings_fingerprint(s, old) == settings_fingerprint(s, {"pretrain": {**old["pretrain"], "part_balance": "none"}})
    assert settings_fingerprint(s, old) != settings_fingerprint(s, {"pretrain": {**old["pretrain"], "part_balance": "dataset"}})


def test_config_part_balance_reaches_stage_1(tmp_path, monkeypatch):
    """``pretrain.part_balance=dataset`` hands every sample's source dataset to stage 1's
    plan; ``none`` (the default, and what older saved configs mean) hands nothing."""
    from fedpsyau_jax import api
    from fedpsyau_jax.training import au_pretraining

    seen = []
    plan = au_pretraining.PretrainPlan([], {})

    def fake_run(*args, strata=None, **kw):
        seen.append(strata)
        return None, {}, plan

    monkeypatch.setattr(au_pretraining, "run_pretraining", fake_run)
    for value in ("dataset", "none"):
        assert api.pretrain_au(_shared_stage1_config(f"pretrain.part_balance={value}"), tmp_path / value, False) is plan
    samples = api.load_samples(_shared_stage1_config())
    np.testing.assert_array_equal(seen[0], samples.dataset)
    assert seen[1] is None


def test_shared_pretraining_needs_more_subjects_than_parts_and_thresholds_take_any_grid():
    from fedpsyau_jax.core.errors import UserError

    subjects = np.repeat(np.array(["a", "b", "c"]), 2)
    with pytest.raises(UserError, match="pretrain.subject_folds 4: only 3 subjects carry AU labels"):
        plan_pretraining(loso_folds(subjects), subjects, np.ones((6, 12), np.float32), subject_folds=4)
    # standardised scores: positives at z >= 1, one negative at 0.5; an AU without positives gets the centre
    au = np.zeros((6, 12), np.float32)
    au[:2, 0] = 1
    z = np.full((6, 12), -1.0)
    z[:2, 0], z[2, 0] = [1.0, 1.5], 0.5
    t = choose_thresholds(au, np.ones_like(au), z, grid=np.linspace(-2, 4, 61), centre=0.0)
    assert 0.5 < t[0] <= 1.0 and t[1] == 0.0


# ------------------------------------------------------------------ calibration on held-out subjects
def test_platt_recovers_a_known_affine_map_and_keeps_identity_without_both_classes():
    from fedpsyau_jax.training.au_calibration import A_MIN, apply_platt, fit_platt, logit

    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=(4000, 12))
    true_ab = np.stack([np.linspace(0.5, 2.0, 12), np.linspace(-1.0, 1.0, 12)], 1)
    p = 1 / (1 + np.exp(-(z * true_ab[:, 0] + true_ab[:, 1])))
    y = (rng.random(p.shape) < p).astype(np.float32)
    mask = np.ones_like(y)
    # the balanced loss targets the balanced odds: equal to the true slope, and to the
    # true intercept shifted by the log prior odds of each AU
    ab = fit_platt(z, y, mask, ridge=1e-3)
    np.testing.assert_allclose(ab[:, 0], true_ab[:, 0], rtol=0.12)
    shift = np.log(y.mean(0) / (1 - y.mean(0)))
    np.testing.assert_allclose(ab[:, 1], true_ab[:, 1] - shift, atol=0.2)
    # no positive (AU 0) / no negative (AU 1) / not labelled (AU 2): identity
    y2, m2 = y.copy(), mask.copy()
    y2[:, 0], y2[:, 1], m2[:, 2] = 0, 1, 0
    ab2 = fit_platt(z, y2, m2)
    np.testing.assert_array_equal(ab2[:3], [[1, 0]] * 3)
    # a reversed relation is floored, never flips the ranking
    ab3 = fit_platt(-z, y, mask)
    assert np.all(ab3[:, 0] == np.float32(A_MIN))
    prob = 1 / (1 + np.exp(-z[:50]))
    cal = apply_platt(prob, ab)
    np.testing.assert_allclose(logit(cal), z[:50] * ab[:, 0] + ab[:, 1], rtol=1e-4, atol=1e-4)


def test_held_out_rows_au_labels_do_not_reach_the_fold_they_are_held_out_of():
    """The per-fold AU row mask of the compiled step: flipping the AU labels of the rows
    held out of fold 0 leaves fold 0's training bit-identical, and changes fold 1, which
    learns from them."""
    from fedpsyau_jax import api
    from fedpsyau_jax.config_loading import load_config
    from fedpsyau_jax.training.batching import device_data
    from fedpsyau_jax.training.fold_training import epoch_key, fold_key, get_programs

    cfg = load_config(
        str(Path(__file__).resolve().parent.parent / "configs" / "synthetic_demo.py"),
        ["data.kwargs.num_subjects=3", "data.kwargs.samples_per_subject=6", "train.batch_size=8",
         "model.gat_dropout=0.0", "model.au_head_dropout=0.0", "train.au_pos_weight=balanced"],
    )
    samples = api.load_samples(cfg)
    model = api.build_model(cfg, samples.num_classes)
    programs = get_programs(model, api.settings_from_config(cfg))
    n = len(samples)
    held = np.arange(0, n, 3)
    au_rows = np.ones((2, n), np.float32)
    au_rows[0, held] = 0.0
    rng = np.random.default_rng(0)
    idx = np.stack([rng.permutation(n)[:16].reshape(2, 8)] * 2)
    mask = np.ones(idx.shape, np.float32)

    def run(data):
        states = programs.init(jnp.stack([fold_key(0, 0)] * 2), jnp.tile(jnp.eye(12)[None], (2, 1, 1)))
        keys = jnp.stack([epoch_key(0, 0, 0)] * 2)
        states, _, _ = programs.train_epoch(
            states, data, idx, mask, np.full((2,), 0.3, np.float32), keys, au_rows=au_rows
        )
        return jax.tree.map(np.asarray, states.params)

    data = device_data(samples)
    flipped = dict(data)
    flipped["au"] = data["au"].at[held].set(1.0 - data["au"][held])
    a, b = run(data), run(flipped)
    diff = jax.tree.map(lambda x, y: np.abs(x - y).max(axis=tuple(range(1, x.ndim))), a, b)
    per_fold = np.max(np.stack(jax.tree.leaves(diff)), axis=0)
    assert per_fold[0] == 0.0 and per_fold[1] > 0.0, per_fold


def test_platt_calibration_end_to_end_holds_stage1_held_out_subjects_out_of_stage2(tmp_path):
    """``pretrain.au_calibration=platt``: each fold's calibration rows are its stage-1
    model's held-out rows minus its own test subject; the stored AU probabilities are the
    calibrated map of the raw ones, decisions are at 0.5, and the maps are in the model's
    metadata."""
    from fedpsyau_jax import api
    from fedpsyau_jax.training.au_calibration import apply_platt, fit_platt, logit
    from fedpsyau_jax.training.checkpoints import read_metadata

    cfg = _shared_stage1_config("pretrain.au_calibration=platt", "export.final_model=all_data")
    wd = tmp_path / "run"
    api.train(cfg, wd, verbose=False, show_progress=False)
    samples = api.load_samples(cfg)
    subject = np.asarray(samples.subject).astype(str)
    held_out = [set(np.load(p)["test_idx"]) for p in sorted((wd / "au_pretrain" / "folds").glob("*/predictions.npz"))]
    for d in sorted((wd / "folds").glob("*")):
        if d.name.endswith("_all"):
            continue
        z = np.load(d / "predictions.npz")
        test, cal = set(z["test_idx"]), set(z["au_holdout_idx"])
        home = next(h for h in held_out if test <= h)
        assert cal and cal == {i for i in home if subject[i] not in set(subject[list(test)])}
        for head in ("gat", "afe"):
            np.testing.assert_allclose(
                z[f"au_prob_{head}"], apply_platt(z[f"au_prob_uncal_{head}"], z[f"au_platt_{head}"]), atol=1e-6
            )
            np.testing.assert_array_equal(z[f"au_pred_{head}"], (z[f"au_prob_{head}"] >= 0.5).astype(np.int8))
            # the map is the fit on the stored held-out probabilities
            np.testing.assert_allclose(
                z[f"au_platt_{head}"],
                fit_platt(logit(z[f"au_holdout_prob_{head}"]), samples.au[z["au_holdout_idx"]],
                          samples.au_mask[z["au_holdout_idx"]]),
                rtol=1e-5, atol=1e-6,
            )
        meta = read_metadata(d, "model")
        np.testing.assert_allclose(meta["au_calibration"]["gat"], z["au_platt_gat"], rtol=1e-6)
    # the exported model applies its own maps (fitted on the all-data model's held-out rows)
    model, v, meta = api.load_model(wd)
    assert len(meta["au_calibration"]["gat"]) == 12
    batch = {k: np.asarray(getattr(samples, k))[:4] for k in ("flow128", "flow28", "landmarks")}
    _, cal = api.model_probabilities(model, v, meta, batch)
    _, raw = api.model_probabilities(model, v, {k: x for k, x in meta.items() if k != "au_calibration"}, batch)
    np.testing.assert_allclose(cal, apply_platt(raw, np.asarray(meta["au_calibration"]["gat"])), atol=1e-6)
    assert not np.allclose(cal, raw)
