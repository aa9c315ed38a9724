"""Federated local training on a real (small) network: vmap, resume, sharding.

The flow-stream-only FedPsyAU (``use_au_branch=False``) keeps compiles short; the
machinery under test (stacked states, padded plans, masks, aggregation, checkpoints)
is the same for the full network, which tests/test_federated_configs.py runs.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from data_pipelines.synthetic import make_synthetic
from fedpsyau_jax.training.batching import device_data, gather_batch
from fedpsyau_jax.federated import make_algorithm
from fedpsyau_jax.federated.client_stack import take_clients
from fedpsyau_jax.federated.local_training import make_local_trainer
from fedpsyau_jax.federated.partitions import partition_clients
from fedpsyau_jax.federated.rounds import run_federation
from fedpsyau_jax.federated.runner import init_row_states, plan_rows, round_plans
from fedpsyau_jax.federated.settings import fl_settings
from fedpsyau_jax.network.model import FedPsyAU
from fedpsyau_jax.training.train_state import make_train_step

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = fl_settings(rounds=3, local_epochs=1, batch_size=4, eval_batch_size=8,
                         oversample=False, checkpoint_every=1)


@pytest.fixture(scope="module")
def env():
    samples = make_synthetic(num_subjects=6, samples_per_subject=4, seed=1)
    model = FedPsyAU(3, use_au_branch=False)
    # SGD with momentum, not AdamW: conv biases feeding a BatchNorm have an exactly zero
    # true gradient, and Adam rescales their float noise (~1e-9) to ±lr per step, so
    # vmapped and single-client runs would differ by ~lr on those leaves for reasons
    # unrelated to the federated machinery this file tests.
    tx = optax.sgd(0.05, momentum=0.9)
    clients = partition_clients(samples, "equal_subjects", 3, seed=0)
    # unequal client sizes: drop samples from client 0 so its plan has padded steps
    clients[0] = (clients[0][0], clients[0][1][:5])
    return {"samples": samples, "model": model, "tx": tx, "data": device_data(samples),
            "clients": clients, "trainer": make_local_trainer(model, tx, mode="step")}


def _copy(tree):
    return jax.tree.map(jnp.array, tree)


def _close(a, b, atol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-5)


def test_vmapped_clients_equal_separate_runs(env):
    rows = plan_rows(env["samples"], env["clients"], [0], "random", SETTINGS)
    states0 = init_row_states(env["model"], env["tx"], rows, env["trainer"])
    idx, mask, _ = round_plans(rows, env["samples"].label, 0, SETTINGS)
    assert mask[0].sum() < mask[1].sum()                      # client 0 is padded
    betas = np.full(idx.shape[1], 0.1, np.float32)
    tr = env["trainer"]
    together, mean_loss, _ = tr.train(_copy(states0), _copy(states0.params), 0.05, env["data"],
                                      idx, mask, betas)
    for c in range(3):
        one = take_clients(states0, [c])
        alone, ml, _ = tr.train(_copy(one), _copy(one.params), 0.05, env["data"],
                                idx[c:c + 1], mask[c:c + 1], betas)
        _close(take_clients(together, [c]).params, alone.params)
        _close(take_clients(together, [c]).batch_stats, alone.batch_stats)
        np.testing.assert_allclose(mean_loss[c], ml[0], rtol=1e-5)
    # clients really trained (and differently)
    assert not np.allclose(together.params["flow_only"]["classifier"]["kernel"][0],
                           states0.params["flow_only"]["classifier"]["kernel"][0])


def test_fedavg_with_one_client_equals_local_training(env):
    one_client = [env["clients"][1]]
    settings = fl_settings(rounds=2, local_epochs=1, batch_size=4, eval_batch_size=8,
                             oversample=False, checkpoint_every=0)
    rows = plan_rows(env["samples"], one_client, [3], "random", settings)
    res = run_federation(trainer=env["trainer"], algorithm=make_algorithm("fedavg"),
                         model=env["model"], tx=env["tx"], samples=env["samples"], data=env["data"],
                         rows=rows, settings=settings, progress=False)
    # the same plans run through a plain jitted train step, no federation machinery
    state = jax.tree.map(lambda x: x[0], init_row_states(env["model"], env["tx"], rows, env["trainer"]))
    step = jax.jit(make_train_step(env["model"], env["tx"]))
    from fedpsyau_jax.network.priors import beta_schedule
    betas = beta_schedule(settings.train.beta_schedule, 2, settings.train.beta0)
    losses = []
    for rnd in range(2):
        idx, mask, _ = round_plans(rows, env["samples"].label, rnd, settings)
        ls = []
        for t in range(idx.shape[1]):
            state, m = step(state, gather_batch(env["data"], jnp.asarray(idx[0, t]), jnp.asarray(mask[0, t])),
                            betas[rnd])
            if mask[0, t].sum():
                ls.append(float(m["loss"]))
        losses.append(np.mean(ls))
    np.testing.assert_allclose(np.asarray(res["loss_per_round"])[:, 0], losses, rtol=1e-5)
    ev = env["trainer"].evaluate(jax.tree.map(lambda x: x[None], state), env["data"],
                                 *[np.asarray(a)[None] for a in _eval_plan(rows.test_idx[0])],
                                 betas[-1])[0]
    n = len(rows.test_idx[0])
    pred = np.asarray(ev).reshape(-1)[:n]
    from fedpsyau_jax.training.metrics import classification_scores
    assert res["deployed"][0]["uf1"] == pytest.approx(
        classification_scores(env["samples"].label[rows.test_idx[0]], pred, 3)["uf1"])


def _eval_plan(test_idx):
    from fedpsyau_jax.training.batching import eval_plan
    return eval_plan(test_idx, 8)


def test_resume_mid_run_gives_same_result(env, tmp_path):
    rows = plan_rows(env["samples"], env["clients"], [0], "random", SETTINGS)
    kw = dict(algorithm=make_algorithm("pfedprox", mu=0.05, theta=0.9), model=env["model"],
              tx=env["tx"], samples=env["samples"], data=env["data"], rows=rows,
              settings=SETTINGS, progress=False)
    full = run_federation(trainer=env["trainer"], **kw)

    calls = {"n": 0}
    real = env["trainer"]

    class Interrupt(Exception):
        pass

    def train_then_die(*a):
        calls["n"] += 1
        if calls["n"] == 3:                       # die during round 3 (after round 2's checkpoint)
            raise Interrupt
        return real.train(*a)

    flaky = type(real)(train=train_then_die, evaluate=real.evaluate)
    with pytest.raises(Interrupt):
        run_federation(trainer=flaky, workdir=tmp_path, **kw)
    assert (tmp_path / "checkpoints" / "round_0002").is_dir()
    resumed = run_federation(trainer=real, workdir=tmp_path, **kw)
    np.testing.assert_allclose(resumed["loss_per_round"], full["loss_per_round"], rtol=1e-5)
    for a, b in zip(resumed["deployed"], full["deployed"]):
        assert a["confusion"] == b["confusion"]


def test_scan_mode_equals_step_mode(env):
    rows = plan_rows(env["samples"], env["clients"], [0], "random", SETTINGS)
    states0 = init_row_states(env["model"], env["tx"], rows, env["trainer"])
    idx, mask, _ = round_plans(rows, env["samples"].label, 1, SETTINGS)
    betas = np.linspace(0.3, 0.0, idx.shape[1]).astype(np.float32)
    scan = make_local_trainer(env["model"], env["tx"], mode="scan")
    a, la, _ = scan.train(_copy(states0), _copy(states0.params), 0.05, env["data"], idx, mask, betas)
    b, lb, _ = env["trainer"].train(_copy(states0), _copy(states0.params), 0.05, env["data"], idx, mask, betas)
    _close(a.params, b.params)
    np.testing.assert_allclose(la, lb, rtol=1e-5)


def test_sharded_clients_equal_unsharded():
    """4 host devices (XLA flag must precede the jax import: hence a subprocess)."""
    code = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        assert len(jax.devices()) == 4, jax.devices()
        from data_pipelines.synthetic import make_synthetic
        from fedpsyau_jax.training.batching import device_data
        from fedpsyau_jax.federated.local_training import make_local_trainer, client_mesh, shard_clients, replicate
        from fedpsyau_jax.federated.partitions import partition_clients
        from fedpsyau_jax.federated.runner import init_row_states, plan_rows, round_plans
        from fedpsyau_jax.federated.settings import fl_settings
        from fedpsyau_jax.network.model import FedPsyAU
        s = make_synthetic(num_subjects=4, samples_per_subject=4, seed=2)
        import optax
        model, tx = FedPsyAU(3, use_au_branch=False), optax.sgd(0.05, momentum=0.9)
        st = fl_settings(batch_size=4, oversample=False)
        rows = plan_rows(s, partition_clients(s, "equal_subjects", 2), [0, 1], "random", st)
        tr = make_local_trainer(model, tx, mode="step")
        states0 = init_row_states(model, tx, rows, tr)
        idx, mask, _ = round_plans(rows, s.label, 0, st)
        betas = np.full(idx.shape[1], 0.2, np.float32)
        data = device_data(s)
        cp = lambda t: jax.tree.map(jnp.array, t)
        a, la, _ = tr.train(cp(states0), cp(states0.params), 0.05, data, idx, mask, betas)
        mesh = client_mesh(4)
        sh = lambda t: shard_clients(cp(t), mesh)
        tr = make_local_trainer(model, tx, mode="step", mesh=mesh)
        b, lb, _ = tr.train(sh(states0), sh(states0.params), 0.05, replicate(data, mesh),
                            shard_clients(jnp.asarray(idx), mesh), shard_clients(jnp.asarray(mask), mesh), betas)
        leaf = b.params["flow_only"]["classifier"]["kernel"]
        assert len(leaf.sharding.device_set) == 4, leaf.sharding
        for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(la), np.asarray(lb), rtol=1e-5)
        ei = shard_clients(jnp.asarray(idx[:, :2]), mesh)
        pa = make_local_trainer(model, tx, mode="step").evaluate(a, data, idx[:, :2], mask[:, :2])[1]
        pb = tr.evaluate(b, replicate(data, mesh), ei, shard_clients(jnp.asarray(mask[:, :2]), mesh))[1]
        np.testing.assert_allclose(np.asarray(pa), np.asarray(pb), atol=1e-5)
        print("SHARDED_OK")
    """)
    _on_four_devices(code, "SHARDED_OK")


def _on_four_devices(code: str, marker: str) -> None:
    """Run ``code`` in a fresh interpreter with 4 host devices; it must print ``marker``."""
    # the suite's XLA flags (conftest: compile optimisation level) plus 4 host devices
    flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env_vars = dict(os.environ, XLA_FLAGS=flags,
                    PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env_vars,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0 and marker in out.stdout, out.stdout[-2000:] + out.stderr[-4000:]


def test_fedavg_and_pfedprox_after_real_local_training_of_unequal_clients(env):
    """End to end on trained states (3 clients of 5, 8, 8 samples): FedAvg's broadcast is
    the n-weighted mean of every param and BN statistic; P-FedProx (θ = 0.9) gives each
    client its own eq. 6 start point, different from the FedAvg mean, and keeps BN local."""
    from fedpsyau_jax.federated.aggregation import mixing_matrix
    from fedpsyau_jax.federated.server_round import make_communicate
    rows = plan_rows(env["samples"], env["clients"], [0], "random", SETTINGS)
    states0 = init_row_states(env["model"], env["tx"], rows, env["trainer"])
    idx, mask, _ = round_plans(rows, env["samples"].label, 0, SETTINGS)
    betas = np.full(idx.shape[1], 0.2, np.float32)
    trained, _, _ = env["trainer"].train(_copy(states0), _copy(states0.params), 0.0, env["data"], idx, mask, betas)
    n = np.asarray(rows.num_samples, np.float64)
    assert len(set(n.tolist())) > 1                                   # really unequal sizes
    g = jnp.zeros(len(n), jnp.int32)
    host = lambda t: jax.tree.map(lambda x: np.asarray(x, np.float64), t)
    p_tr, bs_tr = host(trained.params), host(trained.batch_stats)
    avg, _ = make_communicate(make_algorithm("fedavg"), 1)(_copy(trained), jnp.asarray(n, jnp.float32), g)
    mean = lambda t: jax.tree.map(lambda x: np.einsum("c,c...->...", n, x) / n.sum(), t)
    for got, want in ((avg.params, mean(p_tr)), (avg.batch_stats, mean(bs_tr))):
        for a, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            for i in range(len(n)):
                np.testing.assert_allclose(np.asarray(a[i]), w, rtol=1e-4, atol=1e-6)
    pf, _ = make_communicate(make_algorithm("pfedprox", theta=0.9), 1)(_copy(trained), jnp.asarray(n, jnp.float32), g)
    m = np.asarray(mixing_matrix(n, 0.9), np.float64)
    for a, w, fa in zip(jax.tree.leaves(pf.params), jax.tree.leaves(p_tr), jax.tree.leaves(avg.params)):
        np.testing.assert_allclose(np.asarray(a), np.einsum("ij,j...->i...", m, w), rtol=1e-4, atol=1e-6)
    k = np.asarray(pf.params["flow_only"]["classifier"]["kernel"])
    fa = np.asarray(avg.params["flow_only"]["classifier"]["kernel"])
    assert np.abs(k[0] - k[1]).max() > 1e-6 and np.abs(k[0] - fa[0]).max() > 1e-6
    for a, b in zip(jax.tree.leaves(pf.batch_stats), jax.tree.leaves(trained.batch_stats)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))      # BN statistics stay local


def test_round_lrs_follow_one_schedule_over_the_whole_run():
    from fedpsyau_jax.federated.runner import round_lrs
    s = fl_settings(rounds=4, local_epochs=2, learning_rate=1e-3, lr_schedule="warmup_cosine",
                      warmup_epochs=1.0, min_lr_ratio=0.1)
    mask = np.zeros((2, 2 * 3, 4), np.float32)
    mask[0, :, :] = 1.0                        # row 0: 3 live steps per local epoch
    mask[1, [0, 3], :] = 1.0                   # row 1: 1 live step per local epoch
    first = round_lrs(s, 0, mask, 3)
    assert 0 < first[0, 0] < first[0, 1] < first[0, 2] <= 1e-3       # warm-up inside epoch 0
    assert first[0, 3] == pytest.approx(1e-3, rel=1e-6)               # peak at the start of epoch 1
    assert first[1, 1] == 0.0 and first[1, 3] == pytest.approx(1e-3, rel=1e-6)  # padding: 0
    last = round_lrs(s, 3, mask, 3)
    assert last[0, 5] < last[0, 3] < 2e-4 and last[0, 5] >= 1e-4      # decays towards 0.1·lr
    assert round_lrs(fl_settings(), 0, mask, 3) is None             # no schedule: rate in tx


def test_rate_as_a_step_argument_equals_the_rate_in_the_optimiser(env):
    """The recipe path (tx with lr 1, each step's rate passed in) trains exactly like
    the optimiser that carries the rate, and class weights of one row enter its loss."""
    settings = fl_settings(rounds=2, local_epochs=1, batch_size=4, eval_batch_size=8,
                             oversample=False, checkpoint_every=0)
    rows = plan_rows(env["samples"], env["clients"], [0], "random", settings)
    kw = dict(algorithm=make_algorithm("fedavg"), model=env["model"], samples=env["samples"],
              data=env["data"], rows=rows, progress=False)
    plain = run_federation(trainer=env["trainer"], tx=env["tx"], settings=settings, **kw)
    tx1 = optax.sgd(1.0, momentum=0.9)
    trainer1 = make_local_trainer(env["model"], tx1, mode="step")
    import dataclasses
    stepped = run_federation(trainer=trainer1, tx=tx1, settings=dataclasses.replace(
        settings, train=dataclasses.replace(settings.train, learning_rate=0.05)),
                             **kw)
    np.testing.assert_allclose(stepped["loss_per_round"], plain["loss_per_round"], rtol=1e-4)
    weighted = run_federation(trainer=trainer1, tx=tx1, settings=dataclasses.replace(
        settings, train=dataclasses.replace(settings.train, learning_rate=0.05, class_balance="weighted_ce")), **kw)
    assert not np.allclose(weighted["loss_per_round"], plain["loss_per_round"], rtol=1e-4)


def test_real_runs_shard_any_number_of_rows_over_the_devices():
    """run_federation with 3 rows on 4 devices (one padding row) = the one-device run;
    the same for the DP simulator (sampled sub-stacks padded to the device count)."""
    code = textwrap.dedent("""
        import jax, numpy as np, optax
        assert len(jax.devices()) == 4
        from data_pipelines.synthetic import make_synthetic
        from fedpsyau_jax.training.batching import device_data
        from fedpsyau_jax.federated import make_algorithm
        from fedpsyau_jax.federated.local_training import make_local_trainer, client_mesh
        from fedpsyau_jax.federated.partitions import partition_clients
        from fedpsyau_jax.federated.rounds import run_federation
        from fedpsyau_jax.federated.runner import plan_rows
        from fedpsyau_jax.federated.settings import fl_settings
        from fedpsyau_jax.network.model import FedPsyAU
        s = make_synthetic(num_subjects=6, samples_per_subject=4, seed=2)
        model, tx = FedPsyAU(3, use_au_branch=False), optax.sgd(0.05, momentum=0.9)
        st = fl_settings(rounds=2, batch_size=4, oversample=False, checkpoint_every=0)
        rows = plan_rows(s, partition_clients(s, "equal_subjects", 3), [0], "random", st)
        out = {}
        # one trainer per device count for both runs below: the DP run's sub-stacks (2
        # sampled rows -> 3 on one device, 4 on four) have run_federation's shapes, so
        # its train/evaluate calls reuse the compiled programs (CI time)
        trainers = {"one": make_local_trainer(model, tx, mode="step"),
                    "four": make_local_trainer(model, tx, mode="step", mesh=client_mesh(4))}
        for name, tr in trainers.items():
            out[name] = run_federation(trainer=tr, algorithm=make_algorithm("pfedprox"), model=model,
                                       tx=tx, samples=s, data=device_data(s), rows=rows, settings=st,
                                       progress=False)
        np.testing.assert_allclose(out["one"]["loss_per_round"], out["four"]["loss_per_round"], rtol=1e-5)
        assert [d["uf1"] for d in out["one"]["deployed"]] == [d["uf1"] for d in out["four"]["deployed"]]
        assert len(out["four"]["deployed"]) == 3
        # the DP simulator too: its trained sub-stacks and evaluations are padded to the
        # device count (2 of 3 clients a round -> 4 rows on 4 devices)
        from fedpsyau_jax.federated.rounds import run_dp_federation
        from fedpsyau_jax.federated.privacy import DPSettings
        dp = DPSettings(clip_norm=1e6, noise_multiplier=0.0, allow_no_noise=True, sampling="fixed",
                        per_round=2)
        for name, tr in trainers.items():
            out[name] = run_dp_federation(trainer=tr, algorithm=make_algorithm("pfedprox"), model=model,
                                          tx=tx, samples=s, data=device_data(s), rows=rows, settings=st,
                                          dp=dp, progress=False)
        assert out["one"]["participants_per_round"] == out["four"]["participants_per_round"] == [2, 2]
        np.testing.assert_allclose(out["one"]["loss_per_round"], out["four"]["loss_per_round"], rtol=1e-5)
        for kind in ("deployed", "personal"):
            assert [d["uf1"] for d in out["one"][kind]] == [d["uf1"] for d in out["four"][kind]]
        print("PADDED_SHARDED_OK")
    """)
    _on_four_devices(code, "PADDED_SHARDED_OK")


def test_federated_au_branch_uses_each_clients_au_weights_and_mirror_averaging():
    """The AU branch that learns in federation: one client's FedAvg equals a plain train
    step fed the client's own n⁻/n⁺ AU weights, and the deployed AU heads are scored with
    mirror-averaged outputs on the client's test split."""
    from fedpsyau_jax.network.priors import beta_schedule
    from fedpsyau_jax.training.losses import au_pos_weights
    from fedpsyau_jax.training.metrics import au_detection_scores
    from fedpsyau_jax.training.train_state import make_eval_step

    samples = make_synthetic(num_subjects=4, samples_per_subject=4, seed=2)
    model = FedPsyAU(3, use_au_branch=True, gat_dropout=0.0, au_head_dropout=0.0)
    tx = optax.sgd(0.005, momentum=0.9)  # small: AU probabilities stay off 0 and 1 (no ties)
    data = device_data(samples)
    settings = fl_settings(
        rounds=1,
        local_epochs=1,
        batch_size=4,
        eval_batch_size=8,
        oversample=False,
        checkpoint_every=0,
        au_pos_weight="balanced",
        eval_flip=True,
    )
    trainer = make_local_trainer(model, tx, mode="step", au_pos_weight=True, eval_flip=True)
    clients = [("c0", np.arange(len(samples)))]
    rows = plan_rows(samples, clients, [0], "random", settings)
    res = run_federation(
        trainer=trainer,
        algorithm=make_algorithm("fedavg"),
        model=model,
        tx=tx,
        samples=samples,
        data=data,
        rows=rows,
        settings=settings,
        progress=False,
    )
    tr = rows.train_idx[0]
    w = au_pos_weights(samples.au[tr], samples.au_mask[tr])
    assert float(np.max(w)) > 1.5  # the weights matter here
    state = jax.tree.map(lambda x: x[0], init_row_states(model, tx, rows, trainer))
    step = jax.jit(make_train_step(model, tx))
    beta = beta_schedule(settings.train.beta_schedule, 1, settings.train.beta0)[0]
    idx, mask, _ = round_plans(rows, samples.label, 0, settings)
    ls = []
    for t in range(idx.shape[1]):
        batch = gather_batch(data, jnp.asarray(idx[0, t]), jnp.asarray(mask[0, t]))
        batch["au_pos_weight"] = jnp.asarray(w)
        state, m = step(state, batch, beta)
        if mask[0, t].sum():
            ls.append(float(m["loss"]))
    np.testing.assert_allclose(res["loss_per_round"][0][0], np.mean(ls), rtol=1e-5)
    te = rows.test_idx[0]
    batch = gather_batch(data, jnp.asarray(te), jnp.ones(len(te), jnp.float32))
    out = jax.jit(make_eval_step(model, flip_tta=True))(state, batch, beta)
    prob = np.asarray(out["au_prob_gat"])
    assert 0.01 < prob.min() and prob.max() < 0.99
    want = au_detection_scores(samples.au[te], samples.au_mask[te], prob)["mean_auc"]
    assert res["deployed_au"]["gat"][0]["mean_auc"] == pytest.approx(want, abs=1e-5), res["deployed_au"]
