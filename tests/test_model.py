"""The whole FED-PsyAU network: shapes, parameter count, batch independence,
β as a traced argument (no recompiles), and gradients reaching every parameter."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedpsyau_jax import FedPsyAU, count_params, example_batch
from fedpsyau_jax.network.model import init_variables
from fedpsyau_jax.network.roi_patches import cut_patches
from fedpsyau_jax.training.train_state import create_train_state, make_loss_fn, make_optimizer


@pytest.mark.parametrize("classes", [3, 7])
def test_shapes_and_parameter_count(classes):
    model = FedPsyAU(classes)
    batch = example_batch(5)
    variables = jax.eval_shape(lambda k: model.init({"params": k, "dropout": k}, batch, beta=0.3),
                               jax.random.key(0))
    out = jax.eval_shape(lambda v: model.apply(v, batch, beta=0.3, train=False), variables)
    assert [o.shape for o in out] == [(5, classes), (5, 12), (5, 12)]
    n = count_params(variables["params"])
    print(f"FedPsyAU({classes} classes): {n:,} parameters")
    if classes == 7:
        assert 3_700_000 <= n <= 4_000_000
    assert variables["priors"]["D"].shape == (12, 12)
    assert set(variables) == {"params", "batch_stats", "priors"}


def test_flow_only_baseline_has_no_au_outputs():
    model = FedPsyAU(3, use_au_branch=False)
    batch = example_batch(2)
    v = jax.eval_shape(lambda k: model.init({"params": k}, batch, 0.3), jax.random.key(0))
    out = jax.eval_shape(lambda v: model.apply(v, batch, 0.3, train=False), v)
    assert out[0].shape == (2, 3) and out[1] is None and out[2] is None
    assert "lfe" not in v["params"]


@pytest.fixture(scope="module")
def trained_variables():
    """Variables after one train-mode pass so BN running stats are non-trivial."""
    model = FedPsyAU(7)
    v = init_variables(model, jax.random.key(0), batch=example_batch(4))
    _, upd = jax.jit(lambda v, b: model.apply(v, b, beta=0.3, train=True, rngs={"dropout": jax.random.key(1)},
                                              mutable=["batch_stats"]))(v, example_batch(8, seed=3))
    return model, dict(v, batch_stats=upd["batch_stats"])


def test_batch_independence_in_eval_mode(trained_variables):
    model, v = trained_variables
    apply = jax.jit(lambda v, b: model.apply(v, b, beta=0.3, train=False))
    big = example_batch(8, seed=11)
    alone = {k: x[:1] for k, x in big.items()}
    out_big = apply(v, big)
    out_alone = apply(v, alone)
    for a, b in zip(out_alone, out_big):
        np.testing.assert_allclose(np.asarray(a[0]), np.asarray(b[0]), atol=1e-5)
    # A different rest-of-batch must not change sample 0 either.
    other = {k: np.concatenate([x[:1], example_batch(7, seed=99)[k]]) for k, x in big.items()}
    np.testing.assert_allclose(np.asarray(apply(v, other)[0][0]), np.asarray(out_big[0][0]), atol=1e-5)


def test_roi_patches_use_row_equal_y():
    flow = jnp.arange(128 * 128 * 3, dtype=jnp.float32).reshape(128, 128, 3)
    lm = jnp.array([[100.0, 20.0], [1.0, 126.0]])                 # (x, y)
    p = np.asarray(cut_patches(flow, lm))
    np.testing.assert_array_equal(p[0], np.asarray(flow[18:23, 98:103]))
    # Border: shifted inside the image, not padded.
    np.testing.assert_array_equal(p[1], np.asarray(flow[123:128, 0:5]))


@pytest.fixture(scope="module")
def step_with_grads():
    """One jitted step that returns the new state and the gradients; counts traces."""
    model = FedPsyAU(3)
    tx = make_optimizer(1e-3)
    loss_fn = make_loss_fn(model)
    traces = {"n": 0}

    @jax.jit
    def step(state, batch, beta):
        traces["n"] += 1
        (loss, (parts, bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state, batch, beta, jax.random.key(3))
        updates, opt = tx.update(grads, state.opt_state, state.params)
        import optax
        new = state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt, batch_stats=bs)
        return new, loss, grads

    rng = np.random.default_rng(0)
    batch = example_batch(4)
    batch.update(label=np.array([0, 1, 2, 1], np.int32), au=(rng.random((4, 12)) < 0.4).astype(np.float32),
                 au_mask=np.ones((4, 12), np.float32))
    state = create_train_state(model, tx, jax.random.key(0), batch=example_batch(4))
    return step, state, batch, traces


def test_changing_beta_does_not_recompile(step_with_grads):
    step, state, batch, traces = step_with_grads
    before = traces["n"]
    for beta in (0.3, 0.2, 0.0, 0.05):
        state, loss, _ = step(state, batch, jnp.float32(beta))
        assert np.isfinite(float(loss))
    assert traces["n"] - before <= 1


def test_every_parameter_gets_finite_nonzero_gradient(step_with_grads):
    step, state, batch, _ = step_with_grads
    _, _, grads = step(state, batch, jnp.float32(0.3))
    flat = jax.tree_util.tree_flatten_with_path(grads)[0]
    assert len(flat) > 50
    bad = [jax.tree_util.keystr(p) for p, g in flat
           if not np.all(np.isfinite(np.asarray(g))) or not np.any(np.asarray(g) != 0)]
    assert not bad, f"parameters without a finite non-zero gradient: {bad}"
