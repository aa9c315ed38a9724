"""Leave one source dataset out: a fold never trains on a subject, an AU label
(stage 1, AU positive weights) or a prior D of the dataset it tests; and the draws
statistics that compare arms trained for several seeds."""
import json
from pathlib import Path

import numpy as np
import pytest

from fedpsyau_jax.config_loading import load_config
from fedpsyau_jax.network.priors import cooccurrence_prior
from fedpsyau_jax.training.au_pretraining import plan_pretraining
from fedpsyau_jax.training.metrics import draws_bootstrap
from fedpsyau_jax.training.protocols import fold_prior, leave_dataset_out_folds, make_folds

ROOT = Path(__file__).resolve().parent.parent


def _three_sources():
    subjects = np.repeat([f"s{i:02d}" for i in range(9)], 4)
    datasets = np.repeat(["casme2", "samm", "smic"] * 3, 4)
    return subjects, datasets


def test_one_fold_per_dataset_trains_on_the_others_only():
    subjects, datasets = _three_sources()
    folds = make_folds("leave_dataset_out", subjects, datasets=datasets)
    assert [f.name for f in folds] == ["casme2", "samm", "smic"]
    for f in folds:
        assert set(datasets[f.test_idx]) == {f.name}
        assert f.name not in set(datasets[f.train_idx])
        assert not set(subjects[f.train_idx]) & set(subjects[f.test_idx])
        assert len(f.train_idx) + len(f.test_idx) == len(subjects)
        assert f.test_subjects == tuple(sorted(set(subjects[f.test_idx])))


def test_refuses_one_dataset_and_a_subject_in_two():
    subjects, datasets = _three_sources()
    with pytest.raises(ValueError, match="at least 2 source datasets"):
        leave_dataset_out_folds(subjects, np.full(len(subjects), "casme2"))
    shared = subjects.copy()
    shared[datasets == "samm"] = "s00"  # s00 also codes for a casme2 subject
    with pytest.raises(ValueError, match="subject 's00' occurs in several datasets"):
        leave_dataset_out_folds(shared, datasets)


def test_fold_prior_and_stage1_never_see_the_test_dataset():
    subjects, datasets = _three_sources()
    rng = np.random.default_rng(0)
    au = (rng.random((len(subjects), 12)) < 0.3).astype(np.float32)
    au[datasets == "smic"] = 0
    au_mask = np.repeat(np.where(datasets == "smic", 0.0, 1.0)[:, None], 12, 1).astype(np.float32)
    au[datasets == "casme2", 0] = 1  # AU co-occurrence only the casme2 rows show
    au[datasets == "casme2", 1] = 1
    folds = make_folds("leave_dataset_out", subjects, datasets=datasets)
    for f in folds:
        d = fold_prior("fold_train", au, au_mask, f.train_idx)
        np.testing.assert_allclose(d, cooccurrence_prior(au[f.train_idx], au_mask[f.train_idx]))
    held_casme2 = fold_prior("fold_train", au, au_mask, folds[0].train_idx)
    assert not np.allclose(held_casme2, fold_prior("fold_train", au, au_mask, np.arange(len(au))))
    # stage 1, one model per fold or k shared part models: no fold may take a model
    # that trained on (or chose thresholds on) its test dataset's rows
    for k in (0, 3):
        plan = plan_pretraining(folds, subjects, au_mask, val_fraction=0.25, seed=0, subject_folds=k)
        for f in folds:
            pre = plan.folds[plan.of_fold[f.index]]
            assert not np.isin(pre.train_idx, f.test_idx).any(), (k, f.name)
            assert not np.isin(plan.holdout_rows(f.index, subjects), f.test_idx).any(), (k, f.name)


@pytest.fixture(scope="module")
def ldo_run(tmp_path_factory):
    from fedpsyau_jax import api

    cfg = load_config(
        str(ROOT / "configs" / "synthetic_demo.py"),
        [
            "protocol.kind=leave_dataset_out",
            "data.kwargs.num_subjects=6",
            "data.kwargs.samples_per_subject=6",
            "data.kwargs.num_sources=3",
            "data.kwargs.au_label_fraction=0.67",
            "train.epochs=1",
            "train.batch_size=8",
            "train.eval_batch_size=8",
            "train.au_pos_weight=balanced",
            "pretrain.epochs=1",
            "model.gat_dropout=0.0",
            "model.au_head_dropout=0.0",
            "export.final_model=none",
        ],
    )
    wd = tmp_path_factory.mktemp("ldo") / "run"
    summary = api.train(cfg, wd, verbose=False, show_progress=False)
    return cfg, wd, summary


def test_leave_dataset_out_run_keeps_each_test_dataset_out(ldo_run):
    from fedpsyau_jax.training.exported_model import read_model
    from fedpsyau_jax.training.run_inputs import load_samples
    from fedpsyau_jax.training.run_logging import read_jsonl

    cfg, wd, summary = ldo_run
    samples = load_samples(cfg)
    assert sorted(summary["per_dataset"]) == ["synthetic_a", "synthetic_b", "synthetic_c"]
    assert summary["pooled"]["num_samples"] == len(samples)  # every sample tested once
    folds = sorted(p for p in (wd / "folds").iterdir())
    assert [p.name for p in folds] == ["000_synthetic_a", "001_synthetic_b", "002_synthetic_c"]
    held_out = next(r for r in read_jsonl(wd / "metrics.jsonl") if r["event"] == "pretrain_done")["held_out"]
    for k, fd in enumerate(folds):
        test_ds = fd.name.split("_", 1)[1]
        pred = np.load(fd / "predictions.npz")
        assert set(samples.dataset[pred["test_idx"]]) == {test_ds}
        train = np.flatnonzero(samples.dataset != test_ds)
        _, variables, _ = read_model(fd / "model")
        np.testing.assert_allclose(
            np.asarray(variables["priors"]["D"]),
            cooccurrence_prior(samples.au[train], samples.au_mask[train]),
            atol=1e-6,
        )
        # the stage-1 model of this fold chose its thresholds on training subjects only
        pre = [v for name, v in held_out.items() if name.endswith(test_ds)]
        assert pre and not set(pre[0]) & set(samples.subject[samples.dataset == test_ds])
    for pre in (wd / "au_pretrain" / "folds").iterdir():
        outer_ds = pre.name.rsplit("_", 1)[1]
        rows = np.load(pre / "predictions.npz")["test_idx"]
        assert f"synthetic_{outer_ds}" not in set(samples.dataset[rows])


def test_report_verb_reads_a_leave_dataset_out_run(ldo_run, capsys):
    from fedpsyau_jax.cli import main

    _, wd, _ = ldo_run
    assert main(["report", str(wd), "--no-probe", "--replicates", "50", "--au-replicates", "20"]) == 0
    out = capsys.readouterr().out
    assert "leave_dataset_out" in out and "synthetic_b" in out


# ------------------------------------------------------------------ draws statistics
def test_draws_bootstrap_is_the_mean_over_draws_with_a_wider_interval_than_one_draw():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1, 2], 40)
    subjects = np.repeat(np.arange(20), 6)
    draws = np.stack([np.where(rng.random(len(y)) < acc, y, (y + 1) % 3) for acc in (0.55, 0.7, 0.85)])
    s = draws_bootstrap(y, draws, subjects, 3, n=400)
    singles = [draws_bootstrap(y, d[None], subjects, 3, n=400) for d in draws]
    assert s["uf1"] == pytest.approx(np.mean([x["uf1"] for x in singles]))
    assert s["uf1_min"] == pytest.approx(min(x["uf1"] for x in singles))
    assert s["draws"] == 3 and s["uf1_sd"] > 0.05
    # draw-to-draw spread widens the interval beyond the subjects' alone
    width = lambda r: r["uf1_ci95"][1] - r["uf1_ci95"][0]
    assert width(s) > width(draws_bootstrap(y, np.repeat(draws[1:2], 3, 0), subjects, 3, n=400))


def test_paired_draws_difference_and_its_sign():
    rng = np.random.default_rng(1)
    y = np.tile([0, 1, 2], 50)
    subjects = np.repeat(np.arange(25), 6)
    good = np.stack([np.where(rng.random(len(y)) < 0.9, y, (y + 1) % 3) for _ in range(4)])
    bad = np.stack([np.where(rng.random(len(y)) < 0.5, y, (y + 2) % 3) for _ in range(4)])
    d = draws_bootstrap(y, good, subjects, 3, n=300, preds_b=bad)
    assert d["paired"] and d["uf1"] > 0.2 and d["uf1_ci95"][0] > 0 and d["share_above_zero"] == 1.0
    same = draws_bootstrap(y, good, subjects, 3, n=300, preds_b=good)
    assert same["uf1"] == 0 and same["uf1_ci95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="equal shapes"):
        draws_bootstrap(y, good, subjects, 3, preds_b=bad[:3])


def test_draws_markdown_pairs_arms_by_seed(ldo_run, tmp_path):
    import shutil

    from fedpsyau_jax.training.draws_report import draws_markdown

    _, wd, _ = ldo_run
    runs = []
    for seed in (0, 1):  # two "draws": the same run under two seeds, one of them flipped
        dst = tmp_path / f"full_s{seed}"
        shutil.copytree(wd, dst)
        cfg = json.loads((dst / "config.json").read_text())
        cfg["seed"] = seed
        (dst / "config.json").write_text(json.dumps(cfg))
        runs.append(dst)
    text = draws_markdown({"full": runs, "copy": runs[:1]}, vs="full", replicates=50)
    assert "| full | 2 |" in text and "| copy | 1 |" in text
    assert "| full − copy | 1 | +0.000 [+0.000, +0.000]" in text
