"""``fedpsyau data import-megc2019`` on miniature clones of the two public repositories
(three samples, one per database; faces from the MIT-licensed fixture clip)."""
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from fedpsyau_jax.cli import main

ROOT = Path(__file__).resolve().parent.parent
FACE = ROOT / "tests" / "fixtures" / "faces" / "single_face_f035.png"
# (dataset, sub, filename_o, label, sample name, flow file name): the SMIC flow spells the
# inner subject with two digits, as 93 SMIC flows of the release do.
ROWS = (
    ("casme2", "sub01", "EP02_01f", "1", "sub01_EP02_01f", "sub01_EP02_01f .png"),
    ("samm", "006", "006_1_2", "0", "006_006_1_2", "006_006_1_2 .png"),
    ("smic", "s01", "s01_ne_01", "0", "s01_s1_ne_01", "s01_s01_ne_01 .png"),
)


def _xlsx(path: Path, sheet: str, rows: list[list]) -> None:
    wb = openpyxl.Workbook()
    wb.active.title = sheet
    for r in rows:
        wb.active.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


def _htnet(dest: Path) -> Path:
    flows, faces = dest / "datasets" / "STSNet_whole_norm_u_v_os", dest / "datasets" / "combined_datasets_whole"
    flows.mkdir(parents=True)
    faces.mkdir(parents=True)
    lines = ["dataset,sub,filename_o,label,apex,imagename,sub_filename"]
    grey = cv2.cvtColor(cv2.imread(str(FACE), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)  # grey in RGB, as released
    face = cv2.resize(grey, (224, 224), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    for ds, sub, fn, label, name, flow in ROWS:
        lines.append(f"{ds},{sub},{fn},{label},,{name}.jpg,")
        assert cv2.imwrite(str(flows / flow), rng.integers(1, 256, (28, 28, 3), dtype=np.uint8))
        assert cv2.imwrite(str(faces / f"{name}.jpg"), face)
    (dest / "combined_3_class2_for_optical_flow.csv").write_text("\n".join(lines) + "\n")
    return dest


def _reference(dest: Path) -> Path:
    coding = dest / "Fed_Framework" / "data_coding"
    _xlsx(coding / "CASME2-coding.xlsx", "Sheet1",
          [["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"],
           ["01", "EP02_01f", 46, 59, 86, "12", "happiness"]])
    _xlsx(coding / "SAMM-coding.xlsx", "MICRO_ONLY",
          [["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Action Units", "Estimated Emotion"],
           ["006", "006_1_2", 5562, 5588, 5632, "4+7", "Anger"]])
    return dest


@pytest.fixture
def clones(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDPSYAU_CACHE", str(tmp_path / "cache"))  # keep the user's cache untouched
    return _htnet(tmp_path / "HTNet"), _reference(tmp_path / "FED-PsyAU"), tmp_path / "data"


def _import(htnet, out, *extra):
    return main(["data", "import-megc2019", "--htnet", str(htnet), "--out", str(out), *extra])


def _facts(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.strip().splitlines())


def test_import_lays_out_what_the_loader_reads(clones, capsys, monkeypatch):
    htnet, ref, out = clones
    assert _import(htnet, out, "--reference", str(ref)) == 0
    res = capsys.readouterr()
    assert _facts(res.out)["samples"] == "3 (casme2 1, samm 1, smic 1)"
    assert "3 samples, the public release has 442" in res.err  # a warning, not an error
    assert "stage 1" not in res.err
    data = out / "megc2019_htnet"
    assert sorted(p.name for p in (data / "flow28").iterdir()) == sorted(r[5] for r in ROWS)
    manifest = json.loads((data / "import_manifest.json").read_text())
    assert manifest["counts"]["samples"] == 3 and manifest["coding_sheets_missing"] == []
    assert len(manifest["files"]) == 1 + 3 + 3 + 2  # CSV, flows, faces, sheets
    for rel, f in manifest["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == f["sha256"], rel
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no temporary folder left

    monkeypatch.setenv("FEDPSYAU_SHARED_DATA", str(out))
    assert main(["data", "summary", "megc2019_composite"]) == 0
    f = _facts(capsys.readouterr().out)
    assert (f["samples"], f["subjects"], f["classes"], f["with_au_labels"]) == ("3", "3", "2/1/0", "2")
    assert f["datasets"] == "casme2=1,samm=1,smic=1" and f["au_unmatched"] == "0"


def _drop_flow(htnet):
    (htnet / "datasets" / "STSNet_whole_norm_u_v_os" / "006_006_1_2 .png").unlink()
    return "006_006_1_2 .png: missing (flow of sample 006_006_1_2)"


def _flow_without_space(htnet):
    d = htnet / "datasets" / "STSNet_whole_norm_u_v_os"
    (d / "sub01_EP02_01f .png").rename(d / "sub01_EP02_01f.png")
    return "sub01_EP02_01f.png: misnamed flow of sample sub01_EP02_01f: the release names it 'sub01_EP02_01f .png'"


def _small_face(htnet):
    cv2.imwrite(str(htnet / "datasets" / "combined_datasets_whole" / "s01_s1_ne_01.jpg"), np.full((100, 90, 3), 128, np.uint8))
    return "s01_s1_ne_01.jpg: apex face is 100x90x3, expected 224x224"


def _small_flow(htnet):
    cv2.imwrite(str(htnet / "datasets" / "STSNet_whole_norm_u_v_os" / "s01_s01_ne_01 .png"), np.ones((32, 32, 3), np.uint8))
    return "s01_s01_ne_01 .png: flow is 32x32x3, expected 28x28x3"


@pytest.mark.parametrize("spoil", [_drop_flow, _flow_without_space, _small_face, _small_flow])
def test_a_bad_file_is_one_line_naming_it_and_nothing_is_written(clones, capsys, spoil):
    htnet, ref, out = clones
    expected = spoil(htnet)
    assert _import(htnet, out, "--reference", str(ref)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines  # the problem, then the error line
    assert lines[0].startswith(str(htnet / "datasets")) and lines[0].endswith(expected), lines[0]
    assert lines[1] == f"fedpsyau data: error: MEGC2019 import: 1 problem(s) above; nothing was written to {out}"
    assert not out.exists() and list(out.parent.glob(".*")) == []


def test_every_problem_is_listed(clones, capsys):
    htnet, ref, out = clones
    _drop_flow(htnet)
    _small_face(htnet)
    (ref / "Fed_Framework" / "data_coding" / "SAMM-coding.xlsx").write_bytes(b"not a workbook")
    assert _import(htnet, out, "--reference", str(ref)) == 2
    err = capsys.readouterr().err
    assert "missing (flow of sample 006_006_1_2)" in err and "apex face is 100x90x3" in err
    assert "SAMM-coding.xlsx: not a readable coding sheet" in err and "3 problem(s) above" in err
    assert not out.exists()


@pytest.mark.parametrize("with_reference", [False, True])
def test_without_coding_sheets_the_flows_import_with_one_warning(clones, capsys, with_reference, tmp_path):
    htnet, _, out = clones
    extra = ["--reference", str(tmp_path / "empty_clone")] if with_reference else []
    if with_reference:
        (tmp_path / "empty_clone").mkdir()
    assert _import(htnet, out, *extra) == 0
    res = capsys.readouterr()
    warning = [ln for ln in res.err.splitlines() if "coding sheets" in ln]
    assert len(warning) == 1
    assert "CASME2-coding.xlsx, SAMM-coding.xlsx absent" in warning[0]
    assert "AU pre-training (stage 1) cannot run" in warning[0]
    from data_pipelines.megc2019_import import flow_only_command

    command = flow_only_command(out.absolute())
    assert warning[0].endswith(command)
    assert _facts(res.out)["coding_sheets_missing"] == "CASME2-coding.xlsx, SAMM-coding.xlsx"
    assert not (out / "annotations").exists() and (out / "megc2019_htnet" / "flow28").is_dir()

    # the command's overrides are a valid flow-only run of the recipe without stage 1
    from fedpsyau_jax.config_loading import load_config
    from fedpsyau_jax.training.run_inputs import pretrain_epochs

    overrides = [a.removeprefix("--config.") for a in command.split() if a.startswith("--config.")]
    cfg = load_config(ROOT / "configs" / "megc2019_composite_loso.py", overrides)
    assert cfg.data.kwargs.allow_missing_au_labels and not cfg.model.use_au_branch and pretrain_epochs(cfg) == 0


def test_an_existing_import_is_replaced_only_with_force(clones, capsys):
    htnet, ref, out = clones
    assert _import(htnet, out, "--reference", str(ref)) == 0
    (out / "faces").mkdir()  # another folder of the data root: never touched
    (out / "faces" / "keep.txt").write_text("x")
    csv = htnet / "combined_3_class2_for_optical_flow.csv"
    csv.write_text(csv.read_text().replace("casme2,sub01,EP02_01f,1", "casme2,sub01,EP02_01f,2"))
    capsys.readouterr()
    assert _import(htnet, out, "--reference", str(ref)) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"fedpsyau data: error: --out {out / 'megc2019_htnet'}: already holds an import " \
                          "(give --force to replace it)"
    assert ",1," in (out / "megc2019_htnet" / "combined_3_class2_for_optical_flow.csv").read_text()
    assert _import(htnet, out, "--reference", str(ref), "--force") == 0
    manifest = json.loads((out / "megc2019_htnet" / "import_manifest.json").read_text())
    assert manifest["counts"]["classes"] == [2, 0, 1]
    assert (out / "faces" / "keep.txt").read_text() == "x" and (out / "annotations" / "SAMM-coding.xlsx").is_file()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


def test_a_missing_clone_folder_is_one_line(tmp_path, capsys):
    assert _import(tmp_path / "nope", tmp_path / "out") == 2
    assert capsys.readouterr().err == (
        f"fedpsyau data: error: --htnet {tmp_path / 'nope'}: does not exist (give the HTNet clone's folder)\n")
    assert not (tmp_path / "out").exists()
