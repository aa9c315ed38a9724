"""Mirror averaging at test time (``training.flip_averaging``, ``inference.apply_fn``)."""

import jax
import numpy as np
import pytest

from fedpsyau_jax import FedPsyAU, example_batch
from fedpsyau_jax.inference import apply_fn as _apply_fn
from fedpsyau_jax.network.model import init_variables
from fedpsyau_jax.training.flip_averaging import mirror


@pytest.fixture(scope="module")
def model_and_variables():
    model = FedPsyAU(3, roi_source="flow28", gat_dropout=0.0, au_head_dropout=0.0)
    v = init_variables(model, jax.random.key(0), batch=example_batch(4))
    # one train-mode pass so BatchNorm's running statistics are not the identity
    _, upd = jax.jit(lambda v, b: model.apply(v, b, beta=0.3, train=True, rngs={"dropout": jax.random.key(1)},
                                              mutable=["batch_stats"]))(v, example_batch(8, seed=3))
    return model, dict(v, batch_stats=upd["batch_stats"])


def test_mirror_is_an_involution():
    b = example_batch(3, seed=5)
    twice = mirror(mirror(b))
    for k in b:
        np.testing.assert_allclose(np.asarray(twice[k]), b[k], atol=1e-4)  # 127 − (127 − x) rounds
    assert not np.allclose(np.asarray(mirror(b)["flow28"]), b["flow28"])


def test_flip_averaged_outputs_are_the_mean_logits_and_mirror_invariant(model_and_variables):
    model, v = model_and_variables
    plain, tta = _apply_fn(model, 0.3), _apply_fn(model, 0.3, flip_tta=True)
    b = example_batch(4, seed=7)
    mb = {k: np.asarray(x) for k, x in mirror(b).items()}
    out_p, out_m, out_t, out_tm = plain(v, b), plain(v, mb), tta(v, b), tta(v, mb)
    for p, m, t, tm in zip(out_p, out_m, out_t, out_tm):
        # the plain model does see which orientation it gets (else the test proves nothing)
        assert np.max(np.abs(np.asarray(p) - np.asarray(m))) > 1e-3
        np.testing.assert_allclose(np.asarray(t), 0.5 * (np.asarray(p) + np.asarray(m)), atol=1e-5)
        np.testing.assert_allclose(np.asarray(t), np.asarray(tm), atol=1e-5)


def test_eval_step_with_eval_flip_is_mirror_invariant(model_and_variables):
    """The training programs' eval step (``train.eval_flip``) gives a sample and its
    mirror the same outputs; without it they differ."""
    from fedpsyau_jax.training.train_state import TrainState, make_eval_step

    model, v = model_and_variables
    state = TrainState(params=v["params"], batch_stats=v["batch_stats"], priors=v["priors"], opt_state=None,
                       step=jax.numpy.zeros((), jax.numpy.int32), key=jax.random.key(0))
    b = example_batch(3, seed=9)
    mb = {k: np.asarray(x) for k, x in mirror(b).items()}
    for flip, same in ((True, True), (False, False)):
        step = jax.jit(make_eval_step(model, flip_tta=flip))
        o, om = step(state, b, 0.3), step(state, mb, 0.3)
        for k in ("emotion_prob", "au_prob_gat", "au_prob_afe"):
            close = np.allclose(np.asarray(o[k]), np.asarray(om[k]), atol=1e-5)
            assert close == same, (flip, k)
