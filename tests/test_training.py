"""Full FED-PsyAU model through the training API: AU pre-training config on a tiny
CK+-layout fixture (real face frames), loss decreases, the exported model predicts the
real clip through the CLI, pre-trained AU-branch params load into fold states."""
import json
from pathlib import Path

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from fedpsyau_jax import api
from fedpsyau_jax.config_loading import load_config
from fedpsyau_jax.training.exported_model import pretrained_variables
from fedpsyau_jax.training.fold_training import load_pretrained
from fedpsyau_jax.training.run_logging import read_jsonl
from fedpsyau_jax.training.train_state import TrainState

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "fixtures" / "faces" / "single_face.mp4"
FRAMES = (0, 5, 10, 15, 20, 25, 30, 35)        # neutral -> smile (CK+ runs neutral -> peak)


def write_ckplus_fixture(dest: Path) -> Path:
    """A tiny CK+ release: cohn-kanade-images/S<sss>/<nnn>/S<sss>_<nnn>_<8 digits>.png,
    FACS/ and Emotion/ text files in CK+'s scientific notation, Landmarks/ (68 lines
    per frame; values copied from the first frame's points, layout only)."""
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    lm = json.loads((CLIP.parent / "single_face_dlib68.json").read_text())["frames"][0]["landmarks68"]
    seqs = {("S005", "001"): (5, [(6, 3), (12, 4)]), ("S005", "002"): (7, [(1, 2), (2, 2), (5, 1)]),
            ("S010", "001"): (5, [(12, 3), (25, 2)]), ("S010", "003"): (3, [(9, 2), (17, 1)])}
    for (subj, seq), (emotion, aus) in seqs.items():
        img = dest / "cohn-kanade-images" / subj / seq
        img.mkdir(parents=True)
        for i, v in enumerate(FRAMES, 1):
            stem = f"{subj}_{seq}_{i:08d}"
            cv2.imwrite(str(img / f"{stem}.png"), cv2.cvtColor(frames[v], cv2.COLOR_BGR2GRAY))
            lmd = dest / "Landmarks" / subj / seq
            lmd.mkdir(parents=True, exist_ok=True)
            (lmd / f"{stem}_landmarks.txt").write_text(
                "".join(f"   {x:.7e}   {y:.7e}\n" for x, y in lm))
        peak = f"{subj}_{seq}_{len(FRAMES):08d}"
        for kind, text in (("FACS", "".join(f"   {a:.7e}   {b:.7e}\n" for a, b in aus)),
                           ("Emotion", f"   {emotion:.7e}\n")):
            d = dest / kind / subj / seq
            d.mkdir(parents=True)
            (d / f"{peak}_{kind.lower()}.txt").write_text(text)
    return dest


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    root = write_ckplus_fixture(tmp_path_factory.mktemp("ckplus"))
    wd = tmp_path_factory.mktemp("au_pretrain")
    cfg = load_config(ROOT / "configs" / "au_pretrain_disfa_ckplus.py",
                      [f"data.root={root}", f"data.cache_dir={tmp_path_factory.mktemp('cache')}",
                       "train.epochs=4", "train.batch_size=4", "train.learning_rate=3e-3"])
    summary = api.train(cfg, wd, show_progress=False, verbose=False)
    return wd, summary


def test_au_pretraining_runs_and_training_loss_decreases(pretrain_run):
    wd, summary = pretrain_run
    assert summary["samples"] == 4 and summary["folds"] == 0       # protocol "all": no test split
    recs = [r for r in read_jsonl(wd / "metrics.jsonl") if r["event"] == "epoch"]
    assert [r["epoch"] for r in recs] == [1, 2, 3, 4]
    assert all(r["ce"] > 0 for r in recs)                           # computed, but weighted 0
    au_loss = [r["bce_afe"] + r["bce_gat"] for r in recs]
    assert au_loss[-1] < au_loss[0], au_loss
    meta = json.loads((wd / "final_model" / "metadata.json").read_text())
    assert meta["num_classes"] == 7 and meta["use_au_branch"] is True
    assert meta["config"]["train"]["alpha"] == [0.0, 0.8, 0.8]


def test_predict_cli_on_real_clip(pretrain_run, capsys):
    wd, _ = pretrain_run
    from fedpsyau_jax.cli import main
    assert main(["predict", "--video", str(CLIP), "--onset", "0", "--apex", "35",
                 "--checkpoint", str(wd), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    probs = np.array(list(out["emotion_prob"].values()))
    assert len(probs) == 7 and np.all(probs >= 0)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert out["emotion"] == max(out["emotion_prob"], key=out["emotion_prob"].get)
    assert len(out["au_prob"]) == 12 and all(0 <= p <= 1 for p in out["au_prob"].values())
    assert (out["onset"], out["apex"]) == (0, 35)
    # human-readable form, apex spotted automatically
    assert main(["predict", "--video", str(CLIP), "--checkpoint", str(wd / "final_model")]) == 0
    text = capsys.readouterr().out
    assert "(spotted)" in text and "P(happiness) = " in text and "AU12" in text
    assert "model: FED-PsyAU, 7 classes" in text and "accuracy not measured" in text  # the model card


def test_pretrained_au_branch_loads_into_fold_states(pretrain_run):
    wd, _ = pretrain_run
    params, stats = pretrained_variables(wd / "final_model")
    k = 2
    fake = lambda tree: {n: {"w": jnp.zeros((k, 3))} for n in tree}
    states = TrainState(params={"lfe": {"w": jnp.zeros((k, 2))}, "dsi": {"w": jnp.zeros((k, 2))}},
                        batch_stats={}, priors={}, opt_state=None, step=jnp.zeros(k), key=jnp.zeros((k, 2)))
    with pytest.raises(ValueError, match="lfe"):
        load_pretrained(states, {"lfe": {"w": np.ones(3)}}, {})
    out = load_pretrained(states, {"lfe": {"w": np.ones(2)}, "dsi": {"w": np.ones(2)}}, {})
    np.testing.assert_array_equal(out.params["lfe"]["w"], np.ones((k, 2)))
    np.testing.assert_array_equal(out.params["dsi"]["w"], np.zeros((k, 2)))    # classifier not copied
    assert {"lfe", "sse", "au_head_gat", "gat_glob"} <= set(params) and "dsi" in params
    del fake
