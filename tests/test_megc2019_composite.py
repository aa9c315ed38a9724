"""The released MEGC2019 composite as MESamples (needs the shared data)."""
import time

import numpy as np
import pytest

from data_pipelines.megc2019_composite import CompositeError, flow_file, load_megc2019_composite


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fedpsyau_cache")


@pytest.fixture(scope="module")
def composite(shared_root, cache_dir):
    return load_megc2019_composite(cache_dir=cache_dir)


def test_counts(composite):
    s = composite
    assert len(s) == 442
    assert len(np.unique(s.subject)) == 68
    assert np.bincount(s.label).tolist() == [250, 109, 83]
    assert s.class_names == ("negative", "positive", "surprise")
    assert {d: int((s.dataset == d).sum()) for d in np.unique(s.dataset)} == {
        "casme2": 145, "samm": 133, "smic": 164}
    assert len(set(s.name)) == 442
    # Subject ids carry the dataset, so e.g. CASME II "sub01" and SMIC "s01" stay apart.
    assert all(str(sub).startswith(str(d) + "_") for sub, d in zip(s.subject, s.dataset))


def test_flows(composite):
    s = composite
    for f in (s.flow28, s.flow128):
        assert f.dtype == np.float32 and f.min() >= 0.0 and f.max() <= 1.0
        assert (f.reshape(len(s), -1).max(axis=1) > 0).all()  # no all-zero flow
    # Each published channel is min-max scaled, so every sample spans 0..1 per channel.
    assert np.allclose(s.flow28.min(axis=(1, 2)), 0.0) and np.allclose(s.flow28.max(axis=(1, 2)), 1.0)
    # flow128 is an upsampling of flow28: area-averaging it back comes close.
    import cv2
    down = np.stack([cv2.resize(f, (28, 28), interpolation=cv2.INTER_AREA) for f in s.flow128[:20]])
    assert np.abs(down - s.flow28[:20]).mean() < 0.05


def test_landmarks_inside_frame_and_plausible(composite):
    lm = composite.landmarks
    assert lm.shape == (442, 65, 2) and lm.min() >= 0 and lm.max() <= 127
    # Geometry: eyebrows (T0-9) above the mouth (T32-51), chin (T52-58) lowest.
    assert (lm[:, 0:10, 1].mean(1) < lm[:, 32:52, 1].mean(1)).all()
    assert (lm[:, 32:52, 1].mean(1) < lm[:, 52:59, 1].mean(1)).all()
    m = composite.meta
    assert 0 < m["face_fallbacks"] < 60  # README: 28 of 442 undetected at upsample 1


def test_au_labels(composite):
    s = composite
    known = s.au_mask.sum(axis=1) > 0
    assert known[s.dataset != "smic"].all()
    assert not known[s.dataset == "smic"].any()
    assert s.meta["au_unmatched"] == 0
    i = list(s.name).index("sub01_EP02_01f")    # CASME II "12"
    assert s.au[i].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    i = list(s.name).index("007_007_6_1")       # SAMM "(R6 or R12)+R15"
    assert s.au[i, [4, 8, 10]].tolist() == [1, 1, 1] and s.au[i].sum() == 3


def test_second_load_from_cache(composite, cache_dir):
    t = time.perf_counter()
    s2 = load_megc2019_composite(cache_dir=cache_dir)
    dt = time.perf_counter() - t
    assert s2.meta["from_cache"] is True and dt < 2.0, dt
    assert np.array_equal(s2.landmarks, composite.landmarks)
    assert np.array_equal(s2.flow128, composite.flow128)
    assert list(s2.subject) == list(composite.subject)
    assert len(list(cache_dir.glob("*.npz"))) == 1 and not list(cache_dir.glob("*.tmp*"))


def test_smic_flow_name_quirk(tmp_path):
    avail = {"s01_s01_ne_01 .png", "s11_s11_po_02 .png"}
    assert flow_file(tmp_path, "s01_s1_ne_01", "smic", avail).name == "s01_s01_ne_01 .png"
    assert flow_file(tmp_path, "s11_s11_po_02", "smic", avail).name == "s11_s11_po_02 .png"
    with pytest.raises(CompositeError, match="s02_s2_ne_01"):
        flow_file(tmp_path, "s02_s2_ne_01", "smic", avail)
