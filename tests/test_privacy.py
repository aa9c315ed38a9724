"""Client-level DP: clipping bounds every update, the noise has the stated scale, and
the accountant behaves as DP accounting must (federated/privacy.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedpsyau_jax.federated.privacy import (DPSettings, PrivacyError, clip_rows, epsilon_after_rounds,
                                            global_norm, noisy_sum)


def _updates(c=6, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    scale = jnp.linspace(0.1, 5.0, c)                       # some below, some above the bound
    return {"a": jax.random.normal(k1, (c, 7, 3)) * scale[:, None, None],
            "b": {"w": jax.random.normal(k2, (c, 11)) * scale[:, None]}}


def test_clipping_bounds_every_update_and_keeps_small_ones():
    u = _updates()
    clipped, norms = clip_rows(u, 2.0)
    after = jax.vmap(global_norm)(clipped)
    assert np.all(np.asarray(after) <= 2.0 + 1e-5)
    small = np.asarray(norms) <= 2.0
    assert small.any() and (~small).any()
    for leaf_c, leaf_u in zip(jax.tree.leaves(clipped), jax.tree.leaves(u)):
        np.testing.assert_allclose(np.asarray(leaf_c)[small], np.asarray(leaf_u)[small], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(after)[~small], 2.0, rtol=1e-5)   # big ones land on the bound


def test_noisy_sum_is_the_participants_sum_plus_noise_of_scale_zc():
    u = _updates(c=4)
    part = jnp.array([1.0, 0.0, 1.0, 1.0])
    exact = jax.tree.map(lambda x: jnp.sum(x * part.reshape((-1,) + (1,) * (x.ndim - 1)), 0), u)
    np.testing.assert_allclose(np.asarray(noisy_sum(u, part, jax.random.key(1), 0.0, 1.0)["a"]),
                               np.asarray(exact["a"]), rtol=1e-6)
    big = {"x": jnp.zeros((3, 200_000))}
    noise = np.asarray(noisy_sum(big, jnp.ones(3), jax.random.key(2), 1.5, 0.4)["x"])
    assert noise.std() == pytest.approx(1.5 * 0.4, rel=0.01)


def test_accountant_monotone_and_refuses_what_it_cannot_account():
    base = DPSettings(clip_norm=1.0, noise_multiplier=1.0, delta=1e-5, sampling="poisson", rate=0.1)
    e10, e50 = epsilon_after_rounds(base, 10), epsilon_after_rounds(base, 50)
    assert 0 < e10 < e50
    more_noise = DPSettings(1.0, 2.0, 1e-5, "poisson", 0.1)
    assert epsilon_after_rounds(more_noise, 50) < e50
    every_round = DPSettings(1.0, 1.0, 1e-5, "all")
    assert epsilon_after_rounds(every_round, 10) > e10               # sampling amplifies privacy
    fixed = DPSettings(1.0, 1.0, 1e-5, "fixed", per_round=7, num_clients=68)
    assert 0 < epsilon_after_rounds(fixed, 10) < epsilon_after_rounds(every_round, 10)
    assert epsilon_after_rounds(base, 0) == 0.0
    with pytest.raises(PrivacyError, match="infinite"):
        epsilon_after_rounds(DPSettings(1.0, 0.0), 5)
    with pytest.raises(PrivacyError, match="rate"):
        epsilon_after_rounds(DPSettings(1.0, 1.0, 1e-5, "poisson", rate=1.5), 5)
    with pytest.raises(PrivacyError, match="per_round"):
        epsilon_after_rounds(DPSettings(1.0, 1.0, 1e-5, "fixed", per_round=0, num_clients=5), 5)


def test_gaussian_mechanism_epsilon_matches_the_analytic_bound():
    # One release of the Gaussian mechanism with sensitivity 1 and σ = z: the classical
    # bound σ = sqrt(2 ln(1.25/δ)) / ε gives ε ≤ sqrt(2 ln(1.25/δ)) / z (for ε < 1);
    # RDP is tighter than that but of the same order.
    z, delta = 5.0, 1e-5
    eps = epsilon_after_rounds(DPSettings(1.0, z, delta, "all"), 1)
    classic = np.sqrt(2 * np.log(1.25 / delta)) / z
    assert 0.3 * classic < eps <= classic * 1.05


def test_per_subject_partition_makes_one_client_per_person():
    from data_pipelines.synthetic import make_synthetic
    from fedpsyau_jax.federated.partitions import partition_clients
    s = make_synthetic(num_subjects=5, samples_per_subject=3, seed=0)
    clients = partition_clients(s, "per_subject")
    assert len(clients) == 5
    for name, idx in clients:
        assert set(np.asarray(s.subject)[idx]) == {name} and len(idx) == 3
    assert sorted(np.concatenate([i for _, i in clients]).tolist()) == list(range(15))
