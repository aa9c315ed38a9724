"""The fl_* configs end to end through the CLI verb, on tiny data.

CAS(ME)³ and DFME run on release-shaped fixture folders (real face frames) with tiny
overrides; the synthetic default runs through the Python mirror ``federate``.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from data_pipelines.dataset_fixtures import write_fixture_layout
from fedpsyau_jax.cli import main as cli_main
from fedpsyau_jax.config_loading import load_config

ROOT = Path(__file__).resolve().parent.parent
TINY = ["fl.rounds=2", "protocol.seeds=(0,)", "train.batch_size=4", "train.eval_batch_size=4",
        "train.class_balance=none"]


def _check_results(workdir: Path, clients: int, algorithms, splits=("random",)):
    res = json.loads((workdir / "results.json").read_text())
    for split in splits:
        assert set(res["splits"][split]) == set(algorithms)
        for algo in algorithms:
            e = res["splits"][split][algo]
            assert len(e["clients"]) == clients
            assert np.asarray(e["loss_per_round"]).shape == (2, clients)
            assert np.all(np.isfinite(e["loss_per_round"]))
            for c in e["clients"]:
                assert 0.0 <= e["deployed"]["per_client"][c]["uf1"]["mean"] <= 1.0
        assert (workdir / f"fl_{split}.png").stat().st_size > 10_000
    table = (workdir / "results.md").read_text()
    assert all(f"| {a} |" in table for a in algorithms)
    return res


def test_fl_casme3_2clients_on_fixture(tmp_path, capsys):
    root = write_fixture_layout("casme3", tmp_path / "c3", n_subjects=4, clips_per_subject=3)
    work = tmp_path / "run"
    argv = ["federate", "--config", str(ROOT / "configs/fl_casme3_2clients.py"), "--workdir", str(work),
            "--no-progress", "--set", f"data.root={root}", "--set", f"data.cache_dir={tmp_path / 'cache'}",
            "--set", "fl.algorithms=('fedavg','pfedprox')", "--set", "protocol.splits=('random','subject')",
            "--set", "fl.eval_every_round=true"]
    for o in TINY:
        argv += ["--set", o]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "split `subject`" in out and "| fedavg |" in out
    res = _check_results(work, 2, ["fedavg", "pfedprox"], ("random", "subject"))
    # the per-round curve (plots only) ends at the final deployed model's score
    chunk = json.loads((work / "random" / "pfedprox" / "seeds_0-0" / "result.json").read_text())
    assert len(chunk["deployed_uf1_per_round"]) == 2
    np.testing.assert_allclose(chunk["deployed_uf1_per_round"][-1], [d["uf1"] for d in chunk["deployed"]],
                               rtol=1e-6)
    assert (work / "fl_random_convergence.png").stat().st_size > 1000
    # subject split: no test subject of a client appears in its training data
    assert res["splits"]["subject"]["pfedprox"]["per_seed"][0]["num_test"][0] >= 1
    # a re-run finds every chunk finished and only rebuilds the summary
    mtime = (work / "random" / "fedavg" / "seeds_0-0" / "result.json").stat().st_mtime
    assert cli_main(argv) == 0
    assert (work / "random" / "fedavg" / "seeds_0-0" / "result.json").stat().st_mtime == mtime
    # --summarise-only on a workdir missing one chunk: summary of the rest, gap listed
    import shutil
    shutil.rmtree(work / "subject" / "fedavg")
    assert cli_main(argv + ["--summarise-only"]) == 0
    res = json.loads((work / "results.json").read_text())
    assert res["missing_chunks"] == ["subject/fedavg/seeds_0-0"]
    assert set(res["splits"]["subject"]) == {"pfedprox"} and not (work / "subject" / "fedavg").exists()


def test_fl_dfme_5clients_on_fixture_python_api(tmp_path):
    """Through the Python mirror of the verb."""
    from fedpsyau_jax.federated import federate
    root = write_fixture_layout("dfme", tmp_path / "dfme", n_subjects=5, clips_per_subject=2)
    work = tmp_path / "run"
    cfg = load_config(ROOT / "configs/fl_dfme_5clients.py", TINY + [
        f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
        "fl.algorithms=('local','fedrep')", "protocol.splits=('random',)",
        # 7 classes: the flow-only network keeps this second compile short
        "model.use_au_branch=false"])
    summary = federate(cfg, work, progress=False, log=lambda m: None)
    assert summary["splits"]["random"]["fedrep"]["clients"] == [f"client{k}" for k in range(5)]
    res = _check_results(work, 5, ["local", "fedrep"])
    assert res["splits"]["random"]["local"]["per_seed"][0]["num_train"] == [1] * 5


def test_missing_root_is_a_clear_error(tmp_path, capsys):
    rc = cli_main(["federate", "--config", str(ROOT / "configs/fl_casme3_2clients.py"),
                   "--workdir", str(tmp_path), "--no-progress"])
    assert rc == 2 and "data.root" in capsys.readouterr().err


def test_bad_override_is_a_clear_error(tmp_path, capsys):
    rc = cli_main(["federate", "--config", str(ROOT / "configs/fl_synthetic.py"), "--workdir",
                   str(tmp_path), "--set", "nosuchsection.x=1"])
    assert rc == 2 and "nosuchsection" in capsys.readouterr().err


def test_real_config_loads_and_is_fixed():
    cfg = load_config(ROOT / "configs/fl_megc2019_by_dataset.py")
    assert cfg.data.name == "megc2019_composite" and cfg.partition.scheme == "by_dataset"
    assert set(cfg.fl.algorithms) == {"local", "fedavg", "fedprox", "pfedprox", "fedrep"}
    assert tuple(cfg.protocol.splits) == ("random", "subject") and len(cfg.protocol.seeds) >= 5
    assert cfg.fl.rounds >= 2 and cfg.train.learning_rate > 0


def test_recipe_config_carries_the_centralised_recipe_into_local_training():
    from fedpsyau_jax.federated.settings import fl_settings_from_config as settings_from_config
    cfg = load_config(ROOT / "configs/fl_megc2019_recipe.py")
    central = load_config(ROOT / "configs/megc2019_composite_loso.py")
    fl = settings_from_config(cfg)
    s = fl.train
    assert fl.rounds * fl.local_epochs == central.train.epochs == s.epochs      # same epochs per model
    assert s.learning_rate == central.train.learning_rate and s.lr_schedule == central.train.lr_schedule
    assert s.weighted_ce and not s.oversample and s.hflip == central.train.hflip
    assert s.au_norm == central.train.au_norm and cfg.model.roi_source == central.model.roi_source
    # the AU branch that learns: no dropout on its path, balanced AU BCE, mirror averaging
    assert (cfg.model.gat_dropout, cfg.model.au_head_dropout) == (0.0, 0.0)
    assert s.au_pos_weight == central.train.au_pos_weight == "balanced" and s.eval_flip is True
    # (6 seeds: the fewest at which the exact two-sided Wilcoxon p can fall below 0.05)
    assert len(cfg.protocol.seeds) >= 6 and tuple(cfg.protocol.splits) == ("random", "subject")
    bad = load_config(ROOT / "configs/fl_megc2019_recipe.py", ["train.class_balance=both"])
    with pytest.raises(Exception, match="class_balance"):
        settings_from_config(bad)
