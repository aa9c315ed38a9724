"""Metrics (UF1/UAR/confusion) and masked losses."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedpsyau_jax.training.losses import fedpsyau_loss, masked_au_bce, proximal_term
from fedpsyau_jax.training.metrics import classification_scores, confusion_matrix


def test_confusion_and_scores_hand_computed():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    s = classification_scores(y_true, y_pred, 3)
    f1 = [2 * 2 / (4 + 0 + 1), 2 * 1 / (2 + 1 + 1), 2 * 1 / (2 + 1 + 0)]
    assert s["uf1"] == pytest.approx(np.mean(f1))
    assert s["uar"] == pytest.approx(np.mean([2 / 3, 1 / 2, 1]))
    assert s["absent_classes"] == []


def test_absent_class_is_excluded_and_reported():
    # Class 2 never occurs in the ground truth but is predicted once.
    y_true = [0, 0, 1, 1]
    y_pred = [0, 2, 1, 1]
    s = classification_scores(y_true, y_pred, 3)
    assert s["absent_classes"] == [2]
    f1_0 = 2 * 1 / (2 + 0 + 1)
    f1_1 = 1.0
    assert s["uf1"] == pytest.approx((f1_0 + f1_1) / 2)
    assert s["uar"] == pytest.approx((0.5 + 1.0) / 2)


def test_confusion_rejects_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 3], [0, 1], 3)


def _outputs(b=4, c=3, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return (jax.random.normal(k1, (b, c)), jax.random.normal(k2, (b, 12)), jax.random.normal(k3, (b, 12)))


def test_masked_aus_contribute_nothing():
    outs = _outputs()
    au = (jax.random.uniform(jax.random.key(5), (4, 12)) > 0.5).astype(jnp.float32)
    mask = jnp.zeros((4, 12)).at[:, :4].set(1.0)
    batch = {"label": jnp.array([0, 1, 2, 0]), "au": au, "au_mask": mask}
    l1, _ = fedpsyau_loss(outs, batch)
    # Change the logits and targets of masked entries only: the loss must not move.
    outs2 = (outs[0], outs[1].at[:, 4:].add(7.0), outs[2].at[:, 4:].add(-3.0))
    batch2 = dict(batch, au=au.at[:, 4:].set(1.0 - au[:, 4:]))
    l2, _ = fedpsyau_loss(outs2, batch2)
    assert float(l1) == pytest.approx(float(l2), rel=1e-6)
    # Gradient w.r.t. masked logits is exactly zero.
    g = jax.grad(lambda z: masked_au_bce(z, au, mask, jnp.ones(4)))(outs[1])
    assert np.all(np.asarray(g[:, 4:]) == 0) and np.any(np.asarray(g[:, :4]) != 0)


def test_all_unknown_au_labels_give_finite_loss_equal_to_weighted_ce():
    outs = _outputs()
    batch = {"label": jnp.array([0, 1, 2, 0]), "au": jnp.ones((4, 12)), "au_mask": jnp.zeros((4, 12))}
    loss, parts = fedpsyau_loss(outs, batch)
    assert np.isfinite(float(loss))
    assert float(parts["bce_afe"]) == 0.0 and float(parts["bce_gat"]) == 0.0
    assert float(loss) == pytest.approx(0.2 * float(parts["ce"]), rel=1e-6)
    g = jax.grad(lambda o: fedpsyau_loss((outs[0], o, outs[2]), batch)[0])(outs[1])
    assert np.all(np.isfinite(np.asarray(g)))


def test_example_mask_removes_padded_examples():
    outs = _outputs(b=4)
    batch = {"label": jnp.array([0, 1, 2, 0]), "au": jnp.ones((4, 12)), "au_mask": jnp.ones((4, 12))}
    mask = jnp.array([1.0, 1.0, 0.0, 0.0])
    full, _ = fedpsyau_loss(tuple(o[:2] for o in outs), {k: v[:2] for k, v in batch.items()})
    padded, _ = fedpsyau_loss(outs, batch, example_mask=mask)
    assert float(full) == pytest.approx(float(padded), rel=1e-6)


def test_proximal_term_is_squared_norm():
    p = {"a": jnp.array([1.0, 2.0]), "b": {"c": jnp.array([[3.0]])}}
    q = {"a": jnp.array([0.0, 0.0]), "b": {"c": jnp.array([[1.0]])}}
    assert float(proximal_term(p, q, 0.5)) == pytest.approx(0.25 * (1 + 4 + 4))


def test_au_detection_f1_on_known_entries_only():
    from fedpsyau_jax.training.metrics import au_detection_scores
    t = np.array([[1, 0], [1, 1], [0, 1], [1, 0]], np.float32)
    m = np.array([[1, 1], [1, 1], [1, 0], [1, 1]], np.float32)     # sample 2's AU b unknown
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.9], [0.6, 0.7]])
    s = au_detection_scores(t, m, p, au_names=["a", "b"])
    # a: TP 2 (s0, s3), FN 1 (s1), FP 1 (s2) -> 4/6; b: TP 1 (s1), FP 1 (s3) -> 2/3
    assert s["f1_per_au"]["a"] == pytest.approx(4 / 6) and s["f1_per_au"]["b"] == pytest.approx(2 / 3)
    assert s["mean_f1"] == pytest.approx((4 / 6 + 2 / 3) / 2)
    # AUC on known entries: a: positives 0.9, 0.2, 0.6 vs negative 0.7 -> 1 of 3 pairs won
    assert s["auc_per_au"]["a"] == pytest.approx(1 / 3)
    # b (known for s0, s1, s3): positive 0.8 vs negatives 0.1, 0.7 -> 1.0
    assert s["auc_per_au"]["b"] == pytest.approx(1.0)


def test_subject_bootstrap_interval_and_paired_difference():
    from fedpsyau_jax.training.metrics import subject_bootstrap
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(30), 5)
    y = rng.integers(0, 3, 150)
    good = np.where(rng.random(150) < 0.8, y, (y + 1) % 3)
    bad = np.where(rng.random(150) < 0.5, y, (y + 1) % 3)
    a = subject_bootstrap(y, good, subjects, 3, n=300)
    assert a["uf1_ci95"][0] < a["uf1"] < a["uf1_ci95"][1] and a["uf1_ci95"][1] - a["uf1_ci95"][0] < 0.3
    d = subject_bootstrap(y, good, subjects, 3, n=300, y_pred_b=bad)
    assert d["paired"] and d["uf1_ci95"][0] > 0                      # clearly better: interval above 0
    same = subject_bootstrap(y, good, subjects, 3, n=300, y_pred_b=good)
    assert same["uf1_ci95"] == [0.0, 0.0]


def test_a_static_zero_loss_weight_drops_its_term_from_the_graph():
    """α = (0, 1, 1) as Python numbers (AU pre-training) leaves the CE out of the loss,
    so nothing flows back into the emotion logits (the DSI's backward is never built):
    same value as 0·CE for finite logits, and finite where 0·CE would be NaN."""
    import jax
    import jax.numpy as jnp

    from fedpsyau_jax.training.losses import fedpsyau_loss

    rng = np.random.default_rng(0)
    batch = {
        "label": jnp.asarray([0, 1, 2, 1]),
        "au": jnp.asarray(rng.random((4, 12)) < 0.3, jnp.float32),
        "au_mask": jnp.ones((4, 12), jnp.float32),
    }
    emo, gat, afe = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in ((4, 3), (4, 12), (4, 12)))
    static = lambda e: fedpsyau_loss((e, gat, afe), batch, alpha=(0.0, 1.0, 1.0))[0]
    traced = lambda e, a: fedpsyau_loss((e, gat, afe), batch, alpha=(a, 1.0, 1.0))[0]
    assert float(static(emo)) == float(traced(emo, jnp.float32(0.0)))
    assert float(static(emo)) > 0
    assert not np.any(np.asarray(jax.grad(static)(emo)))
    bad = emo.at[0, 0].set(jnp.inf)
    assert np.isfinite(float(static(bad))) and np.isnan(float(traced(bad, jnp.float32(0.0))))


def test_within_subject_auc_ignores_score_scale_between_subjects():
    from fedpsyau_jax.training.metrics import au_detection_scores, au_within_subject_auc

    # Each subject's own positives outrank its negatives, but subject b's model scores
    # everything 0.5 higher: the pooled AUC drops, the within-subject AUC does not.
    subj = np.array(["a", "a", "a", "b", "b", "b"])
    t = np.array([[1], [0], [0], [1], [0], [0]], np.float32)
    p = np.array([[0.3], [0.2], [0.1], [0.8], [0.7], [0.6]])
    m = np.ones_like(t)
    w = au_within_subject_auc(t, m, p, subj)
    assert w["mean_auc"] == 1.0 and w["pairs_per_au"]["0"] == 4
    assert au_detection_scores(t, m, p)["mean_auc"] < 0.8
    # Reversed within each subject -> 0; a masked (unknown) entry is not a pair; ties count 1/2.
    assert au_within_subject_auc(t, m, 1.0 - p, subj)["mean_auc"] == 0.0
    m2 = m.copy()
    m2[0, 0] = 0  # subject a loses its only positive
    assert au_within_subject_auc(t, m2, p, subj)["pairs_per_au"]["0"] == 2
    assert au_within_subject_auc(t, m, np.full_like(p, 0.5), subj)["mean_auc"] == 0.5
    # An AU without any within-subject pair is NaN and left out of the mean.
    t2 = np.concatenate([t, np.zeros_like(t)], 1)
    w2 = au_within_subject_auc(t2, np.ones_like(t2), np.concatenate([p, p], 1), subj)
    assert np.isnan(w2["auc_per_au"]["1"]) and w2["mean_auc"] == 1.0


def test_au_paired_bootstrap_is_zero_for_equal_detectors_and_signs_a_better_one():
    from fedpsyau_jax.training.metrics import au_subject_bootstrap

    rng = np.random.default_rng(0)
    subj = np.repeat(np.arange(12).astype(str), 6)
    t = (rng.random((72, 3)) < 0.3).astype(np.float32)
    m = np.ones_like(t)
    good = np.clip(t * 0.6 + rng.random(t.shape) * 0.5, 0, 1)      # positives mostly above 0.5
    noise = rng.random(t.shape)
    same = au_subject_bootstrap(t, m, good, subj, n=50, au_prob_b=good)
    assert same["paired"] and same["mean_auc"] == 0.0
    assert same["mean_auc_ci95"] == [0.0, 0.0] and same["mean_f1_ci95"] == [0.0, 0.0]
    better = au_subject_bootstrap(t, m, good, subj, n=200, au_prob_b=noise)
    assert better["mean_auc"] > 0.2 and better["mean_auc_ci95"][0] > 0 and better["mean_f1"] > 0
    worse = au_subject_bootstrap(t, m, noise, subj, n=200, au_prob_b=good)
    assert worse["mean_auc"] == -better["mean_auc"] and worse["mean_auc_ci95"][1] < 0
    # unpaired: the detector's own figures, same resamples
    alone = au_subject_bootstrap(t, m, good, subj, n=200)
    assert not alone["paired"] and alone["mean_auc"] - au_subject_bootstrap(t, m, noise, subj, n=200)["mean_auc"] == \
        pytest.approx(better["mean_auc"])
