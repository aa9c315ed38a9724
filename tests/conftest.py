"""Shared pytest setup: repo root on sys.path, JAX compile cache, shared-data fixture."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Many test files (and every SuperNode a deployment test starts) compile the same
# network; a persistent compilation cache lets the second one load the first one's
# executable instead of compiling again. It is the CLI's cache folder
# (``compile_cache.default_cache_dir``), so a clean clone on a machine that ran the
# suite before starts warm, as pip's wheel cache does. Entries are keyed by the program,
# the flags and the compiler version: a stale one is never used.
def _cache_dir() -> str:
    # compile_cache.py loaded on its own: importing the package would import jax, which
    # reads JAX_COMPILATION_CACHE_DIR when it is imported (too early for the setting below)
    import importlib.util
    spec = importlib.util.spec_from_file_location("_fedpsyau_cc", ROOT / "fedpsyau_jax" / "compile_cache.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = Path(mod.default_cache_dir())
    try:
        path.mkdir(parents=True, exist_ok=True)
        return str(path)
    except OSError:                       # read-only home: a cache inside the checkout
        return str(ROOT / ".jax_cache")


os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache_dir())
# The suite's time is mostly XLA:CPU compiling (small data, many programs): LLVM's
# optimisation level 0 compiles about 1.8x faster (one Flower equivalence test cold:
# 42 s of CPU against 74 s; the whole suite cold 28 CPU-min against 51) and the tests
# run the same code and the same XLA graph optimisations. Every comparison in the
# suite is between runs made under the same flags; the subprocess tests add their
# device-count flag to these. An XLA_FLAGS of the caller's that sets the level wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from fedpsyau_jax.core.shared_data import shared_data_root  # noqa: E402


@pytest.fixture(scope="session")
def shared_root() -> Path:
    root = shared_data_root(required=False)
    if root is None:
        pytest.skip("shared data folder not found (set FEDPSYAU_SHARED_DATA)")
    return root


# One small run with shared stage-1 models serves the end-to-end AU tests of
# test_au_branch.py and test_au_alignment.py (each used to train its own, ~2-3 min of
# compiling apiece): stage 1 alone first (``api.pretrain_au``), then ``api.train`` in
# the same workdir, which must reuse it. The tests that read it share one xdist group,
# so the run is made once, on one worker.
SHARED_STAGE1 = pytest.mark.xdist_group("shared_stage1_run")


def shared_stage1_config(*extra: str):
    """The synthetic demo shrunk to 4 subjects, 1 epoch per stage, 2 shared stage-1
    models and the recipe's AU branch (no dropout), plus ``extra`` overrides."""
    from fedpsyau_jax.config_loading import load_config

    overrides = [
        "data.kwargs.num_subjects=4",
        "data.kwargs.samples_per_subject=6",
        "train.epochs=1",
        "train.batch_size=8",
        "train.eval_batch_size=8",
        "pretrain.epochs=1",
        "pretrain.subject_folds=2",
        "model.gat_dropout=0.0",
        "model.au_head_dropout=0.0",
        *extra,
    ]
    return load_config(str(ROOT / "configs" / "synthetic_demo.py"), overrides)


@pytest.fixture(scope="session")
def shared_stage1_run(tmp_path_factory):
    """(config, workdir, stage-1 plan, stage-1 epochs logged before ``train``) of a run
    of 5 subjects (6 samples each, a fifth of them without AU labels: the reference set)
    with ROIs from the 28-px flow (not the default) and mirror averaging at test time."""
    from fedpsyau_jax import api
    from fedpsyau_jax.training.run_logging import read_jsonl

    cfg = shared_stage1_config(
        "data.kwargs.num_subjects=5", "data.kwargs.au_label_fraction=0.8", "model.roi_source=flow28",
        "train.eval_flip=true", "export.final_model=none",
    )
    wd = tmp_path_factory.mktemp("shared_stage1") / "run"
    plan = api.pretrain_au(cfg, wd, show_progress=False)
    before = sum(e["event"] == "pretrain_epoch" for e in read_jsonl(wd / "metrics.jsonl"))
    api.train(cfg, wd, verbose=False, show_progress=False)
    return cfg, wd, plan, before


# The longest xdist groups start first: a group runs on one worker from its first test
# to its last, so one that is reached halfway through the collection (the loopback
# Flower deployments, about 8 min one after another) ends last and sets the suite's
# wall time. Collection order otherwise unchanged (a stable sort).
FIRST_GROUPS = ("flower_deployments", "shared_stage1_run")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        mark = item.get_closest_marker("xdist_group")
        name = (mark.args[0] if mark.args else mark.kwargs.get("name")) if mark else None
        return FIRST_GROUPS.index(name) if name in FIRST_GROUPS else len(FIRST_GROUPS)

    items.sort(key=rank)


# Every executable XLA:CPU loads stays mapped while a jitted function, a compiled
# program or a cached site still refers to it, and a worker runs hundreds of tests: the
# in-process Flower tests alone took one worker past the kernel's limit of 65 530 memory
# maps (vm.max_map_count), and the next executable it loaded crashed it (SIGSEGV in
# deserialisation, the xdist worker "node down"). After each test module the package's
# memoised programs and JAX's own caches are dropped; a later module that needs a program
# again loads it from the persistent compilation cache.
_PROGRAM_DICTS = ("_PROGRAMS", "_APPLY", "_REDUCE_CACHE", "_SITES")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    yield
    import gc

    for name, mod in list(sys.modules.items()):
        if not name.startswith(("fedpsyau_jax", "data_pipelines")) or mod is None:
            continue
        for attr, value in list(vars(mod).items()):
            if attr in _PROGRAM_DICTS and isinstance(value, dict):
                value.clear()
            elif callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == name:
                value.cache_clear()
    if "jax" in sys.modules:
        sys.modules["jax"].clear_caches()
    gc.collect()
