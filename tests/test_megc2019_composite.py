"""The released MEGC2019 composite as MESamples (needs the shared data)."""
import time

import numpy as np
import pytest

from data_pipelines.megc2019_composite import FLOW_FRAME, CompositeError, flow_file, load_megc2019_composite


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


def _au_motion_at(s, rows, au: int, tokens: slice) -> float:
    """Motion of AU-positive minus AU-negative samples (``landmark_frame.motion_image``),
    read at the 28-px pixels of ``tokens``."""
    from data_pipelines.landmark_frame import motion_image

    pos = s.au[rows, au] > 0.5
    diff = motion_image(s.flow28[rows][pos]) - motion_image(s.flow28[rows][~pos])
    p = np.clip(np.rint(s.landmarks[rows][:, tokens] * 28 / 128).astype(int), 0, 27)
    return float(diff[p[..., 1], p[..., 0]].mean())


def test_samm_landmarks_moved_into_the_flow_frame(composite, cache_dir):
    """The released SAMM flows were cut from another face box than the apex crops the
    landmarks come from (issue 26). In the flows' frame the eye points see the eye motion
    of AU7 (lid tightener) and the brow points the brow motion of AU4 (brow lowerer);
    as detected on the apex crops they sit below both."""
    apex = load_megc2019_composite(cache_dir=cache_dir, landmark_frame="apex")
    samm = composite.dataset == "samm"
    assert np.array_equal(apex.landmarks[~samm], composite.landmarks[~samm])
    ax, bx, ay, by = FLOW_FRAME["samm"]
    expect = np.clip(apex.landmarks[samm] * np.array([ax, ay]) + np.array([bx, by]), 0, 127)
    np.testing.assert_allclose(composite.landmarks[samm], expect, atol=1e-4)
    assert composite.meta["landmark_frame"]["frame"] == "flow"
    for au, tokens in ((5, slice(10, 22)), (2, slice(0, 10))):  # AU7 at the eyes, AU4 at the brows
        rows = np.flatnonzero(samm & (composite.au_mask[:, au] > 0))
        moved, detected = _au_motion_at(composite, rows, au, tokens), _au_motion_at(apex, rows, au, tokens)
        assert moved > 0.5 and moved > 3 * detected, (au, moved, detected)
    # CASME II, the reference frame, already has its AU motion at its points
    rows = np.flatnonzero((composite.dataset == "casme2") & (composite.au_mask[:, 2] > 0))
    assert _au_motion_at(composite, rows, 2, slice(0, 10)) > 0.5


def test_flow_frame_constant_is_what_the_label_free_measurement_gives(shared_root, cache_dir):
    """``FLOW_FRAME["samm"]`` is the registration's result, not a hand-tuned number; SMIC's
    map moves no point by a flow pixel (so it is left as detected)."""
    from data_pipelines.landmark_frame import frame_maps

    maps = frame_maps(load_megc2019_composite(cache_dir=cache_dir, landmark_frame="apex"))
    np.testing.assert_allclose(maps["samm"]["map128"], FLOW_FRAME["samm"], atol=0.01)
    assert maps["samm"]["ncc_registered"] > maps["samm"]["ncc_identity"] + 0.03
    assert maps["smic"]["max_shift_px28"] < 1.0


def test_unknown_landmark_frame_is_an_error(shared_root, cache_dir):
    from fedpsyau_jax.core.errors import NameChoiceError

    with pytest.raises(NameChoiceError, match="landmark_frame 'flows': unknown name; choose from flow, apex"):
        load_megc2019_composite(cache_dir=cache_dir, landmark_frame="flows")


def test_run_configs_from_before_the_landmark_fix_load_apex_landmarks(monkeypatch):
    import ml_collections

    import data_pipelines.datasets as datasets
    from fedpsyau_jax import api

    class Loaded(Exception):
        pass

    def fake_load(name, **kw):
        raise Loaded(kw["landmark_frame"])

    from fedpsyau_jax.federated import experiment

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    for kwargs, frame in (({}, "apex"), ({"landmark_frame": "flow"}, "flow")):
        cfg = ml_collections.ConfigDict({"data": {"name": "megc2019_composite", "root": None, "kwargs": kwargs}})
        with pytest.raises(Loaded, match=frame):
            api.load_samples(cfg)
        fl_cfg = ml_collections.ConfigDict({"data": {"name": "megc2019_composite", "root": "", "cache_dir": "", "kwargs": kwargs}})
        with pytest.raises(Loaded, match=frame):
            experiment.load_samples(fl_cfg)


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
