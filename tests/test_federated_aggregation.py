"""Pure-pytree tests of the federated server side (no network, fast)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedpsyau_jax.federated import ClientUpload, make_algorithm, make_upload, stack_states, unstack_states
from fedpsyau_jax.federated.aggregation import fedavg_params, mixing_matrix, pfedprox_mix
from fedpsyau_jax.federated.algorithms.fedrep import head_mask
from fedpsyau_jax.federated.client_stack import broadcast_state, group_ids
from fedpsyau_jax.federated.partitions import partition_clients
from fedpsyau_jax.federated.server_round import make_communicate
from fedpsyau_jax.federated.splits import client_split
from fedpsyau_jax.training.train_state import TrainState


def _tree(rng, c):
    """A hand-made model-shaped pytree with C rows (heads and body, BN stats)."""
    return {
        "params": {"lfe": {"kernel": rng.normal(size=(c, 3, 3, 2)).astype(np.float32)},
                   "dsi": {"classifier": {"kernel": rng.normal(size=(c, 4, 3)).astype(np.float32),
                                          "bias": rng.normal(size=(c, 3)).astype(np.float32)},
                           "flow_dense": {"bias": rng.normal(size=(c, 5)).astype(np.float32)}},
                   "au_head_afe": {"Dense_0": {"bias": rng.normal(size=(c, 2)).astype(np.float32)}}},
        "batch_stats": {"lfe": {"mean": rng.normal(size=(c, 2)).astype(np.float32),
                                "var": rng.random((c, 2)).astype(np.float32) + 0.5}},
    }


def _state(t, c, seed=0):
    return TrainState(params=jax.tree.map(jnp.asarray, t["params"]),
                      batch_stats=jax.tree.map(jnp.asarray, t["batch_stats"]),
                      priors={"D": jnp.broadcast_to(jnp.eye(12), (c, 12, 12))},
                      opt_state=jnp.zeros((c, 1)), step=jnp.zeros((c,), jnp.int32),
                      key=jax.random.split(jax.random.key(seed), c))


def test_pfedprox_mixing_equals_eq6_unequal_sizes():
    rng = np.random.default_rng(0)
    t = _tree(rng, 3)
    n = np.array([10.0, 30.0, 60.0], np.float32)
    theta = 0.9
    mixed = pfedprox_mix(t["params"], jnp.asarray(n), jnp.zeros(3, jnp.int32), 1, theta)
    # eq. 6 written out literally, client by client
    for i in range(3):
        others = [j for j in range(3) if j != i]
        denom = sum(n[k] for k in others)
        for leaf_m, leaf_w in zip(jax.tree.leaves(mixed), jax.tree.leaves(t["params"])):
            expect = theta * leaf_w[i] + sum((1 - theta) * n[j] / denom * leaf_w[j] for j in others)
            np.testing.assert_allclose(leaf_m[i], expect, rtol=1e-5, atol=1e-6)
    # the explicit matrix: rows sum to 1, diagonal θ, off-diagonal ∝ n_j
    m = np.asarray(mixing_matrix(n, theta))
    np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.diag(m), theta)
    np.testing.assert_allclose(m[0, 1] / m[0, 2], 30 / 60, rtol=1e-6)
    w = t["params"]["lfe"]["kernel"]
    np.testing.assert_allclose(mixed["lfe"]["kernel"], np.einsum("ij,j...->i...", m, w), rtol=1e-5, atol=1e-6)


def test_pfedprox_single_client_keeps_own():
    t = _tree(np.random.default_rng(1), 1)
    mixed = pfedprox_mix(t["params"], jnp.ones(1), jnp.zeros(1, jnp.int32), 1, 0.9)
    for a, b in zip(jax.tree.leaves(mixed), jax.tree.leaves(t["params"])):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("algo", ["fedavg", "pfedprox", "fedrep"])
def test_grouped_aggregation_equals_per_group(algo):
    """Seeds stacked on the client axis aggregate exactly as separate federations."""
    rng = np.random.default_rng(2)
    g, k = 3, 4
    t = _tree(rng, g * k)
    n = rng.integers(5, 50, g * k).astype(np.float32)
    a = make_algorithm(algo)
    up = ClientUpload(params=t["params"], batch_stats=t["batch_stats"], num_samples=jnp.asarray(n))
    together = jax.jit(a.aggregate, static_argnums=2)(up, jnp.asarray(group_ids(g, k)), g)
    for s in range(g):
        sl = slice(s * k, (s + 1) * k)
        part = ClientUpload(params=jax.tree.map(lambda x: x[sl], t["params"]),
                            batch_stats=jax.tree.map(lambda x: x[sl], t["batch_stats"]),
                            num_samples=jnp.asarray(n[sl]))
        alone = a.aggregate(part, jnp.zeros(k, jnp.int32), 1)
        for x, y in zip(jax.tree.leaves(together), jax.tree.leaves(alone)):
            np.testing.assert_allclose(np.asarray(x)[sl], y, rtol=1e-5, atol=1e-6)


def test_fedavg_weighted_mean():
    t = _tree(np.random.default_rng(3), 3)
    n = jnp.asarray([1.0, 2.0, 5.0])
    up = ClientUpload(params=t["params"], batch_stats=t["batch_stats"], num_samples=n)
    p, bs = fedavg_params(up, jnp.zeros(3, jnp.int32), 1)
    w = t["params"]["lfe"]["kernel"]
    expect = (1 * w[0] + 2 * w[1] + 5 * w[2]) / 8
    for i in range(3):
        np.testing.assert_allclose(p["lfe"]["kernel"][i], expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bs["lfe"]["mean"][0], (t["batch_stats"]["lfe"]["mean"] *
                                                      np.array([1, 2, 5])[:, None]).sum(0) / 8, rtol=1e-5)


def test_pfedprox_keeps_batch_stats_local_and_fedavg_shares_them():
    t = _tree(np.random.default_rng(4), 3)
    st = _state(t, 3)
    n = jnp.asarray([3.0, 4.0, 5.0])
    g = jnp.zeros(3, jnp.int32)
    new, anchors = make_communicate(make_algorithm("pfedprox", theta=0.9), 1)(st, n, g)
    for a, b in zip(jax.tree.leaves(new.batch_stats), jax.tree.leaves(t["batch_stats"])):
        np.testing.assert_array_equal(a, b)                       # BN untouched
    assert not np.allclose(new.params["lfe"]["kernel"], t["params"]["lfe"]["kernel"])  # params mixed
    for a, b in zip(jax.tree.leaves(anchors), jax.tree.leaves(new.params)):
        np.testing.assert_array_equal(a, b)                       # prox anchor = own start point
    st = _state(t, 3)
    new, _ = make_communicate(make_algorithm("fedavg"), 1)(st, n, g)
    m = np.asarray(new.batch_stats["lfe"]["mean"])
    np.testing.assert_allclose(m[0], m[2], rtol=1e-6)            # FedAvg averages BN stats


def test_fedrep_heads_stay_personal_body_shared():
    t = _tree(np.random.default_rng(5), 3)
    mask = head_mask(t["params"])
    assert mask["dsi"]["classifier"]["kernel"] and mask["au_head_afe"]["Dense_0"]["bias"]
    assert not mask["lfe"]["kernel"] and not mask["dsi"]["flow_dense"]["bias"]
    up = ClientUpload(params=t["params"], batch_stats=t["batch_stats"], num_samples=jnp.ones(3))
    msg = make_algorithm("fedrep").aggregate(up, jnp.zeros(3, jnp.int32), 1)
    np.testing.assert_array_equal(msg.params["dsi"]["classifier"]["kernel"],
                                  t["params"]["dsi"]["classifier"]["kernel"])
    body = np.asarray(msg.params["lfe"]["kernel"])
    np.testing.assert_allclose(body[0], t["params"]["lfe"]["kernel"].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(body[1], body[0])


def test_local_does_not_communicate():
    t = _tree(np.random.default_rng(6), 2)
    st = _state(t, 2)
    new, anchors = make_communicate(make_algorithm("local"), 1)(st, jnp.ones(2), jnp.zeros(2, jnp.int32))
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(t["params"])):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------- upload boundary
def test_upload_has_only_params_stats_and_counts():
    assert [f.name for f in dataclasses.fields(ClientUpload)] == ["params", "batch_stats", "num_samples"]
    with pytest.raises(TypeError):
        ClientUpload(params={}, batch_stats={}, num_samples=1.0, data=np.zeros((10, 128, 128, 3)))
    up = ClientUpload(params={}, batch_stats={}, num_samples=jnp.ones(2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        up.params = {"flow128": np.zeros(3)}


def test_aggregate_inputs_contain_no_data_sized_leaf():
    """Trace every algorithm's aggregate and record its inputs: params/BN/counts only."""
    t = _tree(np.random.default_rng(7), 3)
    st = _state(t, 3)
    upload = make_upload(st, jnp.asarray([4.0, 5.0, 6.0]))
    param_shapes = {np.shape(x) for x in jax.tree.leaves((t["params"], t["batch_stats"]))}
    for name in ("local", "fedavg", "fedprox", "pfedprox", "fedrep"):
        seen = []
        algo = make_algorithm(name)

        def spy(up, groups, g, algo=algo):
            assert isinstance(up, ClientUpload)
            seen.extend(jax.tree.leaves((up, groups)))
            return algo.aggregate(up, groups, g)

        jax.eval_shape(lambda u, gr: spy(u, gr, 1), upload, jnp.zeros(3, jnp.int32))
        shapes = {tuple(x.shape) for x in seen}
        assert shapes <= param_shapes | {(3,)}, shapes
        assert all(s[1:] not in {(128, 128, 3), (28, 28, 3), (65, 2), (12, 12)} for s in shapes)
    # the TrainState's data prior D and optimiser state are not part of the upload
    assert not any(np.shape(x) == (3, 12, 12) for x in jax.tree.leaves(upload))


# --------------------------------------------------------------- stacking, partitions, splits
def test_stack_unstack_roundtrip_and_broadcast():
    rng = np.random.default_rng(8)
    states = [{"a": rng.normal(size=(2, 3)), "b": {"c": rng.normal(size=4)}} for _ in range(3)]
    st = stack_states(states)
    assert st["a"].shape == (3, 2, 3)
    back = unstack_states(st)
    for x, y in zip(back, states):
        np.testing.assert_allclose(x["b"]["c"], y["b"]["c"])
    assert broadcast_state(states[0], 4)["a"].shape == (4, 2, 3)
    with pytest.raises(ValueError):
        stack_states([states[0], {"a": 1}])


class _Fake:
    def __init__(self, subjects, datasets):
        self.subject = np.asarray(subjects)
        self.dataset = np.asarray(datasets)


def test_partitions():
    subj = np.repeat([f"s{i}" for i in range(7)], 3)
    ds = np.array(["casme2"] * 9 + ["samm"] * 6 + ["smic"] * 6)
    f = _Fake(subj, ds)
    eq = partition_clients(f, "equal_subjects", 3, seed=1)
    sizes = [len(np.unique(subj[i])) for _, i in eq]
    assert sorted(sizes) == [2, 2, 3]
    assert sum(len(i) for _, i in eq) == len(subj)
    owners = {}
    for k, (_, i) in enumerate(eq):
        for s in np.unique(subj[i]):
            assert owners.setdefault(s, k) == k               # a subject never spans clients
    by = partition_clients(f, "by_dataset")
    assert [n for n, _ in by] == ["casme2", "samm", "smic"] and [len(i) for _, i in by] == [9, 6, 6]
    mp = partition_clients(f, "mapping", mapping={"casme2": "A", "samm": "B", "smic": "B"})
    assert [(n, len(i)) for n, i in mp] == [("A", 9), ("B", 12)]
    with pytest.raises(ValueError, match="not mapped"):
        partition_clients(f, "mapping", mapping={"casme2": "A"})
    with pytest.raises(ValueError, match="unknown partition"):
        partition_clients(f, "nope")


def test_splits_random_and_subject():
    idx = np.arange(20, 40)
    subj = np.repeat([f"s{i}" for i in range(10)], 6)
    tr, te = client_split(idx, subj, "random", seed=3, client=1)
    assert len(tr) == 14 and len(te) == 6 and not set(tr) & set(te)
    tr2, _ = client_split(idx, subj, "random", seed=4, client=1)
    assert not np.array_equal(tr, tr2)                        # seeds redraw the split
    tr, te = client_split(np.arange(60), subj, "subject", seed=3, client=0)
    assert not set(subj[tr]) & set(subj[te]) and len(set(subj[tr])) == 7


def test_fedprox_anchor_is_this_rounds_fedavg_mean_and_moves_every_round():
    rng = np.random.default_rng(7)
    n = jnp.asarray([2.0, 3.0, 7.0])
    g = jnp.zeros(3, jnp.int32)
    comm = make_communicate(make_algorithm("fedprox", mu=0.1), 1)
    anchors_seen = []
    for rnd in range(2):
        t = _tree(rng, 3)                                 # clients' params after local training
        st = _state(t, 3)
        new, anchors = comm(st, n, g)
        want = jax.tree.map(lambda w: jnp.einsum("c,c...->...", n, w) / n.sum(), t["params"])
        for a, w in zip(jax.tree.leaves(anchors), jax.tree.leaves(want)):
            for i in range(3):                            # every client's anchor = the weighted mean
                np.testing.assert_allclose(np.asarray(a[i]), np.asarray(w), rtol=1e-5, atol=1e-6)
        for a, p in zip(jax.tree.leaves(anchors), jax.tree.leaves(new.params)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(p))   # and the start point
        anchors_seen.append(np.asarray(anchors["lfe"]["kernel"][0]))
    # A frozen anchor (the reference's bug) would repeat round 1's mean.
    assert np.abs(anchors_seen[1] - anchors_seen[0]).max() > 1e-3


def test_proximal_weight_reaches_the_local_loss():
    from fedpsyau_jax import FedPsyAU, create_train_state, example_batch, make_optimizer, make_train_step
    from fedpsyau_jax.training.losses import proximal_term
    model = FedPsyAU(3, use_au_branch=False)
    tx = make_optimizer(1e-3)
    state = create_train_state(model, tx, jax.random.key(0), batch=example_batch(2))
    anchor = jax.tree.map(lambda w: w + 0.05, state.params)          # 0.05 away in every weight
    step = jax.jit(make_train_step(model, tx, extra_penalty=lambda p, aux: proximal_term(p, aux[0], aux[1])))
    b = dict(example_batch(4, seed=1), label=np.array([0, 1, 2, 0], np.int32),
             au=np.zeros((4, 12), np.float32), au_mask=np.zeros((4, 12), np.float32))
    _, m0 = step(state, b, jnp.float32(0.3), (anchor, jnp.float32(0.0)))
    _, m1 = step(state, b, jnp.float32(0.3), (anchor, jnp.float32(2.0)))
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    expect = 0.5 * 2.0 * n_params * 0.05 ** 2
    assert float(m1["penalty"]) == pytest.approx(expect, rel=1e-3)
    assert float(m1["loss"]) - float(m0["loss"]) == pytest.approx(expect, rel=1e-3)


def test_reset_optimizer_gives_fresh_adam_state_at_the_current_params():
    import optax
    from fedpsyau_jax.federated.runner import reset_optimizer_states
    tx = optax.adamw(1e-3)
    params = {"w": jnp.arange(6.0).reshape(2, 3)}                       # 2 rows
    st = jax.vmap(tx.init)(params)
    grads = {"w": jnp.ones((2, 3))}
    _, st = jax.vmap(tx.update)(grads, st, params)                      # moments now non-zero
    states = TrainState(params=params, batch_stats={}, priors={}, opt_state=st,
                        step=jnp.zeros(2, jnp.int32), key=jnp.zeros((2, 2), jnp.uint32))
    kept = [np.asarray(x) for x in jax.tree.leaves(states.opt_state)]
    assert any(np.abs(x).max() > 0 for x in kept)
    fresh = reset_optimizer_states(tx, states)
    want = jax.vmap(tx.init)(params)
    for a, b in zip(jax.tree.leaves(fresh.opt_state), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(fresh.params["w"]), np.asarray(params["w"]))
