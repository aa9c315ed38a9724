"""Bad input and failed starts through the CLI (issue 13): one clear line, nothing stale,
nothing lost.

One table: each case builds its inputs in ``tmp_path`` (small broken copies of the
shared composite, the fixture face clip, synthetic AVI videos, a tiny CASME II layout),
runs one ``fedpsyau`` command in-process and checks

- the exit status (2 for an error, 0 where the issue asks for a warning instead);
- stderr: exactly one ``fedpsyau <verb>: error: <message>`` line whose message names
  the input, plus the expected warning lines and nothing else;
- that nothing under ``tmp_path`` was written, changed or removed by a failing
  command (inputs, caches, stale run files), and for the ``work=False`` cases that
  nothing was decoded, detected or loaded before the error (the functions that do
  the work are replaced by ones that fail the test if called).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from fedpsyau_jax.cli import main

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "fixtures" / "faces" / "single_face.mp4"
DEMO = str(ROOT / "configs" / "synthetic_demo.py")
CSV_NAME = "combined_3_class2_for_optical_flow.csv"
# One composite row per source dataset (AU sheets matter for two of them).
COMPOSITE_ROWS = ("sub01_EP02_01f", "006_006_1_2", "s01_s1_ne_01")
# Folders below tmp_path that the commands write (outputs and caches).
OUTPUT_DIRS = ("out", "cache", "default_cache")


@dataclasses.dataclass
class Case:
    argv: list[str]
    err: list[str] = dataclasses.field(default_factory=list)   # fragments of the error line
    rc: int = 2
    warnings: list[list[str]] = dataclasses.field(default_factory=list)  # fragments per warning line
    out: list[str] = dataclasses.field(default_factory=list)   # fragments of stdout
    work: bool = True        # False: nothing may be decoded / detected / loaded
    check: Callable[[Path, str], None] | None = None  # extra checks after the command


CASES: dict[str, Callable[[Path], Case]] = {}


def case(fn):
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


# ---------------------------------------------------------------- helpers

def _frames() -> tuple[np.ndarray, ...]:
    from data_pipelines.dataset_fixtures import _video_frames
    return _video_frames()


def write_avi(path: Path, frames) -> Path:
    """An MJPG AVI (its header states the frame count, so truncation is detectable)."""
    import cv2
    h, w = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    for f in frames:
        vw.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    vw.release()
    return path


def blank_frame() -> np.ndarray:
    return np.full_like(_frames()[0], 128)


def composite_copy(tmp: Path, annotations: bool = True, edit=None) -> Path:
    """``tmp/megc2019_htnet`` with 3 rows of the real composite (their flow and face
    files copied) and, if ``annotations``, ``tmp/annotations`` linking the real sheets.
    ``edit(rows)`` may change the CSV rows before they are written."""
    from fedpsyau_jax.core.shared_data import shared_data_root
    shared = shared_data_root(required=False)
    if shared is None:
        pytest.skip("shared data folder not found (set FEDPSYAU_SHARED_DATA)")
    src = shared / "megc2019_htnet"
    dst = tmp / "megc2019_htnet"
    (dst / "flow28").mkdir(parents=True)
    (dst / "apex_faces").mkdir()
    with open(src / CSV_NAME, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames
        rows = [r for r in reader if r["imagename"][:-4] in COMPOSITE_ROWS]
    assert len(rows) == 3
    flows = {p.name for p in (src / "flow28").iterdir()}
    for r in rows:
        name = r["imagename"][:-4]
        flow = next(fn for fn in (f"{name} .png", f"s01_s01_ne_01 .png") if fn in flows)
        shutil.copy(src / "flow28" / flow, dst / "flow28" / flow)
        shutil.copy(src / "apex_faces" / f"{name}.jpg", dst / "apex_faces" / f"{name}.jpg")
    if edit is not None:
        edit(rows)
    with open(dst / CSV_NAME, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    if annotations:
        (tmp / "annotations").mkdir()
        for sheet in ("CASME2-coding.xlsx", "SAMM-coding.xlsx"):
            os.symlink(shared / "annotations" / sheet, tmp / "annotations" / sheet)
    return dst


def casme2_layout(tmp: Path, edit=None) -> Path:
    """A tiny CASME II release (fixture faces): 1 subject, 2 clips; ``edit(ws)`` may
    change the sheet (openpyxl worksheet, header on row 1)."""
    from data_pipelines.dataset_fixtures import write_fixture_layout
    root = write_fixture_layout("casme2", tmp / "CASME2", n_subjects=1, clips_per_subject=2)
    if edit is not None:
        import openpyxl
        sheet = root / "CASME2-coding-20140508.xlsx"
        wb = openpyxl.load_workbook(sheet)
        edit(wb["Sheet1"])
        wb.save(sheet)
    return root


def run_config(tmp: Path, *overrides: str) -> list[str]:
    return ["train", f"--config={DEMO}", *[f"--config.{o}" for o in overrides],
            f"--workdir={tmp / 'run'}", "--no-progress"]


def demo_config_json(tmp: Path, **changes) -> dict:
    from fedpsyau_jax.config_loading import load_config
    from fedpsyau_jax.training.preflight import config_dict
    d = config_dict(load_config(DEMO, []))
    for k, v in changes.items():
        sec, key = k.split("__")
        d[sec][key] = v
    return d


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink() or p.is_dir():
            out[rel] = ("link" if p.is_symlink() else "dir",)
        else:
            st = p.stat()
            out[rel] = ("file", st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


# ---------------------------------------------------------------- preprocess --video

@case
def case_video_missing(t):
    return Case(["preprocess", "--video", f"{t}/nope.mp4", "--out", f"{t}/out"],
                err=[f"{t}/nope.mp4: does not exist"], work=False)


@case
def case_video_missing_with_cache_entry(t):
    (t / "in").mkdir()
    shutil.copy(CLIP, t / "in" / "clip.mp4")
    argv = ["preprocess", "--video", f"{t}/in/clip.mp4", "--onset", "0", "--apex", "35", "--out", f"{t}/out"]
    assert main(argv) == 0
    assert len(list((t / "out").glob("clip-*.npz"))) == 1
    (t / "in" / "clip.mp4").unlink()   # the cache entry stays; the command must not answer from it
    return Case(argv, err=[f"{t}/in/clip.mp4: does not exist"], work=False)


@case
def case_video_out_is_file(t):
    (t / "out.txt").write_text("not a folder\n")
    return Case(["preprocess", "--video", str(CLIP), "--out", f"{t}/out.txt"],
                err=[f"--out {t}/out.txt: is a file, not a folder"], work=False)


@case
def case_video_out_below_file(t):
    (t / "f.txt").write_text("x\n")
    return Case(["preprocess", "--video", str(CLIP), "--out", f"{t}/f.txt/sub"],
                err=[f"--out {t}/f.txt/sub: {t}/f.txt is a file"], work=False)


@case
def case_video_onset_equals_apex(t):
    return Case(["preprocess", "--video", str(CLIP), "--onset", "5", "--apex", "5", "--out", f"{t}/out"],
                err=["single_face: onset frame 5 equals apex frame 5"], work=False)


@case
def case_video_unreadable(t):
    (t / "broken.mp4").write_bytes(b"this is not a video\n" * 50)
    return Case(["preprocess", "--video", f"{t}/broken.mp4", "--out", f"{t}/out"],
                err=[f"{t}/broken.mp4: OpenCV cannot open this video"])


@case
def case_video_no_face_anywhere(t):
    write_avi(t / "blank.avi", [blank_frame()] * 3)
    return Case(["preprocess", "--video", f"{t}/blank.avi", "--apex", "2", "--out", f"{t}/out"],
                err=["blank: no face found", "in any of the 3 frames (0..2)"])


@case
def case_video_truncated_apex_missing(t):
    p = write_avi(t / "trunc.avi", [_frames()[k] for k in range(0, 40, 2)])   # 20 frames
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return Case(["preprocess", "--video", str(p), "--onset", "0", "--apex", "15", "--out", f"{t}/out"],
                err=["trunc: apex frame 15 not in the clip", "(frames 0..9"],
                warnings=[[f"{p}: truncated video: only 10 decodable frames, the container claims 20"]])


@case
def case_video_truncated_warns(t):
    p = write_avi(t / "trunc.avi", [_frames()[k] for k in range(0, 40, 2)])
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])

    def check(t, out):
        assert "onset: 0  apex: 9" in out
    return Case(["preprocess", "--video", str(p), "--onset", "0", "--apex", "9", "--out", f"{t}/out"],
                rc=0, warnings=[[f"{p}: truncated video: only 10 decodable frames, the container claims 20"]],
                out=["done: 1  skipped: 0  cached: 0"], check=check)


@case
def case_video_faceless_first_frames(t):
    frames = [blank_frame()] * 3 + [_frames()[k] for k in range(0, 40, 5)]   # face from frame 3
    p = write_avi(t / "late_face.avi", frames)
    return Case(["preprocess", "--video", str(p), "--apex", "10", "--out", f"{t}/out"], rc=0,
                warnings=[["late_face: no face in the first 3 frame(s) (0..2); onset is frame 3, "
                           "the first frame with a face"]],
                out=["onset: 3  apex: 10", "(onset = first frame with a face; 3 frame(s) before it have none)"])


@case
def case_video_same_name_different_content(t):
    """A different video with the same file name is computed, not answered from the cache."""
    a = write_avi(t / "a" / "clip.avi", [_frames()[k] for k in (0, 10, 20, 35)])
    b = write_avi(t / "b" / "clip.avi", [_frames()[k][:, ::-1].copy() for k in (0, 10, 20, 35)])
    out = t / "out"
    argv = ["preprocess", "--video", str(a), "--onset", "0", "--apex", "3", "--out", str(out)]
    assert main(argv) == 0

    def check(t, stdout):
        files = sorted(out.glob("clip-*.npz"))
        assert len(files) == 2
        with np.load(files[0]) as z0, np.load(files[1]) as z1:
            assert not np.array_equal(z0["flow128"], z1["flow128"])
    return Case(["preprocess", "--video", str(b), "--onset", "0", "--apex", "3", "--out", str(out)],
                rc=0, out=["done: 1  skipped: 0  cached: 0"], check=check)


@case
def case_video_replaced_in_place(t):
    """The same path with new content (size/mtime/hash change) is recomputed."""
    p = write_avi(t / "in" / "clip.avi", [_frames()[k] for k in (0, 10, 20, 35)])
    argv = ["preprocess", "--video", str(p), "--onset", "0", "--apex", "3", "--out", f"{t}/out"]
    assert main(argv) == 0
    write_avi(p, [_frames()[k] for k in (0, 12, 24, 30)])
    return Case(argv, rc=0, out=["done: 1  skipped: 0  cached: 0"])


# ---------------------------------------------------------------- preprocess --dataset

@case
def case_dataset_unknown_name(t):
    return Case(["preprocess", "--dataset", "casme_2", "--root", str(t), "--out", f"{t}/out"],
                err=["dataset 'casme_2': unknown name; choose from", "(did you mean 'casme2'?)"], work=False)


@case
def case_dataset_out_is_file(t):
    root = casme2_layout(t)
    (t / "out").write_text("x\n")
    return Case(["preprocess", "--dataset", "casme2", "--root", str(root), "--out", f"{t}/out"],
                err=[f"--out {t}/out: is a file, not a folder"], work=False)


@case
def case_dataset_skipped_samples_on_console(t):
    root = casme2_layout(t)
    clip = root / "CASME2_RAW_selected" / "sub01" / "EP02_01f"
    apex = 30 + 7   # second clip: frames 30..38, apex 37 (dataset_fixtures)
    (clip / f"img{apex}.jpg").unlink()

    def check(t, out):
        manifest = json.loads((t / "out" / "skipped_samples.json").read_text())
        assert list(manifest) == ["sub01_EP02_01f"]
    return Case(["preprocess", "--dataset", "casme2", "--root", str(root), "--out", f"{t}/out",
                 "--no-progress"], rc=0,
                out=["records: 2  done: 1  cached: 0  skipped: 1",
                     "skipped sub01_EP02_01f: MissingFrameError: sub01_EP02_01f: apex frame 37 not in the clip"],
                check=check)


@case
def case_dataset_changed_frame_is_recomputed(t):
    """Dataset samples are cached per clip keyed on the frame files used: a replaced
    apex frame is recomputed, the unchanged clip is served from the cache."""
    import cv2
    root = casme2_layout(t)
    argv = ["preprocess", "--dataset", "casme2", "--root", str(root), "--out", f"{t}/out", "--no-progress"]
    assert main(argv) == 0
    apex = root / "CASME2_RAW_selected" / "sub01" / "EP02_01f" / "img37.jpg"
    cv2.imwrite(str(apex), _frames()[30])
    return Case(argv, rc=0, out=["records: 2  done: 1  cached: 1  skipped: 0"])


@case
def case_dataset_root_is_only_a_sheet(t):
    root = casme2_layout(t)
    sheet = root / "CASME2-coding-20140508.xlsx"
    return Case(["preprocess", "--dataset", "casme2", "--root", str(sheet), "--out", f"{t}/out"],
                err=[f"--root {sheet}: only a label sheet, no frame folders found for casme2"], work=False)


@case
def case_sheet_blank_subject(t):
    def edit(ws):
        ws["A3"] = None
    root = casme2_layout(t, edit)
    return Case(["data", "summary", "casme2", "--root", str(root), "--records-only"],
                err=[f"CASME II {root}/CASME2-coding-20140508.xlsx sheet 'Sheet1' row 3: empty 'subject' cell"])


@case
def case_sheet_malformed_frame(t):
    def edit(ws):
        ws["D2"] = "ten"
    root = casme2_layout(t, edit)
    return Case(["preprocess", "--dataset", "casme2", "--root", str(root), "--out", f"{t}/out"],
                err=[f"CASME II {root}/CASME2-coding-20140508.xlsx sheet 'Sheet1' row 2: "
                     "'onset' is not a number: 'ten'"], work=False)


@case
def case_sheet_unknown_emotion(t):
    def edit(ws):
        ws["I3"] = "glee"
    root = casme2_layout(t, edit)
    return Case(["data", "summary", "casme2", "--root", str(root), "--records-only"],
                err=["CASME II", "row 3: casme2: unknown emotion 'glee'"])


@case
def case_sheet_missing(t):
    (t / "CASME2").mkdir()
    return Case(["data", "summary", "casme2", "--root", f"{t}/CASME2", "--records-only"],
                err=[f"CASME II dataset root {t}/CASME2: no label sheet matching"])


# ---------------------------------------------------------------- data summary / composite

@case
def case_data_unknown_name(t):
    return Case(["data", "summary", "megc2019"],
                err=["dataset 'megc2019': unknown name; choose from megc2019_composite",
                     "(did you mean 'megc2019_composite'?)"], work=False)


def _composite_argv(t: Path) -> list[str]:
    return ["data", "summary", "megc2019_composite", "--root", f"{t}/megc2019_htnet",
            "--cache-dir", f"{t}/cache"]


@case
def case_composite_blank_subject(t):
    def edit(rows):
        rows[1]["sub"] = " "
    composite_copy(t, edit=edit)
    return Case(_composite_argv(t), err=[f"{t}/megc2019_htnet/{CSV_NAME} line 3: 'sub' is blank"],
                work=False)


@case
def case_composite_blank_name(t):
    def edit(rows):
        rows[0]["imagename"] = ""
    composite_copy(t, edit=edit)
    return Case(_composite_argv(t), err=[f"{t}/megc2019_htnet/{CSV_NAME} line 2: 'imagename' is blank"],
                work=False)


@case
def case_composite_bad_label(t):
    def edit(rows):
        rows[2]["label"] = "3"
    composite_copy(t, edit=edit)
    return Case(_composite_argv(t), err=[f"{t}/megc2019_htnet/{CSV_NAME} line 4: label '3' is not 0/1/2"],
                work=False)


@case
def case_composite_without_annotations(t):
    composite_copy(t, annotations=False)
    return Case(_composite_argv(t),
                err=[f"MEGC2019 composite AU sheets: folder {t}/annotations does not exist "
                     f"(searched {t}/annotations)", "allow_missing_au_labels"], work=False)


@case
def case_composite_annotations_without_sheets(t):
    composite_copy(t, annotations=False)
    (t / "annotations").mkdir()
    return Case(_composite_argv(t),
                err=[f"no CASME2*.xlsx / SAMM*.xlsx in {t}/annotations"], work=False)


@case
def case_composite_missing_flow_dir(t):
    shutil.rmtree(composite_copy(t) / "flow28")
    return Case(_composite_argv(t), err=[f"MEGC2019 composite {t}/megc2019_htnet/flow28: does not exist"],
                work=False)


@case
def case_composite_input_missing_with_cache_entry(t):
    composite_copy(t)
    assert main(_composite_argv(t)) == 0
    assert len(list((t / "cache").glob("megc2019_composite-*.npz"))) == 1
    (t / "megc2019_htnet" / "apex_faces" / "006_006_1_2.jpg").unlink()
    return Case(_composite_argv(t),
                err=[f"sample 006_006_1_2: apex face {t}/megc2019_htnet/apex_faces/006_006_1_2.jpg "
                     "does not exist"])


@case
def case_composite_allow_missing_au_labels(t):
    composite_copy(t, annotations=False)
    return Case(_composite_argv(t) + ["--allow-missing-au-labels"], rc=0,
                out=["samples: 3", "subjects: 3", "with_au_labels: 0"],
                warnings=[[f"no AU coding sheet for casme2/samm in {t}/annotations; their samples "
                           "have no AU labels (allow_missing_au_labels)"]])


# ---------------------------------------------------------------- train (start-up)

@case
def case_train_unknown_dataset(t):
    return Case(run_config(t, "data.name=megc2019"),
                err=["dataset 'megc2019': unknown name", "(did you mean 'megc2019_composite'?)"], work=False)


@case
def case_train_unknown_protocol(t):
    return Case(run_config(t, "protocol.kind=lsoo"),
                err=["protocol.kind 'lsoo': unknown name; choose from loso, kfold, all, inner_val, leave_dataset_out (did you mean 'loso'?)"],
                work=False)


@case
def case_train_workdir_is_file(t):
    (t / "run").write_text("x\n")
    return Case(run_config(t), err=[f"--workdir {t}/run: is a file, not a folder"], work=False)


@case
def case_train_missing_init_checkpoint(t):
    return Case(run_config(t, f"model.init_from={t}/pretrained/final_model"),
                err=[f"model.init_from {t}/pretrained/final_model: does not exist"], work=False)


@case
def case_train_init_checkpoint_with_in_fold_pretraining(t):
    return Case(run_config(t, f"model.init_from={t}/pretrained/final_model", "pretrain.epochs=2"),
                err=[f"model.init_from {t}/pretrained/final_model with pretrain.epochs 2: in-fold AU "
                     "pre-training would replace the init checkpoint"], work=False)


@case
def case_train_one_shared_pretraining_fold(t):
    return Case(run_config(t, "pretrain.epochs=2", "pretrain.subject_folds=1"),
                err=["pretrain.subject_folds 1: use 0 (one stage-1 run per fold) or k >= 2"], work=False)


@case
def case_train_platt_calibration_without_pretraining(t):
    return Case(run_config(t, "pretrain.epochs=0", "pretrain.au_calibration=platt"),
                err=["pretrain.au_calibration platt", "needs AU pre-training (pretrain.epochs > 0)"], work=False)


@case
def case_train_unknown_au_calibration(t):
    return Case(run_config(t, "pretrain.epochs=2", "pretrain.au_calibration=isotonic"),
                err=["pretrain.au_calibration", "isotonic"], work=False)


@case
def case_train_stale_config_does_not_block(t):
    """A config.json left by a start that failed (no metrics/folds) is not 'a run with
    a different config': the corrected retry gets past it (here to its next problem)."""
    (t / "run").mkdir()
    (t / "run" / "config.json").write_text(json.dumps(demo_config_json(t, data__name="megc2019")))
    (t / "corrupt").mkdir()
    (t / "corrupt" / "metadata.json").write_text("{not json")
    return Case(run_config(t, f"model.init_from={t}/corrupt"),
                err=[f"checkpoint {t}/corrupt/metadata.json: corrupt metadata"], work=False)


@case
def case_train_started_run_with_other_config(t):
    (t / "run").mkdir()
    (t / "run" / "config.json").write_text(json.dumps(demo_config_json(t, train__epochs=3)))
    (t / "run" / "metrics.jsonl").write_text('{"event": "start"}\n')
    return Case(run_config(t), err=[f"--workdir {t}/run: holds a run with a different config "
                                    "(sections ['train'] differ)"], work=False)


# ---------------------------------------------------------------- evaluate / predict

@case
def case_evaluate_missing_workdir(t):
    return Case(["evaluate", "--workdir", f"{t}/nope"], err=[f"--workdir {t}/nope: does not exist"],
                work=False)


@case
def case_evaluate_not_a_run(t):
    (t / "run").mkdir()
    return Case(["evaluate", "--workdir", f"{t}/run"], err=[f"--workdir {t}/run: no config.json"],
                work=False)


@case
def case_evaluate_corrupt_fold_model(t):
    run = t / "run"
    model = run / "folds" / "000_syn_s01" / "model"
    model.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(demo_config_json(t)))
    (model / "metadata.json").write_text("{truncated")
    (model / "state").mkdir()
    return Case(["evaluate", "--workdir", str(run)],
                err=[f"checkpoint {model}/metadata.json: corrupt metadata"])


@case
def case_evaluate_missing_fold_model(t):
    run = t / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(demo_config_json(t)))
    return Case(["evaluate", "--workdir", str(run)],
                err=[f"{run}/folds/000_syn_s01/model: fold syn_s01 has no final model"])


@case
def case_predict_missing_checkpoint(t):
    return Case(["predict", "--video", str(CLIP), "--checkpoint", f"{t}/nockpt"],
                err=[f"--checkpoint {t}/nockpt: does not exist"], work=False)


@case
def case_predict_checkpoint_not_a_model(t):
    (t / "empty").mkdir()
    return Case(["predict", "--video", str(CLIP), "--checkpoint", f"{t}/empty"],
                err=[f"{t}/empty: neither a model checkpoint"], work=False)


@case
def case_predict_corrupt_checkpoint(t):
    (t / "model").mkdir()
    (t / "model" / "metadata.json").write_text("{\"num_classes\": 3,")
    return Case(["predict", "--video", str(CLIP), "--checkpoint", f"{t}/model"],
                err=[f"checkpoint {t}/model/metadata.json: corrupt metadata"], work=False)


@case
def case_predict_missing_video(t):
    (t / "model").mkdir()
    (t / "model" / "metadata.json").write_text("{}")
    return Case(["predict", "--video", f"{t}/nope.mp4", "--checkpoint", f"{t}/model"],
                err=[f"{t}/nope.mp4: does not exist"], work=False)


# ---------------------------------------------------------------- the table's runner

def _forbid_work(monkeypatch):
    """Make every function that decodes, detects or loads fail the test if called."""
    def boom(what):
        def f(*a, **k):
            raise AssertionError(f"{what} was called: the input was not checked before the work")
        return f
    import data_pipelines.megc2019_composite as comp
    import data_pipelines.video_io as vio
    import data_pipelines.video_pipeline as vp
    import fedpsyau_jax.api as api
    monkeypatch.setattr(vio.FrameSource, "__init__", boom("FrameSource"))
    monkeypatch.setattr(vp, "video_to_sample", boom("video_to_sample"))
    monkeypatch.setattr(vp, "records_to_samples", boom("records_to_samples"))
    monkeypatch.setattr(comp, "detect_landmarks68", boom("composite landmarks"))
    monkeypatch.setattr(api, "load_samples", boom("api.load_samples"))
    monkeypatch.setattr(api, "load_model", boom("api.load_model"))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FEDPSYAU_CACHE", str(tmp_path / "default_cache"))
    c = CASES[name](tmp_path)
    capsys.readouterr()
    before = snapshot(tmp_path)
    if not c.work:
        _forbid_work(monkeypatch)
    rc = main(c.argv)
    out, err = capsys.readouterr()
    verb = c.argv[0]
    lines = err.splitlines()
    warn = [ln for ln in lines if ln.startswith(f"fedpsyau {verb}: warning: ")]
    errors = [ln for ln in lines if ln.startswith(f"fedpsyau {verb}: error: ")]
    assert rc == c.rc, (rc, err)
    assert len(warn) == len(c.warnings), err
    for ln, frags in zip(warn, c.warnings):
        for f in frags:
            assert f in ln, (f, ln)
    if c.rc == 2:
        assert len(errors) == 1, err
        for f in c.err:
            assert f in errors[0], (f, errors[0])
        assert "Traceback" not in err
        assert snapshot(tmp_path) == before, "a failing command wrote, changed or removed files"
    else:
        assert errors == [], err
        # A successful command may rewrite its outputs, but loses nothing and leaves
        # every input as it was.
        after = snapshot(tmp_path)
        assert set(before) <= set(after), f"files lost: {sorted(set(before) - set(after))}"
        inputs = {k: v for k, v in before.items() if k.split("/")[0] not in OUTPUT_DIRS}
        assert {k: after[k] for k in inputs} == inputs, "input files changed"
    assert len(lines) == len(warn) + len(errors), f"unexpected stderr lines: {err}"
    for f in c.out:
        assert f in out, (f, out)
    if c.check is not None:
        c.check(tmp_path, out)


def test_debug_shows_the_traceback(tmp_path):
    from data_pipelines.sample_errors import MissingMediaError
    with pytest.raises(MissingMediaError, match="does not exist"):
        main(["preprocess", "--video", f"{tmp_path}/nope.mp4", "--out", f"{tmp_path}/out", "--debug"])


def test_same_errors_from_the_python_api(tmp_path):
    from fedpsyau_jax import api
    from fedpsyau_jax.config_loading import load_config
    from fedpsyau_jax.core.errors import InputFileError, NameChoiceError, UserError
    from fedpsyau_jax.training.checkpoints import CheckpointError
    cfg = load_config(DEMO, ["protocol.kind=lsoo"])
    with pytest.raises(NameChoiceError, match="protocol.kind 'lsoo'"):
        api.train(cfg, tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(CheckpointError, match="neither a model checkpoint"):
        api.predict(CLIP, tmp_path)
    with pytest.raises(InputFileError, match="no config.json"):
        api.evaluate(tmp_path)
    from data_pipelines.datasets import load_dataset
    with pytest.raises(UserError, match="unknown name"):
        load_dataset("casme")


@pytest.mark.parametrize("flag", ["false", "true"])
def test_composite_au_labels_option_from_a_config_override(tmp_path, flag):
    from fedpsyau_jax import api
    from fedpsyau_jax.config_loading import load_config
    from fedpsyau_jax.core.errors import InputFileError
    root = composite_copy(tmp_path, annotations=False)
    cfg = load_config(ROOT / "configs" / "megc2019_composite_loso.py",
                      [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                       f"data.kwargs.allow_missing_au_labels={flag}"])
    if flag == "false":
        with pytest.raises(InputFileError, match="annotations does not exist"):
            api.load_samples(cfg)
    else:
        s = api.load_samples(cfg)
        assert len(s) == 3 and s.au_mask.sum() == 0 and s.meta["au_sheets_missing"] == ["casme2", "samm"]


def test_stale_config_json_passes_the_start_checks(tmp_path):
    """preflight alone: a leftover config.json (failed start) does not block, a started
    run with another config does."""
    from fedpsyau_jax.config_loading import load_config
    from fedpsyau_jax.training.checkpoints import CheckpointError
    from fedpsyau_jax.training.preflight import check_train_start
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(demo_config_json(tmp_path, data__name="megc2019")))
    cfg = load_config(DEMO, [])
    assert check_train_start(cfg, run)["data"]["name"] == "synthetic"
    (run / "folds").mkdir()
    with pytest.raises(CheckpointError, match="holds a run with a different config"):
        check_train_start(cfg, run)


def test_a_run_saved_before_an_option_existed_still_resumes(tmp_path):
    """A started run whose config.json lacks an option added later (here
    ``pretrain.subject_folds``) resumes under a config that leaves the option at its
    default, and is refused under one that sets it."""
    from fedpsyau_jax.config_loading import load_config
    from fedpsyau_jax.training.checkpoints import CheckpointError
    from fedpsyau_jax.training.preflight import check_train_start, config_dict

    cfg = load_config(DEMO, [])
    run = tmp_path / "run"
    run.mkdir()
    old = config_dict(cfg)
    del old["pretrain"]["subject_folds"], old["pretrain"]["au_calibration"]
    (run / "config.json").write_text(json.dumps(old))
    (run / "folds").mkdir()
    check_train_start(cfg, run)
    with pytest.raises(CheckpointError, match=r"sections \['pretrain'\] differ"):
        check_train_start(load_config(DEMO, ["pretrain.subject_folds=3"]), run)
