"""``fedpsyau preprocess`` end to end on the real clip fixture (MIT, tests/fixtures/faces)."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_pipelines.clip_record import ClipRecord
from fedpsyau_jax.cli import main

FACES = Path(__file__).resolve().parent / "fixtures" / "faces"
CLIP = FACES / "single_face.mp4"


def test_video_writes_sample_and_rerun_is_cached(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["preprocess", "--video", str(CLIP), "--onset", "0", "--apex", "35", "--out", str(out)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "done: 1  skipped: 0  cached: 0" in first
    files = list(out.glob("single_face-*.npz"))
    assert len(files) == 1 and str(files[0]) in first
    with np.load(files[0]) as z:
        assert z["flow128"].shape == (128, 128, 3) and z["flow28"].shape == (28, 28, 3)
        assert z["landmarks"].shape == (65, 2)
        assert 0.0 <= z["flow128"].min() and z["flow128"].max() <= 1.0
        assert int(z["onset"]) == 0 and int(z["apex"]) == 35
    mtime = files[0].stat().st_mtime_ns

    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "done: 0  skipped: 0  cached: 1" in second
    assert files[0].stat().st_mtime_ns == mtime


def test_video_errors_exit_2_with_one_line(tmp_path, capsys):
    # More bad-input cases (with what is and is not written) in test_bad_input.py.
    rc = main(["preprocess", "--video", str(CLIP), "--onset", "0", "--apex", "0", "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err == ("fedpsyau preprocess: error: single_face: onset frame 0 equals apex frame 0; give an "
                   "onset before the apex (the onset→apex flow would be zero)\n")
    assert main(["preprocess", "--video", str(CLIP), "--root", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("fedpsyau preprocess: error: --root/--scheme: only apply")


def test_dataset_mode_writes_manifest_and_samples(tmp_path, capsys, monkeypatch):
    frames = tmp_path / "CASME2" / "sub01" / "EP01_01f"
    frames.mkdir(parents=True)
    cap = cv2.VideoCapture(str(CLIP))
    for i in range(36):
        ok, f = cap.read()
        assert ok
        if i in (0, 35):
            cv2.imwrite(str(frames / f"img{i}.jpg"), f)
    cap.release()
    records = [
        ClipRecord("casme2", "01", "EP01_01f", "sub01_EP01_01f", 0, 35, None, frozenset({12}),
                   "happiness", 1, frame_dir=frames),
        ClipRecord("casme2", "01", "EP01_02", "sub01_EP01_02", 0, 35, None, frozenset(),
                   "others", None, frame_dir=frames),
    ]
    import data_pipelines.datasets as datasets
    seen = {}

    def fake_read_records(name, root, **kw):
        seen.update(name=name, root=root, **kw)
        return records

    monkeypatch.setattr(datasets, "read_records", fake_read_records)
    out = tmp_path / "out"
    argv = ["preprocess", "--dataset", "casme2", "--root", str(tmp_path / "CASME2"), "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert seen == {"name": "casme2", "root": tmp_path / "CASME2", "scheme": "megc3"}
    assert "records: 2  done: 1  cached: 0  skipped: 1" in text
    manifest = json.loads((out / "skipped_samples.json").read_text())
    assert list(manifest) == ["sub01_EP01_02"] and "label is None" in manifest["sub01_EP01_02"]
    with np.load(out / "casme2_samples.npz") as z:
        assert z["name"].tolist() == ["sub01_EP01_01f"]
        assert z["class_names"].tolist() == ["negative", "positive", "surprise"]
        assert z["flow128"].shape == (1, 128, 128, 3)
    assert main(argv) == 0
    assert "done: 0  cached: 1  skipped: 1" in capsys.readouterr().out

    # Nothing processable → exit status 1.
    monkeypatch.setattr(datasets, "read_records", lambda name, root, **kw: records[1:])
    assert main(argv) == 1
