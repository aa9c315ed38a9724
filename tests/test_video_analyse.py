"""``analyse_video`` / ``fedpsyau analyse`` on short synthetic clips: a real face
(tests/fixtures/faces, MIT) with micro-expressions injected at known frames."""
import csv
import json

import cv2
import numpy as np
import pytest

from data_pipelines.spotting_synthetic import make_spotting_video, write_video
from fedpsyau_jax.cli import main
from fedpsyau_jax.video.analyse import analyse_video
from fedpsyau_jax.video.spotting_metric import Span, iou

pytestmark = pytest.mark.xdist_group("video_analyse")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """5 s, 30 fps, 640x480: two micro-expressions and one blink, drift and noise.
    The micro-expressions peak at 2–3 px (the upper part of the benchmark's 1–3 px
    range): this checks that clear events are found at the right frames; how often
    weaker ones are found is measured by benchmarks/spotting_synthetic.py."""
    d = tmp_path_factory.mktemp("clip")
    gt = make_spotting_video(d / "micro.mp4", seed=11, n_frames=150, n_micro=2, n_macro=0, n_blinks=1,
                             talking=False, head_turn=False, lighting=False, micro_px=(2.0, 3.0))
    return d / "micro.mp4", gt


@pytest.fixture(scope="module")
def analysed(clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return out, analyse_video(clip[0], out, show_progress=False)


def test_injected_micro_expressions_are_spotted(clip, analysed):
    _, gt = clip
    _, t = analysed
    truth = [Span(e["onset"], e["offset"]) for e in gt["intervals"]]
    assert len(truth) == 2 and all(e["kind"] == "micro" for e in gt["intervals"])
    spotted = [Span(i["onset"], i["offset"]) for i in t["intervals"]]
    for g in truth:
        best = max((iou(s, g) for s in spotted), default=0.0)
        assert best >= 0.5, (g, spotted)
    hits = [i for i in t["intervals"] if max(iou(Span(i["onset"], i["offset"]), g) for g in truth) >= 0.5]
    assert all(i["kind"] == "micro" and i["onset"] <= i["apex"] <= i["offset"] for i in hits)
    blink = gt["distractors"][0]
    assert blink["type"] == "blink"
    assert not any(i["onset"] <= blink["end"] and i["offset"] >= blink["start"] for i in t["intervals"]), \
        "the blink was spotted as an expression"


def test_outputs_are_written_in_the_documented_form(clip, analysed):
    out, t = analysed
    j = json.loads((out / "timeline.json").read_text())
    assert {"video", "fps", "frames", "intervals", "gaps"} <= set(j) and j["frames"] == 150 and j["fps"] == 30.0
    assert j["gaps"] == [] and j["problems"] == []
    for iv in j["intervals"]:
        assert {"onset", "apex", "offset", "kind", "emotion", "emotion_prob", "au_prob", "score"} <= set(iv)
        assert iv["emotion"] is None                      # no --checkpoint: spotting only
    with open(out / "timeline.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["vid", "pred_onset", "pred_offset", "type"]
    assert len(rows) == 1 + len(j["intervals"]) and {r[3] for r in rows[1:]} <= {"me", "mae"}
    with open(out / "frames.csv") as f:
        frames = list(csv.DictReader(f))
    assert len(frames) == 150 and frames[0]["frame"] == "0" and frames[30]["timestamp"] == "1.0000"
    assert all(r["face_found"] == "1" for r in frames)
    inside = [r for r in frames if r["interval"] != ""]
    assert len(inside) == sum(i["offset"] - i["onset"] + 1 for i in j["intervals"])
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "src=\"http" not in html
    assert cv2.imread(str(out / "timeline.png")) is not None


def test_rerun_loads_every_chunk_from_the_cache(clip, analysed, tmp_path):
    out, t = analysed
    t2 = analyse_video(clip[0], out, show_progress=False)
    assert t2["timing_s"]["chunks_cached"] == 1 and t2["timing_s"]["track"] == 0.0
    assert t2["intervals"] == t["intervals"]
    # different content under the same name is recomputed, not answered from the cache
    from fedpsyau_jax.video.frame_stream import iter_frames, probe
    frames = [f for _, _, f in iter_frames(probe(clip[0]))]
    other = tmp_path / "micro.mp4"
    write_video(other, [np.flipud(f) for f in frames[:60]], 30.0)
    t3 = analyse_video(other, tmp_path / "o", cache_dir=out / "cache", show_progress=False)
    assert t3["timing_s"]["chunks_cached"] == 0


def test_face_lost_mid_video_is_a_gap(clip, tmp_path):
    from fedpsyau_jax.video.frame_stream import iter_frames, probe
    frames = [f for _, _, f in iter_frames(probe(clip[0]))][:100]
    for i in range(40, 60):
        frames[i] = np.full_like(frames[i], 128)
    path = tmp_path / "lost.mp4"
    write_video(path, frames, 30.0)
    t = analyse_video(path, tmp_path / "out", show_progress=False)
    assert len(t["gaps"]) == 1
    g = t["gaps"][0]
    # the face is re-detected on the first frame it is back; losing it is noticed at
    # the next confirming detection (at most TrackParams.redetect_every - 1 frames late)
    assert g["end"] == 59 and 40 <= g["start"] <= 49 and g["reason"] == "no face found"
    assert len(t["problems"]) == 1 and "no face in" in t["problems"][0] and str(path) in t["problems"][0]
    assert not any(i["onset"] <= g["end"] and i["offset"] >= g["start"] for i in t["intervals"])


def test_video_without_a_face_exits_with_one_line_and_keeps_outputs(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "noface.mp4"
    write_video(path, [rng.integers(0, 255, (120, 160), dtype=np.uint8) for _ in range(40)], 30.0, (160, 120))
    assert main(["analyse", "--video", str(path), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if "error" in ln]
    assert len(err) == 1 and str(path) in err[0] and "no face found in any of the 40 frames" in err[0]
    t = json.loads((tmp_path / "o" / "timeline.json").read_text())
    assert t["intervals"] == [] and t["gaps"] == [{"start": 0, "end": 39, "start_s": 0.0, "end_s": 1.3,
                                                   "reason": "no face found"}]


@pytest.mark.parametrize("case", ["short", "garbage", "truncated", "missing"])
def test_bad_video_files_are_one_line(case, clip, tmp_path, capsys):
    path = tmp_path / f"{case}.mp4"
    if case == "short":
        from fedpsyau_jax.video.frame_stream import iter_frames, probe
        write_video(path, [f for _, _, f in iter_frames(probe(clip[0]))][:8], 30.0)
        expect = "shorter than one spotting window"
    elif case == "garbage":
        path.write_bytes(b"not a video at all" * 100)
        expect = "OpenCV cannot open"
    elif case == "truncated":
        path.write_bytes(clip[0].read_bytes()[:2000])
        expect = str(path)
    else:
        expect = "does not exist"
    rc = main(["analyse", "--video", str(path), "--out", str(tmp_path / "o"), "--no-progress"])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("fedpsyau analyse: error")]
    assert rc == 2 and len(err) == 1 and expect in err[0], err
    assert "Traceback" not in err[0]


def test_chunks_cover_every_frame_once_with_context(clip):
    from fedpsyau_jax.video.frame_stream import iter_chunks, probe
    info = probe(clip[0])
    seen = []
    for c in iter_chunks(info, 40, 5):
        assert c.numbers[c.before] == c.start
        assert c.before == (0 if c.start == 0 else 5)
        assert c.after == (min(5, 150 - c.stop))
        seen += list(range(c.start, c.stop))
    assert seen == list(range(150))
    # memory bound: a chunk of 4K frames holds at most max_chunk_bytes of grey pixels
    from fedpsyau_jax.video.frame_stream import VideoInfo, chunk_length
    assert chunk_length(VideoInfo("x", 30.0, 0, 3840, 2160, 0), 300, 256 << 20) == (256 << 20) // (3840 * 2160)
    assert chunk_length(VideoInfo("x", 30.0, 0, 640, 480, 0), 300, 256 << 20) == 300


def test_predict_points_to_analyse_for_several_expressions(clip):
    from fedpsyau_jax.cli.predict import several_expressions_hint
    hint = several_expressions_hint(clip[0])
    assert hint is not None and "fedpsyau analyse" in hint and "finds 2 expressions" in hint


def test_variable_frame_rate_rotation_and_large_frames_are_reported():
    from fedpsyau_jax.video.analyse import input_problems
    from fedpsyau_jax.video.frame_stream import VideoInfo
    info = VideoInfo("v.mp4", 30.0, 100, 3840, 2160, 90)
    times = np.cumsum(np.where(np.arange(100) % 3 == 0, 0.066, 0.033))     # a third of the frames late
    face = np.ones(100, bool)
    probs = input_problems(info, face, times, [], np.arange(100))
    assert any("variable frame rate" in p for p in probs)
    assert any("90° rotation" in p for p in probs)
    assert any("very large frames (3840x2160)" in p for p in probs)
    assert all(p.startswith("v.mp4: ") and "\n" not in p for p in probs)
    steady = input_problems(VideoInfo("v.mp4", 30.0, 100, 640, 480, 0), face, np.arange(100) / 30.0, [], np.arange(100))
    assert steady == []
