"""Protocol splits, per-fold priors (training subjects only), pooling, chunking (no compilation)."""
import numpy as np
import pytest

from fedpsyau_jax.training import protocols
from fedpsyau_jax.training.fold_training import chunk_folds, fold_epoch_plan, steps_per_epoch
from fedpsyau_jax.training.settings import TrainSettings
from fedpsyau_jax.network.priors import cooccurrence_prior, reference_prior


def _subjects():
    return np.array(["s3", "s1", "s2", "s1", "s3", "s2", "s4", "s4", "s5", "s1"])


def test_loso_folds_cover_each_sample_once_and_are_subject_disjoint():
    subj = _subjects()
    folds = protocols.loso_folds(subj)
    assert [f.name for f in folds] == ["s1", "s2", "s3", "s4", "s5"]
    tested = np.concatenate([f.test_idx for f in folds])
    assert sorted(tested.tolist()) == list(range(len(subj)))
    for f in folds:
        assert set(subj[f.test_idx]) == {f.name}
        assert f.name not in set(subj[f.train_idx])
        assert len(f.train_idx) + len(f.test_idx) == len(subj)


def test_kfold_subject_independent_deterministic_seed():
    subj = np.repeat([f"sub{i:03d}" for i in range(23)], 3)
    a = protocols.kfold_subject_folds(subj, 10, shuffle=True, seed=1)
    b = protocols.kfold_subject_folds(subj, 10, shuffle=True, seed=1)
    c = protocols.kfold_subject_folds(subj, 10, shuffle=True, seed=2)
    assert len(a) == 10
    assert [f.test_subjects for f in a] == [f.test_subjects for f in b]
    assert [f.test_subjects for f in a] != [f.test_subjects for f in c]
    seen = [s for f in a for s in f.test_subjects]
    assert sorted(seen) == sorted(set(subj)) and len(seen) == 23
    for f in a:
        assert not set(subj[f.train_idx]) & set(f.test_subjects)
        assert 2 <= len(f.test_subjects) <= 3
    with pytest.raises(ValueError, match="k-fold"):
        protocols.kfold_subject_folds(subj, 30)
    with pytest.raises(ValueError, match="unknown protocol"):
        protocols.make_folds("holdout", subj)


def test_fold_prior_uses_training_subjects_only():
    rng = np.random.default_rng(0)
    subj = _subjects()
    au = (rng.random((len(subj), 12)) < 0.4).astype(np.float32)
    mask = np.ones_like(au)
    fold = protocols.loso_folds(subj)[0]          # tests s1
    d = protocols.fold_prior("fold_train", au, mask, fold.train_idx)
    np.testing.assert_allclose(d, cooccurrence_prior(au[fold.train_idx]))
    np.testing.assert_allclose(d.sum(axis=1), 1.0, atol=1e-6)
    # changing the test subject's AU labels must not change the fold's D ...
    au2 = au.copy()
    au2[fold.test_idx] = 1.0 - au2[fold.test_idx]
    np.testing.assert_array_equal(protocols.fold_prior("fold_train", au2, mask, fold.train_idx), d)
    # ... while changing a training subject's labels does (the test above can fail)
    au3 = au.copy()
    au3[fold.train_idx[0]] = 1.0 - au3[fold.train_idx[0]]
    assert not np.allclose(protocols.fold_prior("fold_train", au3, mask, fold.train_idx), d)
    np.testing.assert_array_equal(protocols.fold_prior("reference_dfme", au, mask, fold.train_idx),
                                  reference_prior())
    with pytest.raises(ValueError, match="prior source"):
        protocols.fold_prior("nope", au, mask, fold.train_idx)


def test_pooled_report_pools_then_scores_and_breaks_down():
    labels = np.array([0, 1, 2, 0, 1, 2])
    preds = np.array([0, 1, 1, 0, 2, 2])
    fold_of = np.array([0, 0, 0, 1, 1, 1])
    ds = np.array(["a", "a", "b", "b", "b", "b"])
    r = protocols.pooled_report(labels, preds, fold_of, ds, ["f0", "f1"], ("n", "p", "s"))
    assert r["pooled"]["confusion"] == [[2, 0, 0], [0, 1, 1], [0, 1, 1]]
    assert r["pooled"]["uar"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert r["pooled"]["uf1"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert set(r["per_dataset"]) == {"a", "b"} and r["per_dataset"]["a"]["num_samples"] == 2
    assert r["per_dataset"]["a"]["absent_classes"] == [2]
    assert set(r["per_fold"]) == {"f0", "f1"}


def test_chunking_and_plans_depend_on_fold_only():
    folds = protocols.loso_folds(np.repeat(np.arange(10).astype(str), 3))
    chunks = chunk_folds(folds, 4)
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert [f.index for c in chunks for f in c] == list(range(10))
    labels = np.tile([0, 1, 2], 10)
    s = TrainSettings(batch_size=4, class_balance="oversample", seed=3)
    n = steps_per_epoch(s, folds, labels)
    a = fold_epoch_plan(s, folds[2], labels, 1, n)
    b = fold_epoch_plan(s, folds[2], labels, 1, n + 2)   # padding adds empty steps only
    np.testing.assert_array_equal(a[0], b[0][:n])
    assert b[1][n:].sum() == 0
    c = fold_epoch_plan(s, folds[2], labels, 2, n)
    assert not np.array_equal(a[0], c[0])                 # a new shuffle every epoch
    assert set(a[0][a[1] > 0].tolist()) <= set(folds[2].train_idx.tolist())


def test_inner_validation_never_touches_the_outer_test_subject():
    subjects = np.repeat([f"s{i:02d}" for i in range(20)], 3)
    datasets = np.where(np.arange(60) < 30, "a", "b")
    folds = protocols.make_folds("inner_val", subjects, split_seed=4, datasets=datasets, inner_outer=3,
                                 val_fraction=0.2)
    assert len(folds) == 3
    outers = {f.name.removesuffix("-val") for f in folds}
    assert len(outers) == 3
    for f in folds:
        outer = f.name.removesuffix("-val")
        used = set(subjects[f.train_idx]) | set(subjects[f.test_idx])
        assert outer not in used and len(used) == 19                  # everyone else, once
        assert not set(subjects[f.train_idx]) & set(subjects[f.test_idx])
        assert set(datasets[f.test_idx]) == {"a", "b"}                # every source dataset validated
        assert len(set(subjects[f.test_idx])) == 4                    # 20 % of 10 per dataset
    again = protocols.make_folds("inner_val", subjects, split_seed=4, datasets=datasets, inner_outer=3)
    assert [f.name for f in again] == [f.name for f in folds]
