"""The FL variant with the AU branch frozen: nothing of it is sent, received or trained."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fedpsyau_jax.federated import make_algorithm, make_upload
from fedpsyau_jax.federated.algorithms.frozen import freeze_au_branch, frozen_optimizer, is_au_branch
from test_federated_aggregation import _state, _tree


@pytest.mark.parametrize("algo", ["fedavg", "pfedprox", "fedrep"])
def test_frozen_au_branch_is_not_uploaded_and_stays_own(algo):
    st = _state(_tree(np.random.default_rng(0), 3), 3)
    n = jnp.asarray([1.0, 2.0, 3.0])
    g = jnp.zeros(3, jnp.int32)
    frozen = freeze_au_branch(make_algorithm(algo, theta=0.9))
    up = make_upload(st, n, frozen)
    sent = jax.tree_util.tree_flatten_with_path(up.params)[0]
    assert sent and not any(is_au_branch(p) for p, _ in sent)          # lfe never leaves
    new, _ = frozen.communicate(st, n, g, 1)
    np.testing.assert_array_equal(new.params["lfe"]["kernel"], st.params["lfe"]["kernel"])
    # the emotion branch is aggregated exactly as without freezing
    plain, _ = make_algorithm(algo, theta=0.9).communicate(st, n, g, 1)
    np.testing.assert_allclose(new.params["dsi"]["flow_dense"]["bias"],
                               plain.params["dsi"]["flow_dense"]["bias"], rtol=1e-6)
    # ... and without freezing the AU branch would have moved
    assert not np.allclose(plain.params["lfe"]["kernel"], st.params["lfe"]["kernel"])


def test_frozen_optimizer_gives_the_au_branch_zero_updates():
    params = {"lfe": {"kernel": jnp.ones((2, 2))}, "dsi": {"classifier": {"kernel": jnp.ones((2, 2))}}}
    tx = frozen_optimizer(optax.adamw(0.1))
    grads = jax.tree.map(jnp.ones_like, params)
    upd, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_array_equal(upd["lfe"]["kernel"], 0.0)
    assert np.all(np.asarray(upd["dsi"]["classifier"]["kernel"]) != 0.0)
