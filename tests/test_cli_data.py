"""``fedpsyau data summary`` on the real composite and on annotation-only roots."""
import pytest

from fedpsyau_jax.cli import main


def _facts(capsys):
    out = capsys.readouterr().out
    return dict(line.split(": ", 1) for line in out.strip().splitlines())


def test_summary_composite(shared_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FEDPSYAU_CACHE", str(tmp_path))  # keep the user's cache untouched
    assert main(["data", "summary", "megc2019_composite"]) == 0
    f = _facts(capsys)
    assert f["samples"] == "442" and f["subjects"] == "68" and f["classes"] == "250/109/83"
    assert f["with_au_labels"] == "278" and f["class_names"] == "negative/positive/surprise"
    assert list(tmp_path.glob("megc2019_composite-*.npz"))


def test_summary_annotation_only_sheet(shared_root, capsys):
    sheet = shared_root / "annotations" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    assert main(["data", "summary", "casme3", "--root", str(sheet)]) == 0
    f = _facts(capsys)
    assert (f["samples"], f["subjects"], f["classes"]) == ("699", "88", "457/55/187")
    assert f["dropped_no_class"] == "161" and f["source"] == "annotation records"


def test_summary_fixture_records_only(tmp_path, capsys):
    from data_pipelines.dataset_fixtures import write_fixture_layout
    root = write_fixture_layout("dfme", tmp_path / "dfme", n_subjects=2, clips_per_subject=2)
    assert main(["data", "summary", "dfme", "--root", str(root), "--records-only"]) == 0
    f = _facts(capsys)
    assert f["samples"] == "4" and f["classes"] == "1/2/1/0/0/0/0" and f["with_frames"] == "4"


def test_unknown_dataset_is_rejected(capsys):
    assert main(["data", "summary", "nosuchset"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedpsyau data: error: dataset 'nosuchset': unknown name; choose from ")
    assert err.count("\n") == 1
