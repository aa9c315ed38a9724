"""Recognition of spotted intervals: the model input of each interval is the
training-style sample of its onset and apex frames (``clip_to_sample``), nothing computed by the
spotter. The model is an exported checkpoint with random weights (built without
compiling the initialiser): these tests check the path, not accuracy."""
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from data_pipelines.spotting_synthetic import make_spotting_video
from data_pipelines.video_pipeline import clip_to_sample

pytestmark = pytest.mark.xdist_group("video_analyse")
CLASSES = ["negative", "positive", "surprise"]


def random_exported_model(dest: Path) -> Path:
    """<dest>/final_model: FedPsyAU(3 classes, paper groups) with random weights."""
    from fedpsyau_jax.training.exported_model import write_random_model

    return write_random_model(dest, CLASSES, group_tokens="paper", roi_source="flow128")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    video = d / "two.mp4"
    make_spotting_video(video, seed=11, n_frames=150, n_micro=2, n_macro=0, n_blinks=1,
                        talking=False, head_turn=False, lighting=False, micro_px=(2.0, 3.0))
    return video, random_exported_model(d / "model")


def test_each_interval_is_recognised_from_its_spec1_sample(setup, tmp_path):
    from fedpsyau_jax.cli import main
    from fedpsyau_jax.video.frame_stream import iter_frames, probe
    from fedpsyau_jax.video.recognise import Recogniser
    video, model = setup
    assert main(["analyse", "--video", str(video), "--checkpoint", str(model), "--out", str(tmp_path),
                 "--no-progress"]) == 0
    t = json.loads((tmp_path / "timeline.json").read_text())
    assert len(t["intervals"]) >= 2
    frames = [f for _, _, f in iter_frames(probe(video))]
    rec = Recogniser(model)
    for iv in t["intervals"]:
        probs = iv["emotion_prob_all"]
        assert list(probs) == CLASSES and sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert iv["emotion"] == max(probs, key=probs.get) and iv["emotion_prob"] == probs[iv["emotion"]]
        assert len(iv["au_prob"]) == 12 and all(0 <= p <= 1 for p in iv["au_prob"].values())
        # the same numbers from the training path applied to the interval's onset/apex frames
        s = clip_to_sample(frames[iv["onset"]], frames[iv["apex"]])
        p, au = rec.probabilities([s])
        np.testing.assert_allclose([probs[c] for c in CLASSES], p[0], atol=1e-5)
        from fedpsyau_jax.core.au_groups import AU_ORDER
        np.testing.assert_allclose([iv["au_prob"][f"AU{a}"] for a in AU_ORDER], au[0], atol=1e-5)
    html = (tmp_path / "report.html").read_text()
    assert html.count("<img src=\"data:image/png;base64,") == 1 + len(t["intervals"])   # plot + one apex each


def test_spotting_outputs_survive_a_failure_during_recognition(setup, tmp_path, monkeypatch):
    from fedpsyau_jax.video import recognise as rec_mod
    from fedpsyau_jax.video.analyse import analyse_video
    video, model = setup

    def broken(*a, **k):
        raise KeyboardInterrupt                      # e.g. the user stops a long run here

    monkeypatch.setattr(rec_mod, "recognise", broken)
    with pytest.raises(KeyboardInterrupt):
        analyse_video(video, tmp_path, model, show_progress=False)
    t = json.loads((tmp_path / "timeline.json").read_text())
    assert len(t["intervals"]) >= 2 and all(i["emotion"] is None for i in t["intervals"])
    assert t["timing_s"]["recognition"] is None and (tmp_path / "report.html").is_file()
