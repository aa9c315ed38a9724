"""Stage 1 in federation: AU-only rounds whose AU branch starts every site's emotion
rounds; shared by the algorithms of a run and never retrained."""
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from fedpsyau_jax.config_loading import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--config.fl.pretrain_rounds=1", "--config.pretrain.learning_rate=1e-3", "--config.protocol.seeds=(0,)",
        "--config.data.kwargs.num_subjects=4", "--config.data.kwargs.samples_per_subject=4",
        "--config.model.gat_dropout=0.0", "--config.model.au_head_dropout=0.0"]


def test_federated_stage1_starts_every_site_and_is_reused(tmp_path, monkeypatch):
    from fedpsyau_jax.cli import main
    from fedpsyau_jax.federated import rounds, runner
    from fedpsyau_jax.training.checkpoints import read_metadata, restore_checkpoint

    started = []
    real_init = runner.PlainRounds.__init__

    def spy(self, *a, pretrained=None, **k):
        real_init(self, *a, pretrained=pretrained, **k)
        started.append((pretrained, jax.tree.map(np.asarray, self.states.params)))

    monkeypatch.setattr(runner.PlainRounds, "__init__", spy)
    wd = tmp_path / "fl"
    cmd = ["federate", "--config", str(ROOT / "configs" / "fl_synthetic.py"), *ARGS,
           "--config.fl.algorithms=('fedavg',)", "--workdir", str(wd), "--no-progress"]
    assert main(cmd) == 0
    s1 = wd / "random" / "stage1_federated" / "seeds_0-0"
    assert read_metadata(s1, "stage1_model")["mode"] == "federated"
    (stage1_run, _), (pretrained, stage2_start) = started           # stage 1, then fedavg's stage 2
    assert stage1_run is None and pretrained is not None
    head = lambda tree: np.asarray(tree["au_head_gat"]["Dense_0"]["kernel"])
    # FedAvg in stage 1: both sites end with the same AU branch, and stage 2 starts from it
    np.testing.assert_array_equal(head(pretrained[0])[0], head(pretrained[0])[1])
    np.testing.assert_array_equal(head(stage2_start), head(pretrained[0]))
    # a second algorithm reads stage 1 back: no stage-1 run, the same start
    started.clear()
    calls = []
    real_run = rounds.run_federation
    monkeypatch.setattr(rounds, "run_federation", lambda **k: calls.append(k.get("desc")) or real_run(**k))
    assert main(cmd[:-4] + ["--config.fl.algorithms=('fedavg','fedrep')", "--workdir", str(wd), "--no-progress"]) == 0
    assert len(started) == 1 and not any("stage 1" in str(d) for d in calls)
    np.testing.assert_array_equal(head(started[0][0][0]), head(pretrained[0]))
    res = json.loads((wd / "random" / "fedrep" / "seeds_0-0" / "result.json").read_text())
    assert "deployed_au" in res


def test_stage1_settings_refuse_a_model_without_au_branch():
    from fedpsyau_jax.federated.settings import fl_settings_from_config
    from fedpsyau_jax.federated.stage1 import stage1_settings

    cfg = load_config(ROOT / "configs" / "fl_synthetic.py", ["fl.pretrain_rounds=2", "model.use_au_branch=false"])
    with pytest.raises(ConfigError, match="has none"):
        stage1_settings(cfg, fl_settings_from_config(cfg))
    cfg = load_config(ROOT / "configs" / "fl_synthetic.py", ["fl.pretrain_rounds=2", "fl.pretrain_mode=shared"])
    with pytest.raises(ConfigError, match="pretrain_mode 'shared'"):
        stage1_settings(cfg, fl_settings_from_config(cfg))
    cfg = load_config(ROOT / "configs" / "fl_synthetic.py", ["fl.pretrain_rounds=2"])
    s1 = stage1_settings(cfg, fl_settings_from_config(cfg))
    assert s1.rounds == 2 and s1.train.alpha == (0.0, 1.0, 1.0) and s1.train.class_balance == "none"
