"""LOSO runs end to end on a tiny synthetic config (flow-stream-only model: cheap to
compile): vectorised == sequential folds, same seed == same result, resume after a
crash == uninterrupted run, β restarts per fold, evaluate reproduces predictions."""
import json

import numpy as np
import pytest

from fedpsyau_jax import api
from fedpsyau_jax.training.checkpoints import CheckpointError
from fedpsyau_jax.config_loading import base_config
from fedpsyau_jax.training.fold_training import PREDICTIONS_FILE, RunHooks
from fedpsyau_jax.network.priors import beta_schedule
from fedpsyau_jax.training.run_logging import read_jsonl


def tiny_config(fold_chunk=1, seed=0):
    c = base_config()
    c.seed = seed
    c.data.name = "synthetic"
    c.data.kwargs.num_subjects = 4
    c.data.kwargs.samples_per_subject = 4
    c.data.kwargs.seed = 0
    c.model.use_au_branch = False
    c.train.epochs = 3
    c.train.batch_size = 4
    c.train.eval_batch_size = 4
    c.train.learning_rate = 1e-3
    c.train.beta_schedule = "linear"
    c.runtime.fold_chunk = fold_chunk
    return c


def _preds(workdir):
    return {p.parent.name: dict(np.load(p)) for p in sorted(workdir.glob(f"folds/*/{PREDICTIONS_FILE}"))}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    wd = tmp_path_factory.mktemp("seq")
    return wd, api.train(tiny_config(1), wd, show_progress=False, verbose=False)


def test_sequential_run_writes_everything(sequential):
    wd, summary = sequential
    assert summary["folds"] == 4 and summary["samples"] == 16
    assert 0.0 <= summary["pooled"]["uf1"] <= 1.0
    assert sum(map(sum, summary["pooled"]["confusion"])) == 16
    assert set(summary["per_dataset"]) == {"synthetic"}
    for f in ("summary.json", "confusion.png", "learning_curves.png", "metrics.jsonl", "config.json"):
        assert (wd / f).is_file(), f
    assert (wd / "final_model" / "metadata.json").is_file()
    assert len(_preds(wd)) == 5                      # 4 LOSO folds + the all-data model
    assert not (wd / "checkpoints").exists() or not any((wd / "checkpoints").iterdir())
    probs = np.concatenate([p["prob"] for p in _preds(wd).values() if len(p["prob"])])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_vectorised_folds_equal_sequential(sequential, tmp_path):
    wd, summary = sequential
    vec = api.train(tiny_config(fold_chunk=3), tmp_path, show_progress=False, verbose=False)
    assert vec["pooled"] == summary["pooled"]
    a, b = _preds(wd), _preds(tmp_path)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k]["pred"], b[k]["pred"])
        # Same keys, plans and init; only float32 summation order differs (vmapped
        # kernels), which Adam's normalised steps carry into the 3rd decimal.
        np.testing.assert_allclose(a[k]["prob"], b[k]["prob"], atol=5e-3)
    loss = lambda w: {(r["fold_index"], r["epoch"]): r["loss"] for r in read_jsonl(w / "metrics.jsonl")
                      if r["event"] == "epoch"}
    la, lb = loss(wd), loss(tmp_path)
    assert la.keys() == lb.keys() and len(la) == 15
    np.testing.assert_allclose([la[k] for k in la], [lb[k] for k in la], rtol=1e-4, atol=1e-4)


def test_same_seed_same_result_other_seed_differs(sequential, tmp_path):
    wd, summary = sequential
    again = api.train(tiny_config(1), tmp_path / "again", show_progress=False, verbose=False)
    assert again["pooled"] == summary["pooled"]
    for k, p in _preds(wd).items():
        np.testing.assert_array_equal(p["prob"], _preds(tmp_path / "again")[k]["prob"])
    api.train(tiny_config(1, seed=1), tmp_path / "other", show_progress=False, verbose=False)
    other = np.concatenate([p["prob"] for p in _preds(tmp_path / "other").values()])
    mine = np.concatenate([p["prob"] for p in _preds(wd).values()])
    assert not np.allclose(other, mine)


class Crash(RuntimeError):
    pass


def test_resume_after_crash_equals_uninterrupted(sequential, tmp_path):
    wd, summary = sequential
    calls = []

    def crash_mid_fold(folds, epoch, **_):
        calls.append((folds[0].index, epoch))
        if folds[0].index == 2 and epoch == 1:       # fold 2 is half trained (checkpoint of epoch 0 and 1)
            raise Crash("simulated kill")

    with pytest.raises(Crash):
        api.train(tiny_config(1), tmp_path, show_progress=False, verbose=False,
                  hooks=RunHooks(on_epoch=crash_mid_fold))
    assert len(_preds(tmp_path)) == 2                # folds 0 and 1 finished and stored
    resumed_calls = []
    hooks = RunHooks(on_epoch=lambda folds, epoch, **_: resumed_calls.append((folds[0].index, epoch)))
    resumed = api.train(tiny_config(1), tmp_path, show_progress=False, verbose=False, hooks=hooks)
    # finished folds are not recomputed; fold 2 continues after its last checkpoint (epoch 0)
    assert [c for c in resumed_calls if c[0] < 2] == []
    assert [e for f, e in resumed_calls if f == 2] == [1, 2]
    assert resumed["pooled"] == summary["pooled"]
    for k, p in _preds(wd).items():
        np.testing.assert_allclose(p["prob"], _preds(tmp_path)[k]["prob"], atol=1e-6)

    # a crash after a whole chunk (between folds) resumes as well
    wd2 = tmp_path / "between"

    def crash_after(ci):
        if ci == 0:
            raise Crash("after fold 0")
    with pytest.raises(Crash):
        api.train(tiny_config(1), wd2, show_progress=False, verbose=False, hooks=RunHooks(after_chunk=crash_after))
    assert api.train(tiny_config(1), wd2, show_progress=False, verbose=False)["pooled"] == summary["pooled"]


def test_changed_config_in_same_workdir_is_refused(sequential):
    wd, _ = sequential
    c = tiny_config(1)
    c.train.learning_rate = 2e-3
    with pytest.raises(CheckpointError, match="different config"):
        api.train(c, wd, show_progress=False, verbose=False)
    # fold_chunk may change on resume (it does not change results)
    api.train(tiny_config(4), wd, show_progress=False, verbose=False)


def test_beta_schedule_restarts_every_fold(sequential):
    wd, _ = sequential
    recs = [r for r in read_jsonl(wd / "metrics.jsonl") if r["event"] == "epoch"]
    expected = beta_schedule("linear", 3, 0.3)
    by_fold = {}
    for r in recs:
        by_fold.setdefault(r["fold_index"], {})[r["epoch"]] = r["beta"]
    assert len(by_fold) == 5
    for f, betas in by_fold.items():
        np.testing.assert_allclose([betas[e] for e in (1, 2, 3)], expected, atol=1e-7)


def test_evaluate_reproduces_stored_predictions(sequential, capsys):
    wd, summary = sequential
    from fedpsyau_jax.cli import main
    assert main(["evaluate", "--workdir", str(wd)]) == 0
    out = capsys.readouterr().out
    assert f"UF1 {summary['pooled']['uf1']:.4f}" in out
    ev = json.loads((wd / "evaluation.json").read_text())
    assert ev["matches_stored_predictions"] and ev["pooled"] == summary["pooled"]


def test_report_cli_recomputes_the_run_from_its_stored_predictions(sequential, capsys, tmp_path):
    """``fedpsyau report`` reads a run folder alone and prints its pooled scores (the
    same UF1 as the summary, now with a subject-bootstrap interval) and the confusion
    matrix, and writes the same text with ``--out``; a folder that is not a run is one
    line naming it."""
    wd, summary = sequential
    from fedpsyau_jax.cli import main
    out_file = tmp_path / "report.md"
    assert main(["report", str(wd), "--replicates", "50", "--no-probe", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert f"- pooled UF1 {summary['pooled']['uf1']:.4f} [" in out
    assert "| true \\ predicted |" in out and out_file.read_text().strip() == out.strip()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: no config.json" in err and len(err.strip().splitlines()) == 1


def test_train_cli_prints_summary(tmp_path, capsys):
    from fedpsyau_jax.cli import main
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    args = ["train", "--config", str(root / "configs" / "synthetic_demo.py"), "--workdir", str(tmp_path),
            "--no-progress"]
    for o in ("data.kwargs.num_subjects=4", "data.kwargs.samples_per_subject=4", "model.use_au_branch=false",
              "train.epochs=1", "train.batch_size=4", "train.eval_batch_size=4", "export.final_model=none"):
        args += ["--set", o]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pooled UF1" in out and "UAR" in out and str(tmp_path / "confusion.png") in out
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["train"]["epochs"] == 1 and cfg["model"]["use_au_branch"] is False


def test_exported_model_has_its_card(sequential):
    """The card api.train writes beside the exported model reports the run's own scores."""
    from fedpsyau_jax.model_card import config_hash
    wd, summary = sequential
    card = json.loads((wd / "final_model" / "metadata.json").read_text())["model_card"]
    assert card["metrics"]["uf1"] == pytest.approx(summary["pooled"]["uf1"])
    assert card["metrics"]["uf1_ci95"] == pytest.approx(summary["pooled_bootstrap"]["uf1_ci95"])
    assert card["training_data"]["samples"] == summary["samples"] and card["fixed_epochs"] == summary["epochs"]
    assert card["software"]["config_hash"] == config_hash(json.loads((wd / "config.json").read_text()))
    assert (wd / "final_model" / "MODEL_CARD.md").read_text().startswith("# Model card")


def test_fingerprint_ignores_how_often_a_run_saves():
    """``runtime.checkpoint_every`` may change between a start and its resume (it does not
    change results); the hash of a run that saved every epoch is the one it always was."""
    import dataclasses
    import hashlib
    import json

    from fedpsyau_jax.training.fold_training import settings_fingerprint
    from fedpsyau_jax.training.settings import TrainSettings

    s = TrainSettings(epochs=20, checkpoint_every=1)
    extra = {"n": 442}
    # the settings as they were before ``fold_rng`` and ``eval_flip`` existed
    before = {k: v for k, v in dataclasses.asdict(s).items() if k not in ("fold_rng", "eval_flip")}
    old_formula = hashlib.sha1(
        json.dumps({"settings": before, **extra}, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    assert settings_fingerprint(s, extra) == old_formula
    assert settings_fingerprint(dataclasses.replace(s, checkpoint_every=5), extra) == old_formula
    assert settings_fingerprint(dataclasses.replace(s, epochs=21), extra) != old_formula
    assert settings_fingerprint(dataclasses.replace(s, fold_rng="shared"), extra) != old_formula
    assert settings_fingerprint(dataclasses.replace(s, eval_flip=True), extra) != old_formula
    # options added later are left out at their old-behaviour default, at any depth
    pre = {"epochs": 20, "val_fraction": 0.2}
    before = settings_fingerprint(s, {"pretrain": pre})
    assert settings_fingerprint(s, {"pretrain": {**pre, "subject_folds": 0, "au_calibration": "thresholds"}}) == before
    assert settings_fingerprint(s, {"pretrain": {**pre, "subject_folds": 5}}) != before
    assert settings_fingerprint(s, {"pretrain": {**pre, "au_calibration": "platt"}}) != before
    data = {"name": "megc2019_composite", "kwargs": {}}
    before = settings_fingerprint(s, {"data": data})
    assert settings_fingerprint(s, {"data": {**data, "kwargs": {"landmark_frame": "apex"}}}) == before
    assert settings_fingerprint(s, {"data": {**data, "kwargs": {"landmark_frame": "flow"}}}) != before


def test_shared_fold_rng_gives_every_fold_the_same_random_streams():
    """``train.fold_rng=shared``: folds draw init, dropout and batch order from fold 0's
    streams (two folds with the same training rows get the same batches); per_fold:
    their own."""
    import dataclasses

    from fedpsyau_jax.core.errors import UserError
    from fedpsyau_jax.training.fold_training import fold_epoch_plan
    from fedpsyau_jax.training.settings import TrainSettings
    from fedpsyau_jax.training.protocols import Fold

    labels = np.arange(40) % 3
    a = Fold(3, "a", np.arange(40), np.zeros(0, np.int64), ())
    b = Fold(7, "b", np.arange(40), np.zeros(0, np.int64), ())
    per = TrainSettings(batch_size=8)
    shared = dataclasses.replace(per, fold_rng="shared")
    assert (per.rng_index(a), per.rng_index(b), shared.rng_index(a), shared.rng_index(b)) == (3, 7, 0, 0)
    same = [np.array_equal(fold_epoch_plan(st, a, labels, 2)[0], fold_epoch_plan(st, b, labels, 2)[0])
            for st in (per, shared)]
    assert same == [False, True]
    with pytest.raises(UserError, match="train.fold_rng 'same'"):
        TrainSettings(fold_rng="same")
