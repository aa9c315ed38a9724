"""Composing the library: ``register_algorithm`` and a user-defined aggregation rule.

A rule written in one file of its own (``RULE``: a coordinate-wise median) is
registered, checked on hand-made uploads against FedAvg (pure math, no training), and
resolved by name the way the Flower app resolves it (run config -> ``build``, the
strategy's ``reduce_uploads``, the component module that imports the rule). The
research-use page that runs such a rule in the simulator is executed by
``tests/test_tutorial_notebook.py`` (every page in docs/tutorials).
"""

import importlib
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from fedpsyau_jax.federated import ALGORITHMS, ClientUpload, make_algorithm, register_algorithm
from fedpsyau_jax.federated.algorithms import fedavg
from fedpsyau_jax.federated.algorithms import make_algorithm as registry_make_algorithm

NAME = "test_coordinate_median"

# A user's rule, one module: server half = per-federation coordinate-wise median of the
# params (BN statistics averaged as in FedAvg); client half = adopt it (the default).
RULE = textwrap.dedent(
    f"""
    import jax
    import jax.numpy as jnp

    from fedpsyau_jax.federated import Algorithm, register_algorithm
    from fedpsyau_jax.federated.aggregation import fedavg_params


    def median_reduce(upload, groups, num_groups):
        def median(x):
            member = lambda g: (groups == g).reshape((-1,) + (1,) * (x.ndim - 1))
            rows = [jnp.nanmedian(jnp.where(member(g), x, jnp.nan), axis=0) for g in range(num_groups)]
            return jnp.stack(rows)[groups]

        _, batch_stats = fedavg_params(upload, groups, num_groups)
        return {{"params": jax.tree.map(median, upload.params), "batch_stats": batch_stats}}


    def make(**_):
        return Algorithm(name="{NAME}", mu=0.0, reduce=median_reduce, description="coordinate-wise median")


    register_algorithm("{NAME}", make)
    """
)


@pytest.fixture()
def rule_module(tmp_path, monkeypatch):
    """The rule as an importable module ``user_rule`` (imported: the name is registered);
    afterwards the registry, ``sys.modules`` and ``sys.path`` are as before."""
    (tmp_path / "user_rule.py").write_text(RULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = dict(ALGORITHMS)
    try:
        yield importlib.import_module("user_rule")
    finally:
        ALGORITHMS.clear()
        ALGORITHMS.update(before)
        for mod in ("user_rule", "user_flower_app"):
            sys.modules.pop(mod, None)


def _upload(params, n, bs_mean):
    return ClientUpload(
        params={"dense": {"kernel": jnp.asarray(params, jnp.float32)}},
        batch_stats={"bn": {"mean": jnp.asarray(bs_mean, jnp.float32)}},
        num_samples=jnp.asarray(n, jnp.float32),
    )


def test_register_algorithm_rejects_duplicates_and_non_callables():
    before = dict(ALGORITHMS)
    with pytest.raises(ValueError, match="already registered"):
        register_algorithm("fedavg", fedavg.make)
    with pytest.raises(TypeError, match="must be callable"):
        register_algorithm("not_callable_rule", "fedavg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty string"):
        register_algorithm("", fedavg.make)
    assert ALGORITHMS == before  # nothing half-registered
    with pytest.raises(ValueError, match="unknown federated algorithm"):
        make_algorithm("not_callable_rule")


def test_registered_rule_differs_from_fedavg_and_make_algorithm_returns_it(rule_module):
    assert make_algorithm is registry_make_algorithm  # the package re-exports the registry's function
    algo = make_algorithm(NAME, mu=0.01, theta=0.9)  # hyper-parameters it does not use are ignored
    assert algo.name == NAME and algo.reduce is rule_module.median_reduce
    assert ALGORITHMS[NAME] is rule_module.make
    with pytest.raises(ValueError, match="already registered"):
        importlib.reload(rule_module)  # registering the same name twice is refused

    # Two federations (groups 0 and 1) of rows; one client in federation 0 is an outlier.
    params = np.array([[0.0, 1.0], [1.0, 2.0], [9.0, -9.0], [4.0, 4.0], [6.0, 0.0]], np.float32)
    n = np.array([1.0, 1.0, 2.0, 1.0, 3.0], np.float32)
    groups = jnp.asarray([0, 0, 0, 1, 1], jnp.int32)
    upload = _upload(params, n, params[:, :1])
    got = algo.aggregate(upload, groups, 2)
    avg = make_algorithm("fedavg").aggregate(upload, groups, 2)

    median = np.array([[1.0, 1.0]] * 3 + [[5.0, 2.0]] * 2, np.float32)
    np.testing.assert_allclose(got.params["dense"]["kernel"], median)
    weighted = np.array([[4.75, -3.75]] * 3 + [[5.5, 1.0]] * 2, np.float32)  # Σ n_i w_i / Σ n_i per group
    np.testing.assert_allclose(avg.params["dense"]["kernel"], weighted, rtol=1e-6)
    assert not np.allclose(got.params["dense"]["kernel"], avg.params["dense"]["kernel"])
    # BN statistics: the rule averages them exactly as FedAvg does
    np.testing.assert_allclose(got.batch_stats["bn"]["mean"], avg.batch_stats["bn"]["mean"], rtol=1e-6)


def test_flower_app_resolves_a_registered_name(rule_module, tmp_path):
    """What a Flower run does with ``algorithm = "<name>"``: the run config becomes a
    ``RunSpec``, ``build`` makes the algorithm through the registry, the strategy reduces
    K uploads with its server half; and a component module that imports the rule and
    re-exports the project's apps loads as Flower loads it."""
    pytest.importorskip("flwr")
    from flwr.supercore.object_ref import load_app

    from fedpsyau_jax.federated.flower.settings import build, run_spec
    from fedpsyau_jax.federated.flower.strategies import reduce_uploads

    spec = run_spec({"algorithm": NAME, "use-au-branch": False})
    _, _, algo = build(spec)
    assert algo.name == NAME

    rng = np.random.default_rng(0)
    uploads = [{"params": {"dense": {"kernel": rng.normal(size=(2, 3)).astype(np.float32)}},
                "batch_stats": {"bn": {"mean": rng.normal(size=(3,)).astype(np.float32)}}} for _ in range(3)]
    broadcast = reduce_uploads(algo, uploads, [10.0, 30.0, 60.0])
    stacked = np.stack([u["params"]["dense"]["kernel"] for u in uploads])
    np.testing.assert_allclose(broadcast["params"]["dense"]["kernel"], np.median(stacked, axis=0), rtol=1e-6)

    (tmp_path / "user_flower_app.py").write_text(
        "import user_rule  # noqa: F401  (registers the rule in this process)\n"
        "from fedpsyau_jax.federated.flower.client_app import app as clientapp  # noqa: F401\n"
        "from fedpsyau_jax.federated.flower.server_app import app as serverapp  # noqa: F401\n",
        encoding="utf-8",
    )
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    paths = list(sys.path)
    try:
        assert isinstance(load_app("user_flower_app:serverapp", ValueError, tmp_path), ServerApp)
        assert isinstance(load_app("user_flower_app:clientapp", ValueError, tmp_path), ClientApp)
    finally:
        sys.path[:] = paths


def test_research_use_page_is_among_the_executed_tutorials():
    """The page runs (quick variant) in ``tests/test_tutorial_notebook.py``, which executes
    every page of docs/tutorials; here: it is there and registers its rule publicly."""
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "tutorials" / "research_use.md"
    text = page.read_text(encoding="utf-8")
    assert "```{code-cell}" in text and "register_algorithm(" in text and "federate(" in text
