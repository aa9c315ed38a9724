"""records_to_samples / video_to_sample on a tiny folder-of-frames dataset built from
the real clip fixture (tests/fixtures/faces/single_face.mp4, MIT)."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_pipelines import video_pipeline as vp
from data_pipelines.clip_record import ClipRecord
from data_pipelines.sample_errors import MissingFrameError, UnreadableMediaError, UnusableSampleError
from data_pipelines.video_io import FrameSource, frame_number, index_frames, read_video_gray

FACES = Path(__file__).resolve().parent / "fixtures" / "faces"
CLASSES = ("negative", "positive", "surprise")


@pytest.fixture(scope="module")
def frames():
    return read_video_gray(FACES / "single_face.mp4", [0, 34, 35, 36, 70])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, frames):
    """Frame folders in the naming styles of the dataset releases, plus the matching records."""
    root = tmp_path_factory.mktemp("frames")

    def folder(rel, names):
        d = root / rel
        d.mkdir(parents=True)
        for fname, n in names.items():
            cv2.imwrite(str(d / fname), frames[n] if n is not None else np.full((360, 640), 90, np.uint8))
        return d

    casme = folder("sub01/EP01_01f", {"reg_img0.jpg": 0, "reg_img35.jpg": 35, "notes.txt.jpg~": 0})
    samm = folder("006/006_1_2", {"006_05562.jpg": 0, "006_05597.jpg": 35})
    smic = folder("s01/s1_po_01", {"image000000.bmp": 0, "image000035.bmp": 35, "image000070.bmp": 70})
    blank = folder("sub02/EP09_01", {"img1.jpg": None, "img2.jpg": None})

    def rec(name, dataset, onset, apex, label, frame_dir, offset=None, aus=frozenset({6, 12})):
        return ClipRecord(dataset=dataset, subject=name.split("_")[0], clip=name, name=name,
                          onset=onset, apex=apex, offset=offset, aus=aus, emotion="x",
                          label=label, frame_dir=frame_dir)

    records = [
        rec("sub01_EP01_01f", "casme2", 0, 35, 1, casme),
        rec("006_006_1_2", "samm", 5597, 5597, 1, samm),                # onset==apex, first frame differs
        rec("s01_s1_po_01", "smic", 0, None, 1, smic, offset=70, aus=frozenset()),
        rec("sub01_missing", "casme2", 0, 99, 0, casme),                # apex frame absent
        rec("sub01_same", "casme2", 0, 0, 2, casme),                     # onset==apex==first frame
        rec("sub01_dropped", "casme2", 0, 35, None, casme),              # class dropped
        rec("sub01_badlabel", "casme2", 0, 35, 7, casme),                # outside the classes
        rec("sub02_blank", "casme2", 1, 2, 0, blank),                    # no face
        rec("sub03_nodir", "casme2", 0, 35, 0, None),                    # annotation-only record
    ]
    return root, records


GOOD = ["sub01_EP01_01f", "006_006_1_2", "s01_s1_po_01"]


def test_records_to_samples_cache_manifest_and_rerun(dataset, tmp_path):
    _, records = dataset
    cache = tmp_path / "cache"
    s1 = vp.records_to_samples(records, cache_dir=cache, progress=False, class_names=CLASSES)
    assert s1.name.tolist() == GOOD
    assert s1.meta["counts"] == {"computed": 3, "cached": 0, "skipped": 6}
    assert s1.flow128.shape == (3, 128, 128, 3) and s1.flow28.shape == (3, 28, 28, 3)
    assert s1.landmarks.shape == (3, 65, 2)
    assert s1.class_names == CLASSES and s1.label.tolist() == [1, 1, 1]
    # SMIC has no AU coding: mask all zero; CASME II/SAMM: AU6 and AU12 set, mask ones.
    assert s1.au_mask[2].sum() == 0 and s1.au_mask[0].sum() == 12
    assert s1.au[0].sum() == 2
    assert s1.meta["onset_replaced"] == ["006_006_1_2"]

    manifest = json.loads((cache / vp.MANIFEST_NAME).read_text())
    assert manifest == s1.meta["skipped"]
    assert set(manifest) == {"sub01_missing", "sub01_same", "sub01_dropped", "sub01_badlabel",
                             "sub02_blank", "sub03_nodir"}
    assert manifest["sub01_missing"].startswith("MissingFrameError") and "99" in manifest["sub01_missing"]
    assert manifest["sub01_same"].startswith("UnusableSampleError") and "first frame" in manifest["sub01_same"]
    assert manifest["sub01_dropped"].startswith("UnknownLabelError")
    assert "outside classes" in manifest["sub01_badlabel"]
    assert manifest["sub02_blank"].startswith("NoFaceError")
    assert "frame_dir" in manifest["sub03_nodir"]

    files = sorted(cache.glob("*.npz"))
    assert len(files) == 3 and not list(cache.glob("*.tmp")) and not list(cache.glob(".*"))
    mtimes = {f: f.stat().st_mtime_ns for f in files}

    s2 = vp.records_to_samples(records, cache_dir=cache, progress=False, class_names=CLASSES)
    assert s2.meta["counts"] == {"computed": 0, "cached": 3, "skipped": 6}
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes
    np.testing.assert_array_equal(s1.flow128, s2.flow128)
    np.testing.assert_array_equal(s1.landmarks, s2.landmarks)

    # A truncated cache file (e.g. copied half-way) is recomputed, not trusted.
    files[0].write_bytes(files[0].read_bytes()[:100])
    s3 = vp.records_to_samples(records, cache_dir=cache, progress=False, class_names=CLASSES)
    assert s3.meta["counts"]["computed"] == 1 and s3.meta["counts"]["cached"] == 2
    np.testing.assert_array_equal(s1.flow128, s3.flow128)


def test_cache_key_depends_on_parameters(dataset, tmp_path):
    _, records = dataset
    cache = tmp_path / "cache"
    vp.records_to_samples(records[:1], cache_dir=cache, progress=False, class_names=CLASSES)
    s = vp.records_to_samples(records[:1], cache_dir=cache, progress=False, class_names=CLASSES,
                              params=vp.PipelineParams(align=False))
    assert s.meta["counts"]["computed"] == 1
    assert len(list(cache.glob("*.npz"))) == 2
    assert vp.PipelineParams().digest() != vp.PipelineParams(tvl1=(("warps", 9),)).digest()


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "c" / "x.npz"
    vp.save_npz_atomic(target, {"a": np.arange(3)})
    before = target.read_bytes()

    def boom(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(vp.np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        vp.save_npz_atomic(target, {"a": np.arange(5)})
    assert target.read_bytes() == before                 # old file intact
    assert [p.name for p in target.parent.iterdir()] == ["x.npz"]   # no temp left behind


def test_duplicate_names_and_all_skipped(dataset, tmp_path):
    _, records = dataset
    with pytest.raises(ValueError, match="duplicate"):
        vp.records_to_samples([records[0], records[0]], cache_dir=None, progress=False)
    s = vp.records_to_samples(records[3:5], cache_dir=None, progress=False, class_names=CLASSES)
    assert len(s) == 0 and s.flow128.shape == (0, 128, 128, 3)
    assert set(s.meta["skipped"]) == {"sub01_missing", "sub01_same"}


def test_resolve_onset_apex_rule():
    assert vp.resolve_onset_apex([3, 4, 5], 4, 5, "a") == (4, 5, False)
    assert vp.resolve_onset_apex([3, 4, 5], 5, 5, "a") == (3, 5, True)
    assert vp.resolve_onset_apex([3, 4, 5], None, 5, "a") == (3, 5, False)
    with pytest.raises(UnusableSampleError, match="clip_x: onset == apex == frame 3"):
        vp.resolve_onset_apex([3, 4, 5], 3, 3, "clip_x")
    with pytest.raises(MissingFrameError, match="apex frame 9"):
        vp.resolve_onset_apex([3, 4, 5], 3, 9, "a")
    with pytest.raises(UnusableSampleError, match="before onset"):
        vp.resolve_onset_apex([3, 4, 5], 5, 4, "a")
    assert vp.apex_window([3, 4, 5, 7], 3, 5) == [4, 7]
    assert vp.apex_window([3, 4, 5], 3, 4) == [5]          # the onset is not a neighbour


def test_frame_numbers_from_names(tmp_path):
    assert frame_number("reg_img46.jpg") == 46
    assert frame_number("006_05562.jpg") == 5562
    assert frame_number("image000123.bmp") == 123
    assert frame_number("175.jpg") == 175
    assert frame_number("notes.jpg") is None
    assert list(index_frames(["img10.jpg", "img9.jpg", "img100.jpg"], "x")) == [9, 10, 100]
    with pytest.raises(UnreadableMediaError, match="ambiguous"):
        index_frames(["img46.jpg", "reg_img46.jpg"], "clip")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(UnreadableMediaError, match="broken.mp4"):
        FrameSource(bad)


def test_video_to_sample_spots_the_smile_and_applies_onset_rule():
    s = vp.video_to_sample(FACES / "single_face.mp4")
    assert s["apex_spotted"] and s["onset"] == 0
    assert 20 <= s["apex"] <= 60, s["apex"]                 # the smile plateau (LICENSES.md)
    assert s["flow128"].shape == (128, 128, 3)
    with pytest.raises(UnusableSampleError, match="single_face"):
        vp.video_to_sample(FACES / "single_face.mp4", onset=0, apex=0)


def test_apex_window_averages_three_flows(frames):
    single = vp.clip_to_sample(frames[0], frames[35])
    window = vp.clip_to_sample(frames[0], frames[35], apex_neighbors=[frames[34], frames[36]])
    f34 = vp.clip_to_sample(frames[0], frames[34])["flow_raw"]
    f36 = vp.clip_to_sample(frames[0], frames[36])["flow_raw"]
    np.testing.assert_allclose(window["flow_raw"], (single["flow_raw"] + f34 + f36) / 3, atol=1e-5)
    s = vp.video_to_sample(FACES / "single_face.mp4", 0, 35, params=vp.PipelineParams(apex_window=True))
    np.testing.assert_allclose(s["flow_raw"], window["flow_raw"], atol=1e-5)


def test_crop_rule_is_a_parameter_of_the_cache_key():
    # "eyes" keeps the digest it had before the rule existed (caches stay valid)
    assert "rule" not in vp.PipelineParams().as_dict()["crop"]
    assert vp.PipelineParams().digest() != vp.PipelineParams(crop="composite").digest()
    with pytest.raises(ValueError, match="PipelineParams.crop 'wide'"):
        vp.PipelineParams(crop="wide")
