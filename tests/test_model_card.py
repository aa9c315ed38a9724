"""Model cards of exported models: the fields, the Markdown, the one-line summary, a run
without held-out subjects, a model without a card. The card that api.train writes into a
real run is checked in test_fold_training (test_exported_model_has_its_card), the line
that predict prints in test_training (test_predict_cli_on_real_clip)."""

import json

import pytest

from data_pipelines.synthetic import make_synthetic
from fedpsyau_jax import model_card_summary
from fedpsyau_jax.model_card import CARD_FILE, build_model_card, card_markdown, config_hash, write_model_card
from fedpsyau_jax.training.checkpoints import CheckpointError

CFG = {"data": {"name": "synthetic"}, "protocol": {"kind": "loso"}, "train": {"epochs": 7}}


def _summary(uf1=0.61, uar=0.58):
    return {
        "pooled": {"uf1": uf1, "uar": uar, "accuracy": 0.6},
        "pooled_bootstrap": {"uf1_ci95": [0.40, 0.77], "uar_ci95": [0.41, 0.75], "replicates": 2000, "subjects": 4},
        "folds": 4,
        "au_detection": {
            "gat": {"mean_f1": 0.31, "mean_auc": 0.66, "num_samples": 16, "threshold": 0.5, "excluded_aus": ["AU9"]}
        },
    }


def _model_dir(tmp_path):
    d = tmp_path / "run" / "final_model"
    d.mkdir(parents=True)
    (d / "metadata.json").write_text(json.dumps({"num_classes": 3, "_tree": {}}))
    return d


def test_card_fields_markdown_and_summary(tmp_path):
    samples = make_synthetic(num_subjects=4, samples_per_subject=4, num_classes=3, seed=0)
    card = build_model_card(_summary(), CFG, samples)
    d = _model_dir(tmp_path)
    write_model_card(d, card)
    meta = json.loads((d / "metadata.json").read_text())
    assert meta["num_classes"] == 3 and meta["model_card"] == card  # added, nothing else lost
    data = card["training_data"]
    assert data["samples"] == 16 and data["subjects"] == 4 and sum(data["class_counts"]) == 16
    assert data["datasets"]["synthetic"]["subjects"] == sorted(set(map(str, samples.subject)))
    assert card["fixed_epochs"] == 7 and card["protocol"]["kind"] == "loso"
    assert card["metrics"]["uf1_ci95"] == [0.40, 0.77] and card["au_detection"]["gat"]["mean_auc"] == 0.66
    assert card["software"]["config_hash"] == config_hash(CFG) != config_hash({**CFG, "train": {"epochs": 8}})
    assert any("not lie detection" in x for x in card["limits"])
    assert any("synthetic" in x for x in card["limits"])
    line = model_card_summary(tmp_path / "run")  # a run dir resolves to final_model/
    assert line == model_card_summary(d) == card["summary"]
    assert "UF1 0.610 [0.400, 0.770]" in line and "16 samples of 4 subjects" in line and "7 epochs" in line
    md = (d / CARD_FILE).read_text()
    assert line in md and "| UAR | 0.580 [0.410, 0.750] |" in md and "| gat | 0.310 | 0.5 | 0.660 | 16 |" in md
    assert "ethnic groups is unknown" in md
    assert "- outputs at test time: one forward pass" in md
    flip = build_model_card(_summary(), {**CFG, "train": {**CFG.get("train", {}), "eval_flip": True}}, samples)
    assert "mirror image" in flip["protocol"]["test_time"] and "mirror image" in card_markdown(flip)


def test_card_without_held_out_subjects_says_unmeasured(tmp_path):
    samples = make_synthetic(num_subjects=2, samples_per_subject=3, num_classes=3, seed=1)
    card = build_model_card({"folds": 0}, {**CFG, "protocol": {"kind": "all"}}, samples)
    assert card["metrics"] is None and card["au_detection"] is None
    assert "accuracy not measured" in card["summary"] and "UF1" not in card["summary"]
    d = _model_dir(tmp_path)
    write_model_card(d, card)
    assert "Not measured: this run held out no subjects" in (d / CARD_FILE).read_text()


def test_summary_of_model_without_card_and_of_missing_dir(tmp_path):
    d = _model_dir(tmp_path)
    assert "no model card" in model_card_summary(d)
    with pytest.raises(CheckpointError, match="no metadata.json"):
        model_card_summary(tmp_path / "nowhere")
