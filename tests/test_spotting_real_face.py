"""Spotting on a real face: the real smile clip, padded with still face, is one
interval holding its apex (a smile is not talking, its onset and offset are not
micro-expressions), and the threshold does not rise with the share of expression."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from fedpsyau_jax.video import intervals as iv_mod
from fedpsyau_jax.video.spotting_signal import REGIONS

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "fixtures" / "faces" / "single_face.mp4"
# Looked at frame by frame (experiments/real_spotting/annotations.json)
ONSET, APEX, OFFSET = 17, 35, 70

pytestmark = pytest.mark.xdist_group("video_analyse")


def _frames():
    cap = cv2.VideoCapture(str(CLIP))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(f)


def _write(frames, dest: Path) -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
    for f in frames:
        vw.write(f)
    vw.release()
    return dest


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    """The clip with still face before and after: {pad seconds: (path, padding frames)}."""
    clip = _frames()
    folder = tmp_path_factory.mktemp("padded_smile")
    return {s: (_write([clip[0]] * (30 * s) + clip + [clip[-1]] * (30 * s), folder / f"pad{s}.mp4"), 30 * s)
            for s in (1, 3)}


def _spot(path, **spot):
    from fedpsyau_jax.video.analyse import AnalyseParams, spotting_pass
    from fedpsyau_jax.video.frame_stream import probe

    info = probe(path)
    sp = spotting_pass(info, AnalyseParams(), None, show_progress=False)
    return iv_mod.spot_intervals(sp["region_flow"], sp["face"], info.fps, iv_mod.SpotParams(**spot))


def test_a_padded_smile_is_one_interval_holding_its_apex(padded):
    path, pad = padded[3]
    found, details = _spot(path)
    assert len(found) == 1, [(i.onset, i.apex, i.offset) for i in found]
    iv = found[0]
    assert iv.onset <= pad + APEX <= iv.offset and iv.kind == "macro"
    truth = (pad + ONSET, pad + OFFSET)
    inter = min(iv.offset, truth[1]) - max(iv.onset, truth[0]) + 1
    assert inter / (max(iv.offset, truth[1]) - min(iv.onset, truth[0]) + 1) >= 0.5  # the MEGC match
    assert not details["suppressed_talking"]


def test_the_threshold_does_not_rise_with_the_share_of_expression(padded):
    """1 s of still face on each side (the smile is 45 % of the video) against 3 s
    (20 %): thresholds from the quiet frames stay put; statistics over every frame
    (the old rule) rise several-fold on the shorter video."""
    quiet = {s: _spot(p)[1] for s, (p, _) in padded.items()}
    every = {s: _spot(p, noise_floor="all")[1] for s, (p, _) in padded.items()}
    for scale in ("micro", "macro"):
        key = f"threshold_{scale}"
        assert quiet[1][key] < 1.5 * quiet[3][key], (scale, quiet[1][key], quiet[3][key])
    assert every[1]["threshold_macro"] > 2.0 * every[3]["threshold_macro"]


def _jaw_displacement(y: np.ndarray) -> np.ndarray:
    """(T, R, 2) displacement with ``y`` on the jaw regions' vertical component."""
    x = np.zeros((len(y), len(REGIONS), 2))
    for name in iv_mod.JAW_REGIONS:
        x[:, list(REGIONS).index(name), 1] = y
    return x


def test_talking_is_a_jaw_that_swings_again_and_again():
    fps, t = 30.0, np.arange(300) / 30.0
    speech = np.where((t >= 4) & (t < 6), 1.0 * np.sin(2 * np.pi * 4 * t), 0.0)  # 4 Hz for 2 s, 1 px
    talk = iv_mod.talking_frames(_jaw_displacement(speech), fps)
    assert talk[int(5 * fps)] and not talk[int(1 * fps)] and not talk[int(9 * fps)]
    # a smile opens the lips once and closes them 1.7 s later: two swings, not talking
    smile = np.where((t >= 3) & (t < 4.7), 2.7, 0.0)
    assert len(iv_mod.jaw_swings(smile, iv_mod.TALK_SWING_PX)) == 2
    assert not iv_mod.talking_frames(_jaw_displacement(smile), fps).any()
    # swings smaller than the amplitude are noise
    assert not iv_mod.jaw_swings(0.2 * np.sin(2 * np.pi * 4 * t), iv_mod.TALK_SWING_PX)


def test_a_step_does_not_come_back_and_a_micro_expression_does():
    x = np.zeros((60, len(REGIONS), 2))
    regions = np.array([0, 1, 2])
    step = x.copy()
    step[30:, regions, 0] = 2.0  # the onset of a held expression
    bump = x.copy()
    bump[27:34, regions, 0] = 2.0  # out and back within 0.25 s
    assert iv_mod.return_ratio(step, 30, regions, 6) > 0.9
    assert iv_mod.return_ratio(bump, 30, regions, 6) < 0.1
