"""The training inputs' summary stored with an exported model, and the check of a new
input against it (fedpsyau_jax.training.input_check): training-like inputs pass, inputs cut
another way are flagged, old models without a summary still predict and say so."""
import json
from pathlib import Path

import numpy as np
import pytest

from data_pipelines.synthetic import make_synthetic
from fedpsyau_jax.training import input_check as ic

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "fixtures" / "faces" / "single_face.mp4"
CLASSES = ["negative", "positive", "surprise"]


@pytest.fixture(scope="module")
def train_and_new():
    """Summary of one synthetic draw; a second draw (other seed) is new data from the
    same distribution."""
    train = make_synthetic(num_subjects=20, samples_per_subject=12, seed=0)
    new = make_synthetic(num_subjects=10, samples_per_subject=12, seed=1)
    summary = ic.summarise_inputs(train.flow28, train.landmarks, {"source": "synthetic", "crop": "eyes"}, train.subject)
    return summary, new


def test_inputs_from_the_training_distribution_are_not_flagged(train_and_new):
    summary, new = train_and_new
    meta = {ic.SUMMARY_KEY: summary}
    checks = [ic.check_input(meta, {"flow28": f, "landmarks": lm}) for f, lm in zip(new.flow28, new.landmarks)]
    flagged = sum(c["status"] == "outside" for c in checks)
    # about 1 % by construction (3 of these 120 from 10 new subjects)
    assert flagged <= 6, [c["message"] for c in checks if c["status"] == "outside"]
    inside = next(c for c in checks if c["status"] == "inside")
    assert inside["message"].startswith("input within the model's training inputs")
    assert set(inside["groups"]) == set(ic.GROUPS) and summary["held_out_by"] == "subject"
    json.dumps(summary)  # stored in metadata.json


def test_an_input_cut_another_way_or_with_other_values_is_flagged(train_and_new):
    summary, new = train_and_new
    meta = {ic.SUMMARY_KEY: summary}
    f, lm = new.flow28[0], new.landmarks[0]
    # the same face at 70 % of the size, centred: another face box
    small = 64 + 0.7 * (lm - 64)
    c = ic.check_input(meta, {"flow28": f, "landmarks": small})
    assert c["status"] == "outside" and "face position" in c["outside"]
    assert c["message"].startswith("input OUTSIDE the model's training inputs")
    assert "outer-eye width" in c["message"]
    # values unlike any encoded flow it saw: uniform noise
    noise = np.random.default_rng(0).random((28, 28, 3)).astype(np.float32)
    c = ic.check_input(meta, {"flow28": noise, "landmarks": lm})
    assert c["status"] == "outside" and "flow values" in c["outside"]


def test_summary_needs_two_inputs_and_a_model_without_one_says_so():
    s = make_synthetic(num_subjects=2, samples_per_subject=3, seed=0)
    with pytest.raises(ValueError, match="at least 2"):
        ic.summarise_inputs(s.flow28[:1], s.landmarks[:1])
    c = ic.check_input({}, {"flow28": s.flow28[0], "landmarks": s.landmarks[0]})
    assert c["status"] == ic.NO_SUMMARY and c["message"].startswith("no input summary stored")


def test_inputs_are_cut_like_the_training_inputs():
    # a model exported before summaries: its config names the released composite
    assert ic.input_pipeline({"config": {"data": {"name": "megc2019_composite"}}}).crop == "composite"
    assert ic.input_pipeline({"config": {"data": {"name": "casme2"}}}).crop == "eyes"
    assert ic.input_pipeline({}).crop == "eyes"
    # a summary's pipeline wins, including the video pipeline's own settings
    pre = {"crop": {"size": 128}, "align": False, "apex_window": True, "tvl1": {"warps": 7}}
    meta = {ic.SUMMARY_KEY: {"pipeline": ic.training_pipeline({"preprocess": pre})}, "config": {}}
    p = ic.input_pipeline(meta)
    assert (p.crop, p.align, p.apex_window, dict(p.tvl1)) == ("eyes", False, True, {"warps": 7})
    assert ic.training_pipeline({"source": "megc2019_htnet (HTNet release)"})["crop"] == "composite"


@pytest.fixture(scope="module")
def models(tmp_path_factory, train_and_new):
    """Two exported models with random weights: one as exported before summaries
    existed, one whose summary comes from inputs cut by another (much wider) box."""
    from fedpsyau_jax.training.exported_model import write_random_model

    d = tmp_path_factory.mktemp("models")
    old = write_random_model(d / "old", CLASSES, group_tokens="paper", roi_source="flow28")
    new = write_random_model(d / "new", CLASSES, group_tokens="paper", roi_source="flow28")
    train = make_synthetic(num_subjects=20, samples_per_subject=12, seed=0)
    wide = 64 + 0.5 * (train.landmarks - 64)
    ic.write_input_summary(new, ic.summarise_inputs(train.flow28, wide, {"source": "synthetic", "crop": "eyes"}))
    return old, new


def test_an_old_model_without_summary_still_predicts(models, capsys):
    from fedpsyau_jax.cli import main

    old, _ = models
    assert main(["predict", "--video", str(CLIP), "--onset", "0", "--apex", "35", "--checkpoint", str(old),
                 "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert sum(out["emotion_prob"].values()) == pytest.approx(1.0, abs=1e-5)
    assert out["input_check"]["status"] == ic.NO_SUMMARY and out["crop"] == "eyes"
    assert "input check: no input summary stored" in cap.err


def test_predict_and_analyse_flag_an_input_outside_the_training_inputs(models, capsys, tmp_path):
    from fedpsyau_jax.cli import main

    _, new = models
    assert main(["predict", "--video", str(CLIP), "--onset", "0", "--apex", "35", "--checkpoint", str(new)]) == 0
    text = capsys.readouterr().out
    assert "input check: input OUTSIDE the model's training inputs" in text and "face position" in text
    assert main(["predict", "--video", str(CLIP), "--onset", "0", "--apex", "35", "--checkpoint", str(new),
                 "--json"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["input_check"]["status"] == "outside"
    assert cap.err.count("input check: input OUTSIDE") == 1
    out = tmp_path / "an"
    assert main(["analyse", "--video", str(CLIP), "--checkpoint", str(new), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    t = json.loads((out / "timeline.json").read_text())
    rec = [iv for iv in t["intervals"] if iv.get("emotion")]
    assert rec and all(iv["input_check"]["status"] == "outside" for iv in rec)
    assert "[input outside the model's training inputs]" in text
    assert f"input check: {len(rec)} of {len(rec)} recognised interval(s) OUTSIDE" in text


def test_model_card_lists_the_training_inputs(train_and_new):
    from fedpsyau_jax.model_card import build_model_card, card_markdown

    summary, _ = train_and_new
    s = make_synthetic(num_subjects=3, samples_per_subject=3, seed=0)
    card = build_model_card({"protocol": "all"}, {"protocol": {"kind": "all"}, "train": {"epochs": 1}}, s,
                            inputs=summary)
    md = card_markdown(card)
    assert "## Training inputs" in md and "face crop rule `eyes`" in md and "encoded strain: 5 / 50 / 95 %" in md
