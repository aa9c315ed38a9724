"""Release-shaped fixture folders with real face frames."""
import collections

import cv2
import numpy as np
import pytest

from data_pipelines.dataset_fixtures import APEX_POS, write_fixture_layout
from data_pipelines.datasets import read_records


def _mouth_eye_ratio(path):
    # Mouth width over outer-eye distance: 0.52 neutral, 0.78 at the smile (LICENSES.md).

    from data_pipelines.dlib_models import frontal_detector, shape_predictor
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    dets = frontal_detector()(img, 0)
    assert len(dets) == 1, f"no single face in {path}"
    p = np.array([(q.x, q.y) for q in shape_predictor()(img, dets[0]).parts()], float)
    return np.linalg.norm(p[54] - p[48]) / np.linalg.norm(p[45] - p[36])


@pytest.mark.parametrize("kind", ["casme3", "dfme", "casme2"])
def test_layout_reads_back(tmp_path, kind):
    root = write_fixture_layout(kind, tmp_path / kind, n_subjects=3, clips_per_subject=2)
    recs = read_records(kind, root)
    assert len(recs) == 6 and len({r.subject for r in recs}) == 3
    assert all(r.label is not None for r in recs)
    per_subject = collections.defaultdict(set)
    for r in recs:
        per_subject[r.subject].add(r.label)
        assert r.frame_dir.is_dir() and len(r.frame_paths) == r.offset - r.onset + 1 == 9
        assert r.frame_paths[r.apex - r.onset].is_file() and r.aus
    assert all(len(v) >= 2 for v in per_subject.values())
    if kind == "casme3":  # two clips of one subject share a task video, keyed by onset
        assert collections.Counter((r.subject, r.clip) for r in recs).most_common(1)[0][1] == 2


def test_frames_are_real_faces_onset_neutral_apex_smiling(tmp_path):
    (r, *_) = read_records("casme3", write_fixture_layout("casme3", tmp_path, 1, 2))
    onset = _mouth_eye_ratio(r.frame_paths[0])
    apex = _mouth_eye_ratio(r.frame_paths[APEX_POS])
    assert onset < 0.6 < 0.7 < apex, (onset, apex)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown fixture kind"):
        write_fixture_layout("samm", tmp_path)
    with pytest.raises(ValueError, match="clips_per_subject >= 2"):
        write_fixture_layout("dfme", tmp_path, clips_per_subject=1)


def test_load_dataset_end_to_end_on_fixture(tmp_path):
    # Reader + colleague's video pipeline: the fixture is usable as a training set.
    from data_pipelines.datasets import load_dataset
    root = write_fixture_layout("casme3", tmp_path / "c3", n_subjects=3, clips_per_subject=2)
    s = load_dataset("casme3", root=root, cache_dir=tmp_path / "cache")
    assert len(s) == 6 and s.summary()["classes"] == "2/2/2"
    assert s.class_names == ("negative", "positive", "surprise")
    assert s.au_mask.sum() > 0 and s.landmarks.min() >= 0 and s.landmarks.max() <= 127
