"""checkpoints.py (Orbax save/restore/latest, clear errors) and config_loading.py."""
import json

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from fedpsyau_jax.training.checkpoints import (CheckpointError, latest_checkpoint, list_checkpoints,
                                      restore_checkpoint, save_checkpoint)
from fedpsyau_jax.config_loading import ConfigError, load_config


def _tree(v=1.0):
    return {"w": jnp.full((3, 2), v), "b": {"c": np.arange(4, dtype=np.int32)}, "s": jnp.zeros((), jnp.int32)}


def test_save_restore_roundtrip_and_latest(tmp_path):
    assert latest_checkpoint(tmp_path / "none") is None
    save_checkpoint(tmp_path, "epoch_1", _tree(1.0), {"epoch": 1})
    save_checkpoint(tmp_path, "epoch_2", _tree(2.0), {"epoch": 2, "names": ["a"]})
    assert list_checkpoints(tmp_path) == ["epoch_1", "epoch_2"]
    assert latest_checkpoint(tmp_path) == "epoch_2"
    tree, meta = restore_checkpoint(tmp_path, "epoch_2", _tree(0.0))
    np.testing.assert_array_equal(tree["w"], np.full((3, 2), 2.0))
    np.testing.assert_array_equal(tree["b"]["c"], np.arange(4))
    assert meta["epoch"] == 2 and meta["names"] == ["a"]
    # overwrite keeps one complete checkpoint under the name
    save_checkpoint(tmp_path, "epoch_1", _tree(5.0), {"epoch": 1})
    assert latest_checkpoint(tmp_path) == "epoch_1"
    tree, _ = restore_checkpoint(tmp_path, "epoch_1", _tree(0.0))
    assert float(tree["w"][0, 0]) == 5.0


def test_relative_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_checkpoint("runs/x", "c", _tree(3.0), {"k": 1})
    tree, meta = restore_checkpoint("runs/x", "c", _tree())
    assert float(tree["w"][0, 0]) == 3.0 and meta["k"] == 1
    assert latest_checkpoint("runs/x") == "c"


def test_incomplete_and_mismatched_give_clear_errors(tmp_path):
    save_checkpoint(tmp_path, "a", _tree(), {})
    with pytest.raises(CheckpointError, match="shape"):
        restore_checkpoint(tmp_path, "a", {"w": jnp.zeros((4, 2)), "b": {"c": np.zeros(4, np.int32)},
                                           "s": jnp.zeros((), jnp.int32)})
    with pytest.raises(CheckpointError, match="structure"):
        restore_checkpoint(tmp_path, "a", {"w": jnp.zeros((3, 2))})
    with pytest.raises(CheckpointError, match="does not exist"):
        restore_checkpoint(tmp_path, "missing", _tree())
    (tmp_path / "a" / "metadata.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        restore_checkpoint(tmp_path, "a", _tree())
    # a folder without metadata (interrupted writer) is not listed
    (tmp_path / "half" / "state").mkdir(parents=True)
    assert "half" not in list_checkpoints(tmp_path)


def test_corrupt_array_files_give_checkpoint_error(tmp_path):
    save_checkpoint(tmp_path, "a", _tree(), {})
    for f in (tmp_path / "a" / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and f.name != "_CHECKPOINT_METADATA":
            f.write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        restore_checkpoint(tmp_path, "a", _tree())


def test_by_part_roundtrip_layout_and_errors(tmp_path):
    save_checkpoint(tmp_path, "p", _tree(4.0), {"epoch": 3}, by_part=True)
    assert latest_checkpoint(tmp_path) == "p"
    assert sorted(d.name for d in (tmp_path / "p" / "state").iterdir()) == ["b", "s", "w"]
    tree, meta = restore_checkpoint(tmp_path, "p", _tree(0.0))
    np.testing.assert_array_equal(tree["w"], np.full((3, 2), 4.0))
    np.testing.assert_array_equal(tree["b"]["c"], np.arange(4))
    assert int(tree["s"]) == 0 and meta == {"epoch": 3, "_saved_ns": meta["_saved_ns"]}
    with pytest.raises(CheckpointError, match="shape"):
        restore_checkpoint(tmp_path, "p", {**_tree(), "w": jnp.zeros((4, 2))})
    for f in (tmp_path / "p" / "state" / "w").rglob("*"):      # one part damaged
        if f.is_file() and f.stat().st_size > 0 and f.name != "_CHECKPOINT_METADATA":
            f.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot restore"):
        restore_checkpoint(tmp_path, "p", _tree())
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, "q", [jnp.zeros(2)], by_part=True)
    assert "q" not in list_checkpoints(tmp_path)


def test_load_config_overrides(tmp_path):
    p = tmp_path / "c.py"
    p.write_text(
        "import ml_collections\n"
        "def get_config():\n"
        "    c = ml_collections.ConfigDict()\n"
        "    c.train = ml_collections.ConfigDict(dict(epochs=3, learning_rate=1e-3, oversample=True, name='x', alpha=(0.2, 0.8)))\n"
        "    c.maybe = None\n"
        "    return c\n")
    cfg = load_config(p, ["train.epochs=5", "train.learning_rate=2e-4", "train.oversample=false",
                          "train.name=y", "train.alpha=(1.0,2.0)", "maybe=7"])
    assert cfg.train.epochs == 5 and isinstance(cfg.train.epochs, int)
    assert cfg.train.learning_rate == 2e-4 and cfg.train.oversample is False and cfg.train.name == "y"
    assert tuple(cfg.train.alpha) == (1.0, 2.0) and cfg.maybe == 7
    assert isinstance(cfg, ml_collections.ConfigDict)
    with pytest.raises(ConfigError, match="integer"):
        load_config(p, ["train.epochs=abc"])
    with pytest.raises(ConfigError, match="nosuch"):
        load_config(p, ["nosuch.x=1"])
    # Strict keys (config_flags semantics): a typo names the key and the nearest one.
    with pytest.raises(ConfigError, match=r"train\.epoch\b.*did you mean 'train\.epochs'"):
        load_config(p, ["train.epoch=1"])
    # The old federated spelling is one line naming the new key, on the command line
    # and in a config file.
    with pytest.raises(ConfigError, match=r"override train\.lr: now train\.learning_rate"):
        load_config(p, ["train.lr=1e-3"])
    with pytest.raises(ConfigError, match=r"override data\.kw\.seed: now data\.kwargs\.seed"):
        load_config(p, ["data.kw.seed=1"])
    old = tmp_path / "old.py"
    old.write_text(
        "import ml_collections\n"
        "def get_config():\n"
        "    c = ml_collections.ConfigDict()\n"
        "    c.data = ml_collections.ConfigDict(dict(name='synthetic', kw=ml_collections.ConfigDict()))\n"
        "    return c\n")
    with pytest.raises(ConfigError, match=r"old\.py: data\.kw is now data\.kwargs"):
        load_config(old)
    with pytest.raises(ConfigError, match="is a section"):
        load_config(p, ["train=1"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.py")
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="get_config"):
        load_config(bad)
