"""Long-video annotation readers (CAS(ME)^2, SAMM Long Videos) on small workbooks
written here in the publishers' layouts, and evaluate-spotting on top of them."""
import json

import openpyxl
import pytest

from data_pipelines.readers.casme2_long import read_casme2_long
from data_pipelines.readers.samm_long import read_samm_long
from data_pipelines.readers.sheet_table import SheetError


def write_casme2(path, rows):
    """CAS(ME)^2code_final(Updated).xlsx layout: sheet 1 no header (participant, name_n,
    onset, apex, offset, AUs, emotion, type, self-report); sheet 2 subject naming
    (folder number, subject label, participant); sheet 3 video naming (code as text, name)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    for r in rows:
        ws.append(r)
    s2 = wb.create_sheet("naming rule1")
    for r in [(15, "s15", 1), (16, "s16", 2)]:
        s2.append(r)
    s3 = wb.create_sheet("naming rule2")
    for r in [("0101", "disgust1"), ("0502", "happy2")]:
        s3.append(r)
    wb.save(path)
    return path


def write_samm_long(path, rows):
    """SAMM_LongVideos_V3_Release.xlsx layout: a preamble, then the header row."""
    wb = openpyxl.Workbook()
    ws = wb.active
    for line in ["SAMM Long Videos", "Release V3", None, "Frame numbers refer to the image files", None,
                 None, None, None, None, None]:
        ws.append([line])
    ws.append(["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
               "Action Units", "Notes"])
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


CASME2_ROWS = [
    (1, "disgust1_1", 557, 572, 608, "4+7", "disgust", "macro-expression", "disgust"),
    (1, "disgust1_2", 1200, 1206, 1211, "4", "disgust", "micro-expression", "disgust"),
    (2, "happy2_1", 40, 55, 0, "12", "happy", "macro-expression", "happy"),     # offset not coded
]


def test_casme2_long_reader(tmp_path):
    p = write_casme2(tmp_path / "CAS(ME)^2code_final(Updated).xlsx", CASME2_ROWS)
    ann = read_casme2_long(tmp_path)                         # found below the root by name
    assert [a.video for a in ann] == ["15_0101", "15_0101", "16_0502"]
    assert [(a.onset, a.apex, a.offset, a.kind) for a in ann] == [
        (557, 572, 608, "macro"), (1200, 1206, 1211, "micro"), (40, 55, 55, "macro")]
    assert ann[1].aus == "4" and ann[2].emotion == "happy" and ann[0].subject == "15"
    assert read_casme2_long(p) == ann


def test_casme2_long_reader_names_the_bad_row(tmp_path):
    rows = CASME2_ROWS + [(1, "disgust1_3", 900, 905, 910, "4", "disgust", "blink", "")]
    p = write_casme2(tmp_path / "CAS(ME)^2code_final(Updated).xlsx", rows)
    with pytest.raises(SheetError, match=r"row 4: expression type 'blink'"):
        read_casme2_long(p)


def test_samm_long_reader(tmp_path):
    p = write_samm_long(tmp_path / "SAMM_LongVideos_V3_Release.xlsx", [
        ("006", "006_1_1", 1, 5562, 5588, 5607, 46, "Micro - 1/2", "12", ""),
        (6, "006_1_2", 1, 7000, 7100, 7400, 401, "Macro", "6+12", ""),
        ("007", "007_3_1", 3, 100, 150, 0, 0, "Macro", "4", "offset not coded"),
    ])
    ann = read_samm_long(p)
    assert [(a.video, a.onset, a.apex, a.offset, a.kind) for a in ann] == [
        ("006_1", 5562, 5588, 5607, "micro"), ("006_1", 7000, 7100, 7400, "macro"),
        ("007_3", 100, 150, 150, "macro")]
    assert ann[1].subject == "006"


def test_samm_long_reader_rejects_unknown_type(tmp_path):
    p = write_samm_long(tmp_path / "SAMM_LongVideos_V3_Release.xlsx", [
        ("006", "006_1_1", 1, 10, 20, 30, 21, "Blink", "45", "")])
    with pytest.raises(SheetError, match=r"row 12.*neither Macro nor Micro"):
        read_samm_long(p)


def test_evaluate_spotting_cli_on_casme2_layout(tmp_path, capsys):
    from fedpsyau_jax.cli import main
    write_casme2(tmp_path / "CAS(ME)^2code_final(Updated).xlsx", CASME2_ROWS)
    preds = tmp_path / "pred"
    # predictions named like the release's frame folders (prefix = video id)
    for folder, ivs in {"15_0101disgustingteeth": [(560, 570, 608, "macro"), (1200, 1206, 1210, "micro"),
                                                   (3000, 3005, 3010, "micro")],
                        "16_0502happy": []}.items():
        d = preds / folder
        d.mkdir(parents=True)
        (d / "timeline.json").write_text(json.dumps({"video": f"rawpic/{folder}", "intervals": [
            {"onset": a, "apex": b, "offset": c, "kind": k, "emotion": None} for a, b, c, k in ivs]}))
    out_json = tmp_path / "scores.json"
    assert main(["evaluate-spotting", "--predictions", str(preds), "--annotations",
                 str(tmp_path / "CAS(ME)^2code_final(Updated).xlsx"), "--format", "casme2",
                 "--json", str(out_json)]) == 0
    s = json.loads(out_json.read_text())["scores"]
    assert (s["overall"]["tp"], s["overall"]["fp"], s["overall"]["fn"]) == (2, 1, 1)
    assert (s["micro"]["tp"], s["micro"]["fp"], s["micro"]["fn"]) == (1, 1, 0)
    assert "overall" in capsys.readouterr().out
    # a bad format name is one line, exit 2
    assert main(["evaluate-spotting", "--predictions", str(preds), "--annotations", str(out_json),
                 "--format", "casme4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--format 'casme4': unknown name" in err[0]


def test_casme3_part_c_reader_and_release_layout(tmp_path):
    from data_pipelines.readers.casme3_long import read_casme3_long
    from fedpsyau_jax.video.spotting_eval import find_videos, ground_truth
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["sub", "count", "onset", "offset", "emotion", "PHY"])      # columns public code reads
    for r in [(1, 1, 373, 385, "negative", "01_1"), (1, 2, 1200, 1209, "surprise", "01_2"),
              (12, 1, "40", "52", "positive", "12_1")]:
        ws.append(r)
    wb.save(tmp_path / "CAS(ME)3_part_C_ME.xlsx")
    ann = read_casme3_long(tmp_path)
    assert [(a.video, a.onset, a.offset, a.kind, a.emotion, a.apex) for a in ann] == [
        ("01", 373, 385, "micro", "negative", None), ("01", 1200, 1209, "micro", "surprise", None),
        ("12", 40, 52, "micro", "positive", None)]
    gt = ground_truth(tmp_path / "CAS(ME)3_part_C_ME.xlsx", "casme3")
    assert sorted(gt) == ["01", "12"] and len(gt["01"]) == 2
    # part_C/<sub>/a/color/<n>.jpg: the colour frame folder is found for subject 01 only
    colour = tmp_path / "part_C" / "01" / "a" / "color"
    colour.mkdir(parents=True)
    (colour / "1.jpg").write_bytes(b"x")
    (tmp_path / "part_C" / "01" / "a" / "depth").mkdir()
    assert find_videos(tmp_path / "part_C", set(gt)) == {"01": colour}
    ws.append([1, 3, 500, 400, "negative", "01_3"])                       # offset before onset
    wb.save(tmp_path / "CAS(ME)3_part_C_ME.xlsx")
    with pytest.raises(SheetError, match="row 5: offset 400 before onset 500"):
        read_casme3_long(tmp_path / "CAS(ME)3_part_C_ME.xlsx")


def test_annotated_emotions_map_to_the_model_classes(tmp_path):
    from fedpsyau_jax.video.spotting_eval import emotion_class, ground_truth
    p = write_samm_long(tmp_path / "SAMM_LongVideos_V3_Release.xlsx", [
        ("006", "006_1_1", 1, 10, 15, 20, 11, "Micro - 1/2", "12", ""),
    ])
    assert ground_truth(p, "samm", "megc3")["006_1"][0].emotion is None          # no emotion column
    assert emotion_class("Happiness", "samm", "megc3") == "positive"
    assert emotion_class("contempt", "samm", "megc3") == "negative"
    assert emotion_class("Other", "samm", "megc3") is None                        # dropped class
    assert emotion_class("sad", "casme3", "emotion7") == "sadness"
    assert emotion_class("surprise", "synthetic", "megc3") == "surprise"
    assert emotion_class("happy", "casme2", None) == "happy"                       # no scheme: as written
