"""Label-free alignment of separately trained AU heads and the combined score
(``fedpsyau_jax.training.au_alignment``, issue 26)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from fedpsyau_jax.training.au_alignment import (
    STATS_FILE,
    aligned_detectors,
    combine_heads,
    combined_decisions,
    reference_rows,
    reference_stats,
    standardise,
)
from fedpsyau_jax.training.metrics import au_detection_scores, au_within_subject_auc

from conftest import SHARED_STAGE1  # noqa: E402


def test_reference_units_have_zero_mean_and_unit_spread_and_a_constant_au_keeps_its_scale():
    rng = np.random.default_rng(0)
    ref = rng.normal(3.0, 2.0, (50, 12))
    ref[:, 5] = 1.5  # constant over the reference
    st = reference_stats(ref)
    z = standardise(ref, st)
    np.testing.assert_allclose(np.delete(z.mean(0), 5), 0, atol=1e-12)
    np.testing.assert_allclose(np.delete(z.std(0), 5), 1, atol=1e-12)
    assert st[1, 5] == 1.0 and np.all(z[:, 5] == 0)
    with pytest.raises(ValueError, match="reference logits"):
        reference_stats(ref[:1])


def test_alignment_removes_the_between_model_scale_that_lowers_a_pooled_auc():
    """Three 'stage-1 parts' rank their subjects' AUs equally well but put their logits on
    different affine scales. Pooled raw, the AUC falls well below the within-subject one;
    standardised by each model's logits on a common unlabelled reference it comes back
    to it. (An identity or a wrongly signed map fails this.)"""
    rng = np.random.default_rng(1)
    n_sub, per = 30, 8
    subject = np.repeat(np.arange(n_sub), per)
    y = (rng.random((n_sub * per, 12)) < 0.2).astype(np.float32)
    mask = np.ones_like(y)
    signal = 2.0 * y + rng.normal(0, 1, y.shape)
    ref_signal = 2.0 * (rng.random((200, 12)) < 0.2) + rng.normal(0, 1, (200, 12))
    part = subject % 3
    scale, shift = np.array([0.3, 1.0, 3.0]), np.array([-4.0, 0.0, 3.0])
    raw = signal * scale[part][:, None] + shift[part][:, None]
    aligned = np.empty_like(raw)
    for p in range(3):
        st = reference_stats(ref_signal * scale[p] + shift[p])
        aligned[part == p] = standardise(raw[part == p], st)
    pooled_raw = au_detection_scores(y, mask, raw)["mean_auc"]
    pooled_aligned = au_detection_scores(y, mask, aligned)["mean_auc"]
    within = au_within_subject_auc(y, mask, raw, subject.astype(str))["mean_auc"]
    oracle = au_detection_scores(y, mask, signal)["mean_auc"]
    assert pooled_raw < oracle - 0.05
    assert abs(pooled_aligned - oracle) < 0.01
    assert abs(au_within_subject_auc(y, mask, aligned, subject.astype(str))["mean_auc"] - within) < 1e-9


def test_combined_score_and_decisions_follow_the_written_rule():
    zg, za = np.array([[2.0, -1.0]]), np.array([[0.0, 3.0]])
    np.testing.assert_allclose(combine_heads(zg, za), [[1.0, 1.0]])
    # mean probability against the mean of the two heads' thresholds: (0.9 + 0.1) / 2 =
    # 0.5 >= (0.6 + 0.3) / 2 although head A alone says no (0.1 < 0.3); (0.2 + 0.3) / 2 =
    # 0.25 < 0.3 although head A alone says yes (0.3 >= 0.3)
    d = combined_decisions(np.array([[0.9, 0.2]]), np.array([[0.1, 0.3]]), np.array([0.6, 0.3]), np.array([0.3, 0.3]))
    np.testing.assert_array_equal(d, [[1, 0]])
    assert d.dtype == np.int8


def test_a_reference_never_holds_a_subject_its_model_held_out():
    subject = np.array(["a", "a", "b", "c", "c", "d"])
    au_mask = np.ones((6, 12), np.float32)
    au_mask[[1, 2, 4, 5]] = 0  # unlabelled rows: a, b, c, d
    np.testing.assert_array_equal(reference_rows(au_mask, subject, ["a", "c"]), [2, 5])


def _fake_run(wd: Path, subject, parts: dict[str, list[int]], stats: dict | None):
    for name, rows in parts.items():
        d = wd / "au_pretrain" / "folds" / name
        d.mkdir(parents=True)
        np.savez(d / "predictions.npz", test_idx=np.array(rows))
    if stats is not None:
        (wd / "au_pretrain" / STATS_FILE).write_text(json.dumps(stats))


def test_aligned_detectors_of_a_stored_run(tmp_path):
    """Each fold's logits are standardised by the statistics of the part holding its test
    subject; the aligned heads keep the run's own decisions; the combined score is the
    mean of the standardised logits; a run without statistics gives nothing; statistics
    missing for a part are an error naming the file."""
    subject = np.array(["s1", "s1", "s2", "s3"])
    st = {"000_pre000_part0": {"gat": [[0.0] * 12, [1.0] * 12], "afe": [[1.0] * 12, [2.0] * 12]},
          "001_pre001_part1": {"gat": [[-1.0] * 12, [0.5] * 12], "afe": [[0.0] * 12, [1.0] * 12]}}
    preds = []
    for rows in ([0, 1], [2], [3]):
        pg = np.full((len(rows), 12), 0.7, np.float32)
        preds.append({"test_idx": np.array(rows), "au_prob_gat": pg, "au_prob_afe": pg * 0.5,
                      "au_threshold_gat": np.full(12, 0.6), "au_threshold_afe": np.full(12, 0.4)})
    assert aligned_detectors(tmp_path, subject, preds) == {}
    _fake_run(tmp_path, subject, {"000_pre000_part0": [0, 1, 2], "001_pre001_part1": [3]}, st)
    out = aligned_detectors(tmp_path, subject, preds)
    lg, la = np.log(0.7 / 0.3), np.log(0.35 / 0.65)
    score, dec = out["combined (both heads, reference-aligned)"]
    zg = np.array([lg, lg, lg, (lg + 1) / 0.5])
    za = np.array([(la - 1) / 2] * 3 + [la])
    np.testing.assert_allclose(np.log(score[:, 0] / (1 - score[:, 0])), (zg + za) / 2, rtol=1e-4)
    np.testing.assert_array_equal(dec[:, 0], [1, 1, 1, 1])  # (0.7 + 0.35) / 2 >= (0.6 + 0.4) / 2
    np.testing.assert_array_equal(out["head A (AFE), reference-aligned"][1][:, 0], [0, 0, 0, 0])  # 0.35 < 0.4
    del st["001_pre001_part1"]
    (tmp_path / "au_pretrain" / STATS_FILE).write_text(json.dumps(st))
    with pytest.raises(ValueError, match=r"reference_stats.json: no statistics for stage-1 parts \['001_pre001_part1'\]"):
        aligned_detectors(tmp_path, subject, preds)
    (tmp_path / "au_pretrain" / STATS_FILE).write_text("{ truncated")
    with pytest.raises(ValueError, match=r"reference_stats.json: not valid JSON"):
        aligned_detectors(tmp_path, subject, preds)


@SHARED_STAGE1
def test_train_writes_reference_statistics_of_its_shared_stage1_models(shared_stage1_run):
    """``fedpsyau train`` with shared stage-1 parts and subjects without AU labels writes
    ``au_pretrain/reference_stats.json``: per part and head, the mean and spread of the
    stage-1 model's logits over the unlabelled samples (recomputed here from the saved
    model), and ``aligned_detectors`` reads it for the run's folds. The run evaluates
    with mirror averaging (``train.eval_flip``, the composite recipe's setting): its
    stored test outputs and its statistics are those of the mirror-averaged models."""
    from fedpsyau_jax import api
    from fedpsyau_jax.training.au_calibration import logit
    from fedpsyau_jax.training.fold_training import MODEL_CHECKPOINT

    cfg, wd, _, _ = shared_stage1_run  # 5 subjects, a fifth of the samples without AU labels
    stats = json.loads((wd / "au_pretrain" / STATS_FILE).read_text())
    samples = api.load_samples(cfg)
    ref = np.flatnonzero(samples.au_mask.sum(1) == 0)
    assert len(ref) == 6 and sorted(stats) == ["000_pre000_part0", "001_pre001_part1"]
    for name, st in stats.items():
        model, v, meta = api.load_model(wd / "au_pretrain" / "folds" / name / MODEL_CHECKPOINT)
        batch = {k: getattr(samples, k)[ref] for k in ("flow128", "flow28", "landmarks")}
        z = logit(api.model_probabilities(model, v, meta, batch)[1])
        np.testing.assert_allclose(st["gat"][0], z.mean(0), atol=2e-3)
        np.testing.assert_allclose(st["gat"][1], z.std(0), rtol=2e-2, atol=1e-3)
    _, _, folds, preds = api.run_predictions(wd)
    from fedpsyau_jax.training.fold_training import fold_dir

    f, p = folds[0], preds[0]
    model, v, meta = api.load_model(fold_dir(wd, f) / MODEL_CHECKPOINT)
    batch = {k: getattr(samples, k)[p["test_idx"]] for k in ("flow128", "flow28", "landmarks")}
    emo, au = api.model_probabilities(model, v, meta, batch)  # mirror-averaged: the run's setting
    np.testing.assert_allclose(p["prob"], emo, atol=1e-4)
    np.testing.assert_allclose(p["au_prob_gat"], au, atol=1e-4)
    # and the plain model differs from what was stored (else the check above proves nothing)
    variables = {"params": v["params"], "batch_stats": v["batch_stats"], "priors": v["priors"]}
    _, plain_gat, _ = api.apply_fn(model, api.final_beta(meta))(variables, batch)
    assert np.max(np.abs(np.asarray(jax.nn.sigmoid(plain_gat)) - p["au_prob_gat"])) > 1e-3
    out = aligned_detectors(wd, samples.subject, preds)
    assert set(out) == {"head B (GAT), reference-aligned", "head A (AFE), reference-aligned",
                        "combined (both heads, reference-aligned)"}
