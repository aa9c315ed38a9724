"""Client-level DP in the stacked simulator: the release, clipping, noise, sampling, ε."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("dp_accounting")

from fedpsyau_jax.federated import make_algorithm, make_upload  # noqa: E402
from fedpsyau_jax.federated.dp_aggregation import upload_tree  # noqa: E402
from fedpsyau_jax.federated.dp_runner import _release, _start_points
from fedpsyau_jax.federated.rounds import run_dp_federation  # noqa: E402
from fedpsyau_jax.federated.privacy import DPSettings, epsilon_after_rounds, global_norm  # noqa: E402
from fedpsyau_jax.federated.runner import plan_rows  # noqa: E402
from fedpsyau_jax.federated.settings import fl_settings
from test_federated_aggregation import _state, _tree  # noqa: E402
from test_federated_training import env  # noqa: E402,F401  (the small flow-only federation)

ALGOS = ("fedavg", "fedprox", "fedrep", "pfedprox")


def _setup(algo, c=3, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    st = _state(_tree(rng, c), c)
    algorithm = make_algorithm(algo, mu=0.01, theta=0.9)
    ref_rows = _tree(np.random.default_rng(seed + 100), 1)           # R: one model, all rows
    ref_state = _state(jax.tree.map(lambda x: np.repeat(x, c, 0), ref_rows), c)
    # clients = R + scale·noise, so the update sizes are controlled by ``scale``
    st = st.replace(params=jax.tree.map(lambda r, x: r + scale * x, ref_state.params, st.params),
                    batch_stats=jax.tree.map(lambda r, x: r + scale * x, ref_state.batch_stats,
                                             st.batch_stats))
    reference = upload_tree(make_upload(ref_state, jnp.ones(c), algorithm))
    return algorithm, st, reference


def _release_of(algorithm, st, reference, p, clip, z, m, key=0):
    g = jnp.zeros(st.step.shape[0], jnp.int32)
    return _release(algorithm, 1)(st, reference, jnp.asarray(p, jnp.float32), jax.random.key(key),
                                  g, clip, z, m)


@pytest.mark.parametrize("algo", ALGOS)
def test_without_noise_or_clipping_the_release_is_the_algorithm_with_equal_weights(algo):
    algorithm, st, reference = _setup(algo)
    ones = jnp.ones(3, jnp.float32)
    release, contrib, _ = _release_of(algorithm, st, reference, ones, 1e9, 0.0, 3.0)
    dp_states, dp_anchor = _start_points(algorithm)(st, st.params, ones, ones, release, contrib, 3.0)
    plain, plain_anchor = algorithm.communicate(st, ones, jnp.zeros(3, jnp.int32), 1)
    for a, b in zip(jax.tree.leaves(dp_states.params), jax.tree.leaves(plain.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(dp_states.batch_stats), jax.tree.leaves(plain.batch_stats)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(dp_anchor), jax.tree.leaves(plain_anchor)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("algo", ("fedavg", "pfedprox"))
def test_clipping_bounds_every_update_and_the_release_moves_at_most_c(algo):
    algorithm, st, reference = _setup(algo, c=4, scale=3.0)
    clip = 0.5
    release, contrib, norms = _release_of(algorithm, st, reference, np.ones(4), clip, 0.0, 4.0)
    assert np.all(np.asarray(norms) > clip)                 # every update really was too big
    diff = jax.tree.map(jnp.subtract, contrib, reference)
    per_row = jax.vmap(global_norm)(diff)
    np.testing.assert_array_less(np.asarray(per_row), clip * (1 + 1e-5))
    np.testing.assert_allclose(per_row, clip, rtol=1e-4)     # scaled to C, not zeroed
    move = jax.vmap(global_norm)(jax.tree.map(jnp.subtract, release, reference))
    np.testing.assert_array_less(np.asarray(move), clip * (1 + 1e-5))
    # a small update passes unchanged
    algorithm, st, reference = _setup(algo, c=4, scale=1e-3)
    _, contrib, norms = _release_of(algorithm, st, reference, np.ones(4), clip, 0.0, 4.0)
    up = upload_tree(make_upload(st, jnp.ones(4), algorithm))
    for a, b in zip(jax.tree.leaves(contrib), jax.tree.leaves(up)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_noise_on_the_release_has_std_zc_over_m_and_groups_draw_independently():
    algorithm = make_algorithm("fedavg")
    c, big = 4, 20_000
    st = _state({"params": {"w": np.zeros((c, big), np.float32)},
                 "batch_stats": {"m": np.zeros((c, 1), np.float32)}}, c)
    reference = upload_tree(make_upload(st, jnp.ones(c), algorithm))
    groups = jnp.asarray([0, 0, 1, 1], jnp.int32)
    z, clip, m = 1.5, 2.0, 2.0
    release, _, _ = _release(algorithm, 2)(st, reference, jnp.ones(c), jax.random.key(3), groups,
                                           clip, z, m)
    w = np.asarray(release["params"]["w"])
    np.testing.assert_allclose(w[0].std(), z * clip / m, rtol=0.03)
    np.testing.assert_allclose(w[2].std(), z * clip / m, rtol=0.03)
    np.testing.assert_array_equal(w[0], w[1])                # one release per group
    assert abs(np.corrcoef(w[0], w[2])[0, 1]) < 0.05         # independent across groups


def test_pfedprox_takes_out_its_own_clipped_contribution():
    algorithm, st, reference = _setup("pfedprox", c=2, scale=3.0)
    ones = jnp.ones(2, jnp.float32)
    release, contrib, _ = _release_of(algorithm, st, reference, ones, 0.5, 0.0, 2.0)
    new, _ = _start_points(algorithm)(st, st.params, ones, ones, release, contrib, 2.0)
    for w_new, w_own, c in zip(jax.tree.leaves(new.params), jax.tree.leaves(st.params),
                               jax.tree.leaves(contrib["params"])):
        # client 0 mixes its own (unclipped) model with client 1's clipped contribution
        np.testing.assert_allclose(w_new[0], 0.9 * w_own[0] + 0.1 * c[1], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(w_new[1], 0.9 * w_own[1] + 0.1 * c[0], rtol=1e-5, atol=1e-5)


def test_clients_not_sampled_are_left_untouched():
    algorithm, st, reference = _setup("fedavg", c=3)
    p = jnp.asarray([1.0, 0.0, 1.0])
    release, contrib, _ = _release_of(algorithm, st, reference, p, 1e9, 0.0, 2.0)
    new, anchors = _start_points(algorithm)(st, st.params, p, p, release, contrib, 2.0)
    for a, b, r in zip(jax.tree.leaves(new.params), jax.tree.leaves(st.params),
                       jax.tree.leaves(release["params"])):
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_allclose(a[0], r[0], rtol=1e-6)
    # only the sampled rows are in the sum: R' = R + (Δ_0 + Δ_2) / m
    up = upload_tree(make_upload(st, jnp.ones(3), algorithm))
    for r_new, r_old, u in zip(jax.tree.leaves(release), jax.tree.leaves(reference), jax.tree.leaves(up)):
        expect = r_old[0] + ((u[0] - r_old[0]) + (u[2] - r_old[2])) / 2.0
        np.testing.assert_allclose(r_new[0], expect, rtol=1e-5, atol=1e-5)


def test_fixed_size_accounting_counts_the_replace_one_sensitivity_2c():
    # K of K without replacement under replace-one is the Gaussian mechanism with
    # sensitivity 2C: the same ε as every client under add/remove with z/2.
    fixed = DPSettings(clip_norm=1.0, noise_multiplier=2.0, sampling="fixed", per_round=10, num_clients=10)
    all_half = DPSettings(clip_norm=1.0, noise_multiplier=1.0, sampling="all")
    assert epsilon_after_rounds(fixed, 20) == pytest.approx(epsilon_after_rounds(all_half, 20), rel=1e-3)
    some = DPSettings(clip_norm=1.0, noise_multiplier=2.0, sampling="fixed", per_round=2, num_clients=10)
    assert epsilon_after_rounds(some, 20) < epsilon_after_rounds(fixed, 20)
    clip_only = DPSettings(clip_norm=1.0, noise_multiplier=0.0, allow_no_noise=True)
    assert epsilon_after_rounds(clip_only, 3) == float("inf")


def _run(env, tmp_path, trainer=None, algo="pfedprox"):
    s = fl_settings(rounds=3, local_epochs=1, batch_size=4, eval_batch_size=8, oversample=False,
                      checkpoint_every=1)
    rows = plan_rows(env["samples"], env["clients"], (0,), "random", s)
    dp = DPSettings(clip_norm=1.0, noise_multiplier=0.8, sampling="fixed", per_round=2)
    return run_dp_federation(trainer=trainer or env["trainer"], algorithm=make_algorithm(algo),
                             model=env["model"], tx=env["tx"], samples=env["samples"],
                             data=env["data"], rows=rows, settings=s, dp=dp, workdir=tmp_path,
                             progress=False)


def test_dp_run_records_epsilon_and_sampling_and_resumes(env, tmp_path):
    full = _run(env, tmp_path / "full")
    expect = [epsilon_after_rounds(DPSettings(clip_norm=1.0, noise_multiplier=0.8, sampling="fixed",
                                              per_round=2, num_clients=3), r) for r in (1, 2, 3)]
    np.testing.assert_allclose(full["epsilon_per_round"], expect, rtol=1e-9)
    assert full["participants_per_round"] == [2, 2, 2]
    losses = np.asarray(full["loss_per_round"], np.float64)
    assert (np.isnan(losses).sum(axis=1) == 1).all()          # one client sat out each round
    # a run killed after two rounds resumes from its checkpoint and ends the same
    calls = {"n": 0}
    real = env["trainer"]

    def train_then_die(*a):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real.train(*a)
    with pytest.raises(KeyboardInterrupt):
        _run(env, tmp_path / "cut", trainer=real.__class__(train=train_then_die, evaluate=real.evaluate,
                                                            init_states=real.init_states))
    resumed = _run(env, tmp_path / "cut")
    assert resumed["epsilon_per_round"] == full["epsilon_per_round"]
    np.testing.assert_allclose(np.asarray(resumed["loss_per_round"], np.float64), losses, rtol=1e-5)
    assert [d["uf1"] for d in resumed["deployed"]] == [d["uf1"] for d in full["deployed"]]


@pytest.mark.parametrize("algo", ("fedavg", "pfedprox"))
def test_release_from_the_sampled_rows_alone_equals_the_release_over_all_rows(algo):
    # The runner hands the server only the sampled rows (plus padding copies that do not
    # participate). With noise on, R' and every sampled contribution must be those of
    # the mechanism over all rows: the noise cannot depend on which rows came along.
    from fedpsyau_jax.federated.dp_aggregation import apply_step
    from fedpsyau_jax.federated.dp_runner import _step_of_rows, _take
    algorithm, st, reference = _setup(algo, c=6, scale=2.0)
    p = np.array([0, 1, 0, 0, 1, 0], np.float32)
    groups = jnp.asarray([0, 0, 0, 1, 1, 1], jnp.int32)
    key = jax.random.key(7)
    full, contrib, norms = _release(algorithm, 2)(st, reference, jnp.asarray(p), key, groups,
                                                  0.7, 1.3, 2.0)
    sub = np.array([1, 4, 1, 1])                          # the sampled rows, padded to 4
    live = jnp.asarray([1, 1, 0, 0], jnp.float32)
    step, c_sub, n_sub = _step_of_rows(algorithm, 2)(_take(st, sub), _take(reference, sub), live,
                                                     key, groups[jnp.asarray(sub)], 0.7, 1.3, 2.0)
    released = apply_step(reference, step, groups)
    for a, b in zip(jax.tree.leaves(released), jax.tree.leaves(full)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(c_sub), jax.tree.leaves(contrib)):
        np.testing.assert_allclose(a[:2], b[np.array([1, 4])], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(n_sub)[:2], np.asarray(norms)[[1, 4]], rtol=1e-5)
    # and the noise really is there (z = 1.3): R' differs from the noiseless release
    quiet, _, _ = _release(algorithm, 2)(st, reference, jnp.asarray(p), key, groups, 0.7, 0.0, 2.0)
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree.leaves(released), jax.tree.leaves(quiet))) > 0.1
