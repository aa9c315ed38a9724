"""Correctness of training (issue: training that converges): padding takes part in
nothing, the paper's AU groups, β as a real traced argument, the priors and GAT
against independent definitions, loss heads, dropout rate, max-pool gradient,
partially labelled D, flip augmentation, schedules and weight decay."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedpsyau_jax import FedPsyAU, example_batch
from fedpsyau_jax.core.au_groups import GROUP_TOKEN_SETS, PAPER_GROUPS, REFERENCE_GROUPS
from fedpsyau_jax.network.gat import DPKGATLayer, PriorGraph
from fedpsyau_jax.network.hash_dropout import HashDropout
from fedpsyau_jax.core.keypoints import MIRROR_65
from fedpsyau_jax.network.max_pool import max_pool_3x3_same, max_pool_non_overlapping
from fedpsyau_jax.network.priors import A_GLOB, A_LOW, A_UP, cooccurrence_prior, reference_prior
from fedpsyau_jax.network.roi_patches import cut_patches_batch
from fedpsyau_jax.training.augmentation import flip_batch
from fedpsyau_jax.training.fold_training import class_weights
from fedpsyau_jax.training.settings import TrainSettings, lr_factor
from fedpsyau_jax.training.losses import fedpsyau_loss
from fedpsyau_jax.training.train_state import (create_train_state, make_eval_step, make_optimizer,
                                               make_train_step, weight_decay_mask)

AU = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17)


def _labelled(batch, seed):
    rng = np.random.default_rng(seed)
    b = batch["landmarks"].shape[0]
    return dict(batch, label=rng.integers(0, 3, b).astype(np.int32),
                au=(rng.random((b, 12)) < 0.4).astype(np.float32),
                au_mask=(rng.random((b, 12)) < 0.7).astype(np.float32))


# ----------------------------------------------------------------- padding leak
@pytest.fixture(scope="module")
def one_step():
    model = FedPsyAU(3)
    tx = make_optimizer(1e-3, 0.01, decay_kernels_only=True)
    step = jax.jit(make_train_step(model, tx, hflip=0.5, au_norm="examples"))
    state = create_train_state(model, tx, jax.random.key(0), batch=example_batch(2))
    return step, state


def _assert_trees_close(a, b, atol, rtol=0.0):
    for (p, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol,
                                   err_msg=jax.tree_util.keystr(p))


def test_padded_examples_take_part_in_nothing(one_step):
    step, state = one_step
    real = _labelled(example_batch(4, seed=1), 2)
    pads = [_labelled(example_batch(4, seed=s), s) for s in (10, 20)]
    # One padding is far outside the data range: it would move BN statistics a lot.
    pads[1] = {k: (v * 50.0 if v.dtype == np.float32 else v) for k, v in pads[1].items()}
    outs = []
    for pad in pads:
        b = {k: np.concatenate([real[k], pad[k]]) for k in real}
        b["example_mask"] = np.array([1, 1, 1, 1, 0, 0, 0, 0], np.float32)
        outs.append(step(state, b, jnp.float32(0.3))[0])
    alone = step(state, dict(real, example_mask=np.ones(4, np.float32)), jnp.float32(0.3))[0]
    # Whatever the padded content: the same arithmetic on the real examples.
    _assert_trees_close(outs[0].params, outs[1].params, 1e-6)
    _assert_trees_close(outs[0].opt_state, outs[1].opt_state, 1e-6)
    _assert_trees_close(outs[0].batch_stats, outs[1].batch_stats, 1e-6)
    # Against the 4 real examples alone (a batch of another shape, so sums run in another
    # order): gradients (Adam's first/second moments) and BN statistics to 1e-6 (and
    # float32 rounding, relative 1e-5, on statistics of order 1). Adam's
    # first step moves each weight by lr·g/(|g|+ε) ≈ ±lr, so a gradient within rounding
    # of zero may flip; params are compared to 1e-6 on all but such entries.
    _assert_trees_close(outs[0].opt_state, alone.opt_state, 1e-6, 1e-5)
    _assert_trees_close(outs[0].batch_stats, alone.batch_stats, 1e-6, 1e-5)
    diff = jax.tree.leaves(jax.tree.map(lambda a, b: np.asarray(jnp.abs(a - b) > 1e-6), outs[0].params,
                                        alone.params))
    assert sum(int(d.sum()) for d in diff) <= 1e-4 * sum(d.size for d in diff)
    # ... and the step did train (the comparison is not between unchanged states).
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), outs[0].batch_stats,
                                         state.batch_stats))
    assert max(moved) > 1e-3


# ----------------------------------------------------------------- AU groups
def test_group_token_lists_follow_the_paper_and_keep_the_reference():
    r = lambda a, b: list(range(a, b + 1))
    assert list(PAPER_GROUPS["G1"][1]) == r(0, 22)
    assert list(PAPER_GROUPS["G2"][1]) == r(0, 21) + r(32, 51) + r(59, 64)
    assert list(PAPER_GROUPS["G3"][1]) == r(27, 64)          # AU9, 10: nose, mouth, chin, cheeks
    assert list(PAPER_GROUPS["G4"][1]) == r(0, 51)           # AU12-17: brows, eyes, nose, mouth
    assert [PAPER_GROUPS[g][0] for g in ("G3", "G4")] == [(6, 7), (8, 9, 10, 11)]
    assert list(REFERENCE_GROUPS["G3"][1]) == r(0, 51) and list(REFERENCE_GROUPS["G4"][1]) == r(27, 64)
    assert REFERENCE_GROUPS["G1"] == PAPER_GROUPS["G1"] and REFERENCE_GROUPS["G2"] == PAPER_GROUPS["G2"]
    assert set(GROUP_TOKEN_SETS) == {"paper", "reference"}


def test_group_tokens_option_changes_the_network():
    batch = example_batch(2)
    shapes = {}
    for g in ("paper", "reference"):
        v = jax.eval_shape(lambda k: FedPsyAU(3, group_tokens=g).init({"params": k}, batch, 0.3),
                           jax.random.key(0))
        # GroupAFE's first conv reads 3·N_g channels.
        shapes[g] = (v["params"]["afe_G3"]["ConvBNReLU_0"]["Conv_0"]["kernel"].shape[2],
                     v["params"]["afe_G4"]["ConvBNReLU_0"]["Conv_0"]["kernel"].shape[2])
    assert shapes == {"paper": (3 * 38, 3 * 52), "reference": (3 * 52, 3 * 38)}
    with pytest.raises(ValueError, match="group_tokens"):
        jax.eval_shape(lambda k: FedPsyAU(3, group_tokens="x").init({"params": k}, batch, 0.3),
                       jax.random.key(0))


# ----------------------------------------------------------------- β
def test_beta_is_required():
    model = FedPsyAU(3)
    with pytest.raises(TypeError, match="beta"):
        model.init({"params": jax.random.key(0)}, example_batch(2))


def test_beta_as_the_loop_passes_it_does_not_recompile_and_changes_the_output(one_step):
    step, state = one_step
    from fedpsyau_jax.network.priors import beta_schedule
    b = dict(_labelled(example_batch(4, seed=1), 2), example_mask=np.ones(4, np.float32))
    before = step._cache_size()
    for beta in beta_schedule("reference", 5, 0.3):     # numpy float32 values, as run_folds feeds them
        state, _ = step(state, b, np.float32(beta))
    assert step._cache_size() - before <= 1
    ev = jax.jit(make_eval_step(FedPsyAU(3)))
    p0 = np.asarray(ev(state, b, np.float32(0.0))["emotion_prob"])
    p1 = np.asarray(ev(state, b, np.float32(0.9))["emotion_prob"])
    assert np.abs(p0 - p1).max() > 1e-6
    assert ev._cache_size() == 1


# ----------------------------------------------------------------- GAT, independently
def _dense_gat(h, w, a_recv, a_send, adj, d, beta):
    """Eq. 3–5 written densely: [f_i ‖ f_j], mask, row softmax, prior mix, ELU, residual,
    heads concatenated. h (n, F), w (F, H·F'), a_* (H, F'), adj, d (n, n)."""
    n = h.shape[0]
    heads, fo = a_recv.shape
    f = (h @ w).reshape(n, heads, fo)
    dt = d * adj
    dt = dt / dt.sum(1, keepdims=True)
    out = []
    for k in range(heads):
        fk = f[:, k]
        a = np.concatenate([a_recv[k], a_send[k]])
        pair = np.concatenate([np.repeat(fk[:, None], n, 1), np.repeat(fk[None], n, 0)], -1)  # [f_i‖f_j]
        e = pair @ a
        e = np.where(e > 0, e, 0.2 * e)
        e = np.where(adj > 0, e, -np.inf)
        s = np.exp(e - e.max(1, keepdims=True))
        s = s / s.sum(1, keepdims=True)
        alpha = (1 - beta) * s + beta * dt
        agg = alpha @ fk
        out.append(np.where(agg > 0, agg, np.expm1(agg)) + fk)
    return np.concatenate(out, -1)


@pytest.mark.parametrize("beta", [0.0, 0.3])
def test_gat_layer_equals_a_dense_implementation(beta):
    graph = PriorGraph.from_adjacency(A_GLOB)
    layer = DPKGATLayer(graph, features=8, heads=3)
    h = jax.random.normal(jax.random.key(0), (12, 25))
    d = reference_prior()
    d_edges = graph.edge_prior(jnp.asarray(d))
    v = layer.init(jax.random.key(1), h, d_edges, beta)
    out, _ = layer.apply(v, h, d_edges, beta)
    p = jax.tree.map(np.asarray, v["params"])
    want = _dense_gat(np.asarray(h, np.float64), p["W"], p["a_recv"], p["a_send"], A_GLOB, d, beta)
    np.testing.assert_allclose(np.asarray(out), want, atol=2e-5)


# ----------------------------------------------------------------- psychological adjacency A
def _symmetric_adjacency(aus, pairs):
    m = np.eye(len(aus))
    for p, q in pairs:
        m[aus.index(p), aus.index(q)] = m[aus.index(q), aus.index(p)] = 1
    return m


def test_adjacency_matrices_equal_the_listed_au_pairs():
    up = [1, 2, 4, 5, 6, 7]
    low = [9, 10, 12, 14, 15, 17]
    np.testing.assert_array_equal(A_UP, _symmetric_adjacency(up, [(1, 2), (1, 4), (1, 5), (2, 4), (2, 5), (6, 7)]))
    np.testing.assert_array_equal(A_LOW, _symmetric_adjacency(low, [(9, 10), (12, 14), (15, 17)]))
    cross = {1: (12, 14, 15), 2: (12, 14, 15, 17), 4: (9, 10, 14, 15, 17), 5: (12,), 6: (9, 12, 14),
             7: (9, 10, 12, 14, 15, 17), 9: (2, 4, 6, 7), 10: (4, 7), 12: (1, 2, 5, 6, 7),
             14: (1, 2, 4, 6, 7), 15: (1, 2, 4, 7), 17: (2, 4, 7)}
    g = np.eye(12)
    for row, cols in cross.items():
        for c in cols:
            g[AU.index(row), AU.index(c)] = 1
    np.testing.assert_array_equal(A_GLOB, g)


# ----------------------------------------------------------------- loss heads
def test_loss_weights_reach_their_own_heads():
    rng = np.random.default_rng(0)
    batch = {"label": np.array([0, 1, 2, 1], np.int32), "au": (rng.random((4, 12)) < 0.5).astype(np.float32),
             "au_mask": np.ones((4, 12), np.float32)}
    emo = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    gat = jnp.asarray(rng.normal(size=(4, 12)), jnp.float32)
    afe = jnp.asarray(rng.normal(size=(4, 12)) * 3, jnp.float32)
    alpha = (0.2, 0.5, 0.9)                                   # α2 (head A = AFE) ≠ α3 (head B = GAT)
    total, parts = fedpsyau_loss((emo, gat, afe), batch, alpha=alpha)
    bce = lambda z: float(jnp.mean(jnp.logaddexp(0, z) - batch["au"] * z))
    assert float(parts["bce_afe"]) == pytest.approx(bce(afe), rel=1e-5)
    assert float(parts["bce_gat"]) == pytest.approx(bce(gat), rel=1e-5)
    want = 0.2 * float(parts["ce"]) + 0.5 * bce(afe) + 0.9 * bce(gat)
    assert float(total) == pytest.approx(want, rel=1e-5)
    swapped, _ = fedpsyau_loss((emo, afe, gat), batch, alpha=alpha)
    assert abs(float(swapped) - want) > 1e-3


def test_au_loss_norm_examples_weighs_each_labelled_sample_alike():
    b = {"label": np.zeros(4, np.int32), "au": np.ones((4, 12), np.float32),
         "au_mask": np.array([[1.0] * 12, [0.0] * 12, [0.0] * 12, [0.0] * 12], np.float32)}
    z = jnp.zeros((4, 12))
    out = (jnp.zeros((4, 3)), z, z)
    _, ex = fedpsyau_loss(out, b, au_norm="examples")
    _, kn = fedpsyau_loss(out, b, au_norm="known_entries")
    assert float(kn["bce_afe"]) == pytest.approx(np.log(2), rel=1e-6)          # one sample = whole weight
    assert float(ex["bce_afe"]) == pytest.approx(np.log(2) / 4, rel=1e-6)      # one of four samples


# ----------------------------------------------------------------- dropout, max-pool
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_hash_dropout_keep_rate_and_scaling(rate):
    x = jnp.ones((512, 1024))
    y = np.asarray(HashDropout(rate).apply({}, x, rngs={"dropout": jax.random.key(3)}))
    kept = y != 0
    assert abs(kept.mean() - (1 - rate)) < 0.003                       # 524k draws: sd < 0.0007
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)


def test_max_pool_gradients_equal_flax_max_pool():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    x = x.at[0, 2, 2, 0].set(x[0, 2, 3, 0])                        # a tie: the first position wins
    ct = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
    ours = jax.grad(lambda x: jnp.sum(max_pool_3x3_same(x) * ct))(x)
    ref = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (3, 3), (1, 1), "SAME") * ct))(x)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=1e-6)
    ct2 = ct[:, :4, :4]
    ours = jax.grad(lambda x: jnp.sum(max_pool_non_overlapping(x, 2) * ct2))(x)
    ref = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), (2, 2), "VALID") * ct2))(x)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=1e-6)


# ----------------------------------------------------------------- D with partial labels
def test_cooccurrence_uses_pairwise_masks():
    rng = np.random.default_rng(0)
    au = (rng.random((40, 12)) < 0.35).astype(np.float32)
    full = cooccurrence_prior(au)
    # The same samples again with AU12 (node 8) unknown: a pairwise estimate is unchanged
    # (every rate is estimated on the same evidence, doubled), a naive count is not.
    mask = np.ones((80, 12), np.float32)
    mask[40:, 8] = 0
    au2 = np.concatenate([au, au])
    au2_marked = au2.copy()
    au2_marked[40:, 8] = 1.0                                   # garbage under the mask is ignored
    np.testing.assert_allclose(cooccurrence_prior(au2_marked, mask), full, atol=1e-6)
    naive = au2 * mask
    counts = naive.T @ naive
    naive_d = counts / counts.sum(1, keepdims=True)
    assert np.abs(naive_d - full).max() > 1e-3


# ----------------------------------------------------------------- flip augmentation
def test_flip_twice_is_identity_and_mirrors_rois():
    b = example_batch(3, seed=4)
    flip = jnp.array([True, False, True])
    once = flip_batch(b, flip)
    twice = flip_batch(once, flip)
    for k in ("flow128", "flow28", "landmarks"):
        np.testing.assert_allclose(np.asarray(twice[k]), b[k], atol=1e-5)
    np.testing.assert_array_equal(np.asarray(once["flow128"][1]), b["flow128"][1])   # unflipped sample
    # ROI patches of the flipped sample = mirrored (and u ↦ 1−u) patches of the permuted points.
    p_flip = np.asarray(cut_patches_batch(once["flow128"], once["landmarks"]))[0]
    p_orig = np.asarray(cut_patches_batch(jnp.asarray(b["flow128"]), jnp.asarray(b["landmarks"])))[0]
    mirrored = p_orig[MIRROR_65][:, :, ::-1, :].copy()
    mirrored[..., 0] = 1.0 - mirrored[..., 0]
    np.testing.assert_allclose(p_flip, mirrored, atol=1e-6)
    # Token 0 (right brow, outer end) is again the leftmost brow point after the flip.
    assert float(once["landmarks"][0, 0, 0]) == pytest.approx(127 - float(b["landmarks"][0, MIRROR_65[0], 0]))


# ----------------------------------------------------------------- recipe pieces
def test_warmup_cosine_schedule_and_per_fold_progress():
    s = TrainSettings(epochs=10, learning_rate=1e-3, lr_schedule="warmup_cosine", warmup_epochs=1.0)
    f = lr_factor(s, np.array([0.0, 0.05, 0.1, 0.55, 0.999]))
    assert 0 < f[0] < f[1] < 1 and f[2] == pytest.approx(1.0)
    assert f[3] == pytest.approx(0.5, abs=1e-6) and f[4] < 1e-4
    live = np.array([[True] * 4, [True, True, False, False]])
    lrs = s.learning_rates(0, live)
    assert lrs.shape == (2, 4) and lrs[1, 1] == pytest.approx(lrs[0, 2])  # same progress, own steps
    assert TrainSettings(epochs=3).learning_rates(1, live).max() == pytest.approx(5e-5)


def test_weight_decay_only_on_kernels():
    v = jax.eval_shape(lambda k: FedPsyAU(3).init({"params": k}, example_batch(2), 0.3), jax.random.key(0))
    flat = jax.tree_util.tree_flatten_with_path(weight_decay_mask(v["params"]))[0]
    decayed = {jax.tree_util.keystr(p) for p, m in flat if m}
    kept = {jax.tree_util.keystr(p) for p, m in flat if not m}
    assert all(k.endswith(("['kernel']", "['W']")) for k in decayed) and len(decayed) > 40
    assert any("pos_embedding" in k for k in kept) and any("a_recv" in k for k in kept)
    assert any(k.endswith("['scale']") for k in kept) and any(k.endswith("['bias']") for k in kept)


def test_class_weights_balance_the_classes():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    w = class_weights(labels, np.arange(10), 3)
    counts = np.bincount(labels)
    np.testing.assert_allclose(w * counts, [10 / 3] * 3, rtol=1e-6)


def test_an_all_padding_step_is_a_finite_no_op(one_step):
    step, state = one_step
    pad = dict(_labelled(example_batch(4, seed=5), 6), example_mask=np.zeros(4, np.float32))
    new, metrics = step(state, pad, jnp.float32(0.3))
    assert all(np.isfinite(float(v)) for v in metrics.values())     # reported losses stay finite
    _assert_trees_close(new.params, state.params, 0.0)
    _assert_trees_close(new.batch_stats, state.batch_stats, 0.0)
