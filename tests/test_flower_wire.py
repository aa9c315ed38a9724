"""Flower wire format: pytree <-> named arrays (ArrayRecord), checked restore (fast)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flwr")  # the flower extra; CI installs .[all]

from flwr.app import Array, ArrayRecord  # noqa: E402

from fedpsyau_jax.federated.flower import wire  # noqa: E402
from fedpsyau_jax.federated.flower.settings import build, run_spec, upload_template  # noqa: E402
from fedpsyau_jax.federated.flower.site import from_raw, to_raw  # noqa: E402
from fedpsyau_jax.training.train_state import create_train_state  # noqa: E402


@pytest.fixture(scope="module")
def state():
    """A real (flow-only) TrainState: params, BN stats, AdamW state, step, typed key."""
    model, tx, _ = build(run_spec({"use-au-branch": False}))
    st = create_train_state(model, tx, jax.random.key(3))
    # make every leaf distinct so a permutation of names would be caught
    leaves, treedef = jax.tree.flatten(to_raw(st))
    rng = np.random.default_rng(0)
    leaves = [np.asarray(x) + rng.integers(1, 5, np.shape(x)).astype(np.asarray(x).dtype)
              for x in leaves]
    return jax.tree.unflatten(treedef, leaves)


def test_state_round_trip_through_array_record(state):
    rec = wire.to_array_record(state)
    assert isinstance(rec, ArrayRecord) and len(rec) == len(jax.tree.leaves(state))
    assert "params/flow_only/flow_dense/kernel" in rec
    assert any(k.startswith("opt_state/") for k in rec)
    back = wire.from_array_record(rec, jax.eval_shape(lambda: state), finite=True)
    assert jax.tree.structure(back) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(state)):
        assert a.dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)
    st = from_raw(back)                    # typed PRNG key restored
    assert jax.dtypes.issubdtype(st.key.dtype, jax.dtypes.prng_key)


def test_none_parts_are_not_sent():
    model, tx, algo = build(run_spec({"use-au-branch": False, "algorithm": "pfedprox"}))
    tmpl = upload_template(model, tx, algo)
    assert tmpl["batch_stats"] is None                   # P-FedProx: BN stays local
    names = wire.spec(tmpl)
    assert names and all(n.startswith("params/") for n in names)
    model, tx, algo = build(run_spec({"use-au-branch": False, "algorithm": "local"}))
    assert wire.spec(upload_template(model, tx, algo)) == {}   # Local: nothing


def _record(tree):
    return wire.to_array_record(tree)


def test_restore_rejects_and_names_bad_arrays():
    tmpl = {"a": {"kernel": jax.ShapeDtypeStruct((2, 3), jnp.float32)},
            "b": jax.ShapeDtypeStruct((4,), jnp.float32)}
    good = {"a": {"kernel": np.ones((2, 3), np.float32)}, "b": np.zeros(4, np.float32)}
    wire.from_array_record(_record(good), tmpl, finite=True)

    wrong_shape = {"a": {"kernel": np.ones((3, 2), np.float32)}, "b": np.zeros(4, np.float32)}
    with pytest.raises(wire.WireError, match=r"a/kernel: got float32\[3, 2\], expected float32\[2, 3\]"):
        wire.from_array_record(_record(wrong_shape), tmpl)
    wrong_dtype = {"a": {"kernel": np.ones((2, 3), np.float64)}, "b": np.zeros(4, np.float32)}
    with pytest.raises(wire.WireError, match="a/kernel: got float64"):
        wire.from_array_record(_record(wrong_dtype), tmpl)
    rec = _record(good)
    rec["flow128"] = Array(np.zeros((1, 128, 128, 3), np.float32))
    with pytest.raises(wire.WireError, match="unexpected 1 array.*flow128"):
        wire.from_array_record(rec, tmpl)
    rec = _record(good)
    del rec["b"]
    with pytest.raises(wire.WireError, match="missing 1 array.*: b"):
        wire.from_array_record(rec, tmpl)
    for bad in (np.nan, np.inf, -np.inf):
        t = {"a": {"kernel": np.ones((2, 3), np.float32)}, "b": np.array([0, bad, 0, 0], np.float32)}
        with pytest.raises(wire.WireError, match="non-finite.*: b"):
            wire.from_array_record(_record(t), tmpl, finite=True)
        wire.from_array_record(_record(t), tmpl, finite=False)      # only checked when asked


def test_num_bytes_counts_payload():
    t = {"w": np.zeros((10, 10), np.float32)}
    assert wire.num_bytes(t) == 400
    assert wire.num_bytes(wire.to_array_record(t)) >= 400


def test_pyproject_flower_app_is_valid_and_matches_the_defaults():
    """`flwr run .` reads [tool.flwr.app]: valid for Flower, components importable, and
    its run config is exactly settings.DEFAULTS (so the two cannot drift apart)."""
    import tomllib
    from pathlib import Path

    from flwr.common.config import validate_config

    from fedpsyau_jax.federated.flower.settings import DEFAULTS
    root = Path(__file__).resolve().parent.parent
    cfg = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    ok, errors, _ = validate_config(cfg, check_module=True, project_dir=root)
    assert ok, errors
    app = cfg["tool"]["flwr"]["app"]
    assert app["config"].keys() == DEFAULTS.keys()
    for k, v in app["config"].items():
        assert v == DEFAULTS[k], k
    assert run_spec(app["config"]).algorithm == "fedavg"
    with pytest.raises(ValueError, match="unknown run-config key.*algoritm"):
        run_spec({"algoritm": "fedavg"})
