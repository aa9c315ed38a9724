"""Tests of the synthetic micro-expression generator (data_pipelines.synthetic)."""

import numpy as np
import pytest

from data_pipelines.optical_flow import optical_strain
from data_pipelines.synthetic import AU_BASIS, CLASS_NAMES_3, CLASS_NAMES_7, TEMPLATE_65, make_synthetic
from fedpsyau_jax.core.au_groups import AU_TO_NODE
from fedpsyau_jax.core.keypoints import REGION_SLICES
from fedpsyau_jax.core.sample_arrays import MESamples


@pytest.fixture(scope="module")
def ds3() -> MESamples:
    return make_synthetic(num_subjects=16, samples_per_subject=12, num_classes=3, seed=0)


@pytest.fixture(scope="module")
def ds7() -> MESamples:
    return make_synthetic(num_subjects=12, samples_per_subject=14, num_classes=7, seed=1,
                          au_label_fraction=0.5)


def _held_out_accuracy(ds: MESamples, n_train_subjects: int, steps: int = 300) -> tuple[float, float]:
    """Multinomial logistic regression (full-batch gradient descent, L2) on flow28;
    trains on the first subjects, returns (train accuracy, held-out-subject accuracy)."""
    X = ds.flow28.reshape(len(ds), -1).astype(np.float64)
    y = ds.label
    subjects = np.unique(ds.subject)
    tr = np.isin(ds.subject, subjects[:n_train_subjects])
    te = ~tr
    mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-6
    Xs = (X - mu) / sd
    C = ds.num_classes
    W, b = np.zeros((X.shape[1], C)), np.zeros(C)
    Y = np.eye(C)[y[tr]]
    for _ in range(steps):
        z = Xs[tr] @ W + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - Y) / tr.sum()
        W -= 0.5 * (Xs[tr].T @ g + 1e-3 * W)
        b -= 0.5 * g.sum(0)

    def acc(m):
        return float(((Xs[m] @ W + b).argmax(1) == y[m]).mean())
    return acc(tr), acc(te)


def test_deterministic_per_seed():
    a = make_synthetic(3, 4, seed=7)
    b = make_synthetic(3, 4, seed=7)
    c = make_synthetic(3, 4, seed=8)
    for f in ("flow128", "flow28", "landmarks", "label", "au", "au_mask"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.flow128, c.flow128)
    assert not np.array_equal(a.landmarks, c.landmarks)


def test_shapes_dtypes_ranges(ds3):
    n = 16 * 12
    assert len(ds3) == n
    assert ds3.flow128.shape == (n, 128, 128, 3) and ds3.flow128.dtype == np.float32
    assert ds3.flow28.shape == (n, 28, 28, 3) and ds3.flow28.dtype == np.float32
    assert ds3.landmarks.shape == (n, 65, 2) and ds3.landmarks.dtype == np.float32
    assert ds3.label.dtype == np.int32 and set(np.unique(ds3.label)) == {0, 1, 2}
    for f in ("flow128", "flow28"):
        a = getattr(ds3, f)
        assert np.isfinite(a).all()
        # per-sample per-channel min-max: every channel spans exactly [0, 1]
        np.testing.assert_allclose(a.min(axis=(1, 2)), 0.0, atol=1e-6)
        np.testing.assert_allclose(a.max(axis=(1, 2)), 1.0, atol=1e-6)
    assert ds3.landmarks.min() >= 0 and ds3.landmarks.max() <= 127
    assert set(np.unique(ds3.au)) <= {0.0, 1.0} and set(np.unique(ds3.au_mask)) == {1.0}
    assert (ds3.au.sum(1) >= 1).all()   # every clip shows at least one AU
    assert ds3.class_names == CLASS_NAMES_3
    assert len(set(ds3.name)) == n
    assert set(ds3.dataset) == {"synthetic"}
    assert ds3.subject[0] == "syn_s01" and len(np.unique(ds3.subject)) == 16
    assert ds3.meta["synthetic"] is True
    # labels balanced within each subject
    for s in np.unique(ds3.subject):
        assert np.bincount(ds3.label[ds3.subject == s], minlength=3).tolist() == [4, 4, 4]


def test_raw_range_recovers_strain_channel(ds3):
    # meta keeps the raw range, so the u, v flow in px can be rebuilt and its strain
    # must equal the stored (de-normalised) strain channel.
    raw = _raw_flow(ds3.take(np.arange(4)))
    for r in raw:
        np.testing.assert_allclose(optical_strain(r[..., :2]), r[..., 2], atol=1e-4)
    rng = np.stack(list(ds3.meta["flow128_raw_range"].values()))   # (n, 3, 2)
    assert len(rng) == len(ds3)
    assert (np.abs(rng[:, :2]).max(axis=(1, 2)) > 0.5).all()   # the motions are px-sized


def test_template_is_a_plausible_face():
    t = TEMPLATE_65
    assert t.min() > 0 and t.max() < 128
    ys = {k: t[s, 1].mean() for k, s in REGION_SLICES.items()}
    assert ys["eyebrows"] < ys["eyes"] < ys["lower_nose"] < ys["mouth"] < ys["chin"]
    # the chin must be inside the input crop (that was the reason for the 6.5 g box)
    assert t[REGION_SLICES["chin"], 1].max() < 127


def test_au_directions_follow_facs():
    up = lambda au, toks: -AU_BASIS[AU_TO_NODE[au], toks, 1].mean()   # image y grows down
    brows = np.arange(0, 10)
    assert up(1, [3, 4, 5, 6]) > 1 and up(2, [0, 1, 8, 9]) > 1 and up(4, brows) < 0
    assert AU_BASIS[AU_TO_NODE[4], 4, 0] > 0 > AU_BASIS[AU_TO_NODE[4], 5, 0]   # brows together
    assert up(12, [32, 38]) > 0 > up(15, [32, 38])                            # corners up / down
    assert AU_BASIS[AU_TO_NODE[12], 32, 0] < 0 < AU_BASIS[AU_TO_NODE[12], 38, 0]  # and out
    assert up(17, [55]) > 0 and up(10, [35]) > 0 and up(6, [59, 62]) > 0


def test_classes_learnable_across_subjects_but_overlapping(ds3):
    train_acc, test_acc = _held_out_accuracy(ds3, n_train_subjects=10)
    # 72 held-out samples of 6 unseen subjects; chance is 1/3
    assert test_acc > 0.6, test_acc
    assert test_acc < 0.99, test_acc   # AU dropout/addition makes classes overlap


def test_seven_classes_learnable(ds7):
    _, test_acc = _held_out_accuracy(ds7, n_train_subjects=8)
    assert test_acc > 0.35, test_acc   # chance 1/7
    assert ds7.class_names == CLASS_NAMES_7


def test_subjects_differ_more_than_within_subject_noise(ds3):
    subjects = np.unique(ds3.subject)
    means = np.stack([ds3.landmarks[ds3.subject == s].mean(0) for s in subjects])
    within = np.mean([np.linalg.norm(ds3.landmarks[ds3.subject == s] - m, axis=-1).mean()
                      for s, m in zip(subjects, means)])
    between = np.mean([np.linalg.norm(means[i] - means[j], axis=-1).mean()
                       for i in range(len(subjects)) for j in range(i)])
    assert between > 3 * within, (between, within)


def test_au_labels_consistent_with_classes(ds3, ds7):
    au12, au1, au2, au4 = (AU_TO_NODE[a] for a in (12, 1, 2, 4))
    neg, pos, sur = (ds3.label == k for k in range(3))
    assert ds3.au[pos, au12].mean() > 0.6 and ds3.au[~pos, au12].mean() < 0.15
    assert ds3.au[sur][:, [au1, au2]].max(1).mean() > 0.9
    assert ds3.au[neg, au4].mean() > ds3.au[~neg, au4].mean() + 0.3
    # 7-class: happiness shows AU12 on both sides; contempt only on one side
    labelled = ds7.au_mask[:, 0] == 1
    hap = (ds7.label == CLASS_NAMES_7.index("happiness")) & labelled
    assert ds7.au[hap, au12].mean() > 0.6


def _raw_flow(ds: MESamples) -> np.ndarray:
    """The raw (px) flow128 rebuilt from the [0, 1] encoding and meta's per-channel ranges."""
    r = np.stack([ds.meta["flow128_raw_range"][k] for k in ds.name])[:, None, None]  # (n,1,1,3,2)
    return ds.flow128 * (r[..., 1] - r[..., 0]) + r[..., 0]


def test_contempt_is_unilateral():
    ds = make_synthetic(6, 14, num_classes=7, seed=3, noise=0.0)
    raw = _raw_flow(ds)[..., :2]
    raw -= np.median(raw, axis=(1, 2), keepdims=True)   # remove the global head drift
    mag = np.hypot(raw[..., 0], raw[..., 1])

    def at(token):   # mean motion magnitude in a 5x5 window on a mouth corner
        xy = np.round(ds.landmarks[:, token]).astype(int)
        return np.array([m[y - 2:y + 3, x - 2:x + 3].mean() for m, (x, y) in zip(mag, xy)])
    lopsided = np.abs(np.log(at(32) / at(38)))
    contempt = ds.label == CLASS_NAMES_7.index("contempt")
    happy = ds.label == CLASS_NAMES_7.index("happiness")
    assert np.median(lopsided[contempt]) > 2 * np.median(lopsided[happy])


def test_au_label_fraction_masks_whole_subjects(ds7):
    per_subject = {s: ds7.au_mask[ds7.subject == s] for s in np.unique(ds7.subject)}
    kinds = [float(m.mean()) for m in per_subject.values()]
    assert sorted(set(kinds)) == [0.0, 1.0] and kinds.count(0.0) == 6
    assert (ds7.au[ds7.au_mask == 0] == 0).all()
    assert make_synthetic(4, 3, au_label_fraction=0.0).au_mask.sum() == 0


def test_noise_parameter_blurs_classes():
    clean = make_synthetic(12, 12, seed=2, noise=0.05)
    noisy = make_synthetic(12, 12, seed=2, noise=3.0)
    assert _held_out_accuracy(clean, 8)[1] > _held_out_accuracy(noisy, 8)[1]


@pytest.mark.parametrize("kw", [dict(num_subjects=0), dict(samples_per_subject=0), dict(num_classes=5),
                                dict(noise=-1.0), dict(noise=float("nan")), dict(au_label_fraction=1.5)])
def test_bad_arguments_raise(kw):
    with pytest.raises(ValueError):
        make_synthetic(**kw)


def test_dense_field_matches_direct_gaussian_sum():
    # The splat-and-blur implementation must equal the kernel formula it documents.
    from data_pipelines.synthetic import KERNEL_FLOOR, KERNEL_SIGMA, _dense_field
    rng = np.random.default_rng(0)
    pts = (TEMPLATE_65 + rng.normal(0, 1, (2, 65, 2))).astype(np.float32)
    disp = rng.normal(0, 2, (2, 65, 2)).astype(np.float32)
    got = _dense_field(pts, disp)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float64)
    for i in range(2):
        w = np.exp(-((xx[..., None] - pts[i, :, 0]) ** 2 + (yy[..., None] - pts[i, :, 1]) ** 2)
                   / (2 * KERNEL_SIGMA ** 2))
        want = (w @ disp[i]) / (w.sum(-1, keepdims=True) + KERNEL_FLOOR)
        np.testing.assert_allclose(got[i], want, atol=0.02 * np.abs(want).max())
