"""The ml_collections spelling of configs on the command line, checked strictly
before anything is written (issue: layout and conventions)."""
import re
from pathlib import Path

import pytest

from fedpsyau_jax.cli import main
from fedpsyau_jax.config_loading import ConfigError, split_config_flags

ROOT = Path(__file__).resolve().parent.parent
DEMO = str(ROOT / "configs" / "synthetic_demo.py")


def test_split_config_flags_both_spellings():
    rest, path, ov = split_config_flags(
        ["--config=c.py", "--config.train.epochs=3", "--config.seed", "4", "--workdir", "w"])
    assert path == "c.py" and ov == ["train.epochs=3", "seed=4"] and rest == ["--workdir", "w"]
    rest, path, ov = split_config_flags(["--config", "c.py", "--no-progress"])
    assert path == "c.py" and ov == [] and rest == ["--no-progress"]
    with pytest.raises(ConfigError, match="expected a value"):
        split_config_flags(["--config=c.py", "--config.seed"])


@pytest.mark.parametrize("verb,flag,expect", [
    ("train", "--config.train.epoch=1", r"train\.epoch: no such key.*did you mean 'train\.epochs'"),
    ("train", "--config.train.epochs=many", r"train\.epochs='many': expected an integer"),
    ("train", "--config.trian.epochs=1", r"'trian' is not a section.*did you mean 'train'"),
    ("federate", "--config.fl.round=1", r"fl\.round: no such key.*did you mean 'fl\.rounds'"),
    ("federate", "--config.fl.rounds=2.5", r"fl\.rounds='2\.5': expected an integer"),
])
def test_bad_override_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, verb, flag, expect):
    cfg = DEMO if verb == "train" else str(ROOT / "configs" / "fl_synthetic.py")
    work = tmp_path / "typo"
    rc = main([verb, f"--config={cfg}", flag, f"--workdir={work}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith(f"fedpsyau {verb}: error: ")
    assert re.search(expect, err), err
    assert not work.exists()


def test_set_alias_is_as_strict(tmp_path, capsys):
    work = tmp_path / "typo"
    rc = main(["train", "--config", DEMO, "--set", "train.epoch=1", "--workdir", str(work)])
    assert rc == 2 and "did you mean 'train.epochs'" in capsys.readouterr().err
    assert not work.exists()


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ConfigError):
        main(["train", f"--config={DEMO}", "--config.train.epoch=1", "--debug",
              f"--workdir={tmp_path / 'w'}"])


@pytest.mark.parametrize("flag,expect", [
    ("--config.model.group_tokens=papr", r"model\.group_tokens 'papr': unknown name.*'paper'"),
    ("--config.train.class_balance=weighted", r"train\.class_balance 'weighted'.*weighted_ce"),
    ("--config.model.roi_source=flow64", r"model\.roi_source 'flow64'"),
])
def test_bad_option_value_is_one_line_before_anything_runs(tmp_path, capsys, flag, expect):
    work = tmp_path / "w"
    rc = main(["train", f"--config={DEMO}", flag, f"--workdir={work}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and re.search(expect, err), err
    assert not work.exists()
