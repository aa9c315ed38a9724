"""Every shipped config loads; the licence-gated ones run end to end on release-shaped
fixtures (real face frames; flow-only model and 1 epoch to keep CI short)."""
from pathlib import Path

import pytest

from data_pipelines.dataset_fixtures import write_fixture_layout
from fedpsyau_jax import api
from fedpsyau_jax.config_loading import load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("synthetic_demo", "megc2019_composite_loso", "casme3_loso", "dfme_10fold",
           "au_pretrain_disfa_ckplus", "megc2019_reference_model")
FAST = ["model.use_au_branch=false", "train.epochs=1", "train.batch_size=4",
        "train.eval_batch_size=4", "train.learning_rate=1e-3", "runtime.fold_chunk=1"]


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_and_documents_its_command(name):
    path = ROOT / "configs" / f"{name}.py"
    cfg = load_config(path)
    assert cfg.protocol.kind in ("loso", "kfold", "all")
    assert cfg.train.epochs >= 1 and cfg.train.learning_rate > 0
    api.settings_from_config(cfg)                       # every training field is present
    doc = path.read_text().split('"""')[1]
    assert f"fedpsyau train --config=configs/{name}.py --workdir=runs/" in doc


def test_dfme_config_is_subject_10fold_seed1_with_reference_prior():
    cfg = load_config(ROOT / "configs" / "dfme_10fold.py")
    assert (cfg.protocol.kind, cfg.protocol.k, cfg.protocol.shuffle, cfg.protocol.split_seed) == ("kfold", 10, True, 1)
    assert cfg.prior.source == "reference_dfme" and cfg.data.kwargs.scheme == "emotion7"


def test_megc_config_fixes_hyperparameters_before_the_run():
    cfg = load_config(ROOT / "configs" / "megc2019_composite_loso.py")
    assert cfg.data.name == "megc2019_composite" and cfg.protocol.kind == "loso"
    assert cfg.prior.source == "fold_train"
    t = cfg.train
    assert (t.lr_schedule, t.class_balance, t.hflip, t.decay_kernels_only, t.au_norm) == \
        ("warmup_cosine", "weighted_ce", 0.5, True, "examples")
    assert cfg.model.group_tokens == "paper"
    doc = (ROOT / "configs" / "megc2019_composite_loso.py").read_text()
    for key in ("epochs", "learning_rate", "roi_source", "class_balance", "hflip"):
        assert key in doc                                   # every setting says how it was chosen


def test_reference_model_is_the_composite_recipe_on_all_data():
    """Only the protocol and where stage 1 runs differ from the LOSO recipe: stage 1 in
    the all-data fold (the shared part models serve LOSO folds only)."""
    ref = load_config(ROOT / "configs" / "megc2019_reference_model.py").to_dict()
    loso = load_config(ROOT / "configs" / "megc2019_composite_loso.py").to_dict()
    differ = {(sec, k) for sec, v in loso.items() if isinstance(v, dict) for k in v if ref[sec][k] != v[k]}
    assert differ == {("protocol", "kind"), ("pretrain", "subject_folds")}
    assert ref["protocol"]["kind"] == "all" and ref["pretrain"]["subject_folds"] == 0
    assert ref["pretrain"]["epochs"] > 0 and ref["export"]["final_model"] == "all_data"


@pytest.mark.parametrize("name", ["casme3_loso", "dfme_10fold", "au_pretrain_disfa_ckplus"])
def test_release_configs_use_the_recipe(name):
    cfg = load_config(ROOT / "configs" / f"{name}.py")
    t = cfg.train
    assert t.lr_schedule == "warmup_cosine" and t.decay_kernels_only and t.hflip == 0.5
    assert t.au_norm == "examples"


def test_casme3_loso_runs_on_release_fixture(tmp_path):
    root = write_fixture_layout("casme3", tmp_path / "casme3", n_subjects=3, clips_per_subject=2)
    cfg = load_config(ROOT / "configs" / "casme3_loso.py",
                      [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", *FAST])
    s = api.train(cfg, tmp_path / "run", show_progress=False, verbose=False)
    assert s["protocol"] == "loso" and s["folds"] == 3 and s["samples"] == 6
    assert s["class_names"] == ["negative", "positive", "surprise"]
    assert sum(map(sum, s["pooled"]["confusion"])) == 6


def test_dfme_kfold_runs_on_release_fixture(tmp_path):
    root = write_fixture_layout("dfme", tmp_path / "dfme", n_subjects=6, clips_per_subject=2)
    cfg = load_config(ROOT / "configs" / "dfme_10fold.py",
                      [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "protocol.k=3",
                       "export.final_model=none", *FAST])
    s = api.train(cfg, tmp_path / "run", show_progress=False, verbose=False)
    assert s["protocol"] == "kfold" and s["folds"] == 3 and s["samples"] == 12
    assert len(s["class_names"]) == 7
    assert not (tmp_path / "run" / "final_model").exists()


def test_licence_gated_config_without_root_fails_clearly(tmp_path):
    cfg = load_config(ROOT / "configs" / "casme3_loso.py")
    with pytest.raises((ValueError, FileNotFoundError), match="root|casme3"):
        api.train(cfg, tmp_path, show_progress=False, verbose=False)
