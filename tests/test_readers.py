"""Readers on the three real sheets and on tiny sheets/folders that carry each quirk."""
import collections
import logging

import openpyxl
import pytest

from data_pipelines.label_maps import UnknownEmotion, map_emotion
from data_pipelines.readers import onset_equals_apex
from data_pipelines.readers.casme2 import read_casme2
from data_pipelines.readers.casme3 import read_casme3
from data_pipelines.readers.ckplus import read_ckplus
from data_pipelines.readers.dfme import part_folder, read_dfme
from data_pipelines.readers.disfa import AUS as DISFA_AUS, read_disfa
from data_pipelines.readers.samm import read_samm
from data_pipelines.readers.sheet_table import SheetError
from data_pipelines.readers.smic import read_smic


def counts(records):
    c = collections.Counter(r.label for r in records)
    return tuple(c.get(k, 0) for k in (0, 1, 2)), c.get(None, 0)


# ---- real sheets ---------------------------------------------------------------------
# MEGC 3-class counts (negative/positive/surprise), dropped. Cross-check against the
# composite (CASME II 88/32/25, SAMM 92/26/15): SAMM agrees exactly; CASME II has two
# more negatives in the sheet than the composite kept.
def test_casme2_real_sheet(shared_root):
    recs = read_casme2(shared_root / "annotations" / "CASME2-coding.xlsx")
    assert len(recs) == 250
    assert counts(recs) == ((90, 32, 25), 103)
    assert len({r.subject for r in recs}) == 26 and all(len(r.subject) == 2 for r in recs)
    r = recs[0]
    assert (r.name, r.onset, r.apex, r.offset, r.aus, r.label) == (
        "sub01_EP02_01f", 46, 59, 86, frozenset({12}), 1)
    assert r.frame_dir is None and r.fps == 200
    assert any(not x.clip.endswith("f") for x in recs)  # filenames without trailing f


def test_samm_real_sheet(shared_root):
    recs = read_samm(shared_root / "annotations" / "SAMM-coding.xlsx")
    assert len(recs) == 159
    assert counts(recs) == ((92, 26, 15), 26)
    r = next(x for x in recs if x.name == "007_007_6_1")
    assert r.aus == frozenset({6, 12, 15})  # "(R6 or R12)+R15"


def test_casme3_real_sheet(shared_root, caplog):
    with caplog.at_level(logging.WARNING):
        recs = read_casme3(shared_root / "annotations" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx")
    assert len(recs) == 860
    assert counts(recs) == ((457, 55, 187), 161)
    assert len({r.subject for r in recs}) == 94
    # Several samples per (subject, task): the name keys on onset and stays unique.
    per = collections.Counter((r.subject, r.clip) for r in recs)
    assert sum(1 for v in per.values() if v > 1) == 191
    j = [r for r in recs if r.subject == "spNO.14" and r.onset == 1012]
    assert len(j) == 1 and j[0].clip == "j" and j[0].name == "spNO.14_j_1012"
    # Offset "0" (spNO.40 e) means not annotated -> None, and it is reported.
    r = next(x for x in recs if x.name == "spNO.40_e_1812")
    assert r.offset is None and "offset before apex" in caplog.text
    # Cells stored as real ints among text ones ("11" vs 11) read the same.
    assert next(x for x in recs if x.name == "spNO.9_h_4").apex == 11


def test_casme3_edited_csv_with_apex_before_onset_is_a_clear_error(shared_root):
    # The HTNet-edited CSV has 27 onset == apex rows and one apex < onset (spNO.149 d).
    with pytest.raises(ValueError, match=r"spNO\.149_d_112: apex 83 before onset 112"):
        read_casme3(shared_root / "megc2019_htnet" / "cas(me)3_part_A_edited.csv")


# ---- quirks on tiny sheets -------------------------------------------------------------
def _xlsx(path, sheet, rows):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def test_samm_preamble_formula_and_slash_apex(tmp_path):
    pre = [[f"preamble line {i}"] for i in range(13)]
    hdr = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
           "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
    body = [["006", "006_1_2", 1, 5562, 5588, 5632, "=F15-D15+1", "Micro - 1/2", "4+7", "Anger", 3, None],
            [7, "007_6_1", 6, "497", "/", "541", "=F16-D16+1", "Micro - 1/2", "(R6 or R12)+R15",
             " happiness ", 7, None]]
    p = _xlsx(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", "MICRO_ONLY", pre + [hdr] + body)
    recs = read_samm(p)
    assert [r.name for r in recs] == ["006_006_1_2", "007_007_6_1"]
    assert recs[0].label == 0 and recs[1].label == 1
    assert recs[1].apex is None and recs[1].onset == 497  # "/" apex, text numbers


def test_onset_equals_apex_kept_and_flagged(tmp_path, caplog):
    p = tmp_path / "cas(me)3_part_A_test.csv"
    p.write_text("Subject,Filename,Onset,Apex,Offset,AU,Objective class,emotion\n"
                 "spNO.1,a,7,7,42,14,VII,happy\nspNO.1,a,50,55,60,R12,I,others\n")
    with caplog.at_level(logging.WARNING):
        recs = read_casme3(p)
    assert len(recs) == 2 and [r.name for r in onset_equals_apex(recs)] == ["spNO.1_a_7"]
    assert "onset == apex" in caplog.text


def test_unknown_emotion_names_dataset_row_and_word(tmp_path):
    p = _xlsx(tmp_path / "CASME2-coding-x.xlsx", "Sheet1",
              [["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                "Estimated Emotion"], ["01", "EP01_01", 1, 2, 3, "12", "joy"]])
    with pytest.raises(SheetError, match=r"CASME II .*row 2.*'joy'"):
        read_casme2(p)
    with pytest.raises(UnknownEmotion, match="samm.*'glee'"):
        map_emotion("samm", "glee")


def test_missing_header_is_a_clear_error(tmp_path):
    p = _xlsx(tmp_path / "SAMM-x.xlsx", "MICRO_ONLY", [["Subject", "File"], ["006", "x"]])
    with pytest.raises(SheetError, match="no header row"):
        read_samm(p)


def test_casme2_root_resolves_frames_and_trailing_f(tmp_path):
    _xlsx(tmp_path / "CASME2-coding-20140508.xlsx", "Sheet1",
          [["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
            "Action Units", "Estimated Emotion"], ["1", "EP02_01", None, 4, 5, 6, None, "R12", "happiness"]])
    clip = tmp_path / "Cropped" / "sub01" / "EP02_01f"   # folder has the f, sheet does not
    clip.mkdir(parents=True)
    for n in range(4, 7):
        (clip / f"reg_img{n}.jpg").write_bytes(b"x")
    (r,) = read_casme2(tmp_path)
    assert r.frame_dir == clip and r.subject == "01"
    assert [p.name for p in r.frame_paths] == ["reg_img4.jpg", "reg_img5.jpg", "reg_img6.jpg"]


def test_dfme_sheet_positional_columns_and_part_folders(tmp_path):
    hdr = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Emotion", "fps"]
    rows = [["sub0001", "a01", 1, 5, 9, "4+7", "Anger", 200],
            ["sub0320", "b02", "3", "8", "12", None, "surprise", 500],
            ["sub0016", "c03", 1, 2, 3, "", "others", 200]]
    p = _xlsx(tmp_path / "DFME_data_coding.xlsx", "Sheet1", [hdr] + rows)
    recs = read_dfme(p)
    assert [r.label for r in recs] == [0, 6, None] and recs[1].fps == 500.0
    assert recs[0].aus == frozenset({4, 7}) and recs[1].aus == frozenset()
    recs = read_dfme(tmp_path)
    assert recs[1].frame_dir == (tmp_path / "USTC_MEv4_partD_sub0301_sub0671_500fps" /
                                 "micro_static_aligned_croped" / "surprise" / "b02")
    assert part_folder(16, 200) == "USTC_MEv4_partB_sub0016_sub0110"
    with pytest.raises(ValueError, match="fps 200 or 500"):
        part_folder(400, 100)
    (tmp_path / "bad").mkdir()
    _xlsx(tmp_path / "bad" / "DFME_data_coding.xlsx", "Sheet1",
          [hdr, ["sub0001", "a01", 1, 5, 9, "4", "Anger"]])
    with pytest.raises(SheetError, match="row 2.*fps"):
        read_dfme(tmp_path / "bad")


def test_smic_folders(tmp_path):
    for cls, clip, n in (("negative", "s1_ne_01", 5), ("surprise", "s1_sur_01", 4),
                         ("positive", "s2_po_03", 3)):
        d = tmp_path / "SMIC" / "HS" / clip.split("_")[0] / "micro" / cls / clip
        d.mkdir(parents=True)
        for k in range(n):
            (d / f"image{100 + k * 1:06d}.bmp").write_bytes(b"")
    recs = read_smic(tmp_path)
    by = {r.name: r for r in recs}
    assert set(by) == {"s1_s1_ne_01", "s1_s1_sur_01", "s2_s2_po_03"}
    r = by["s1_s1_ne_01"]
    assert (r.label, r.onset, r.apex, r.offset, len(r.frame_paths)) == (0, 100, 102, 104, 5)
    assert by["s2_s2_po_03"].label == 1 and by["s1_s1_sur_01"].label == 2
    bad = tmp_path / "SMIC" / "HS" / "s3" / "micro" / "happy" / "x"
    bad.mkdir(parents=True)
    with pytest.raises(UnknownEmotion, match="smic.*'happy'"):
        read_smic(tmp_path)


def test_disfa_folders(tmp_path):
    lab = tmp_path / "DISFA" / "ActionUnit_Labels" / "SN001"
    lab.mkdir(parents=True)
    for au in DISFA_AUS:
        inten = {12: [0, 2, 3], 1: [1, 1, 5]}.get(au, [0, 0, 0])
        (lab / f"SN001_au{au}.txt").write_text("".join(f"{f},{i}\n" for f, i in zip((1, 2, 3), inten)))
    recs = read_disfa(tmp_path)
    assert [sorted(r.aus) for r in recs] == [[], [12], [1, 12]]
    assert recs[1].name == "SN001_00002" and recs[1].apex == 2 and recs[1].label is None
    (lab / "SN001_au1.txt").write_text("1,7\n2,0\n3,0\n")
    with pytest.raises(ValueError, match="SN001_au1.txt line 1: intensity 7"):
        read_disfa(tmp_path)


def test_ckplus_folders(tmp_path):
    for seq, emo in (("001", "   3.0000000e+00\n"), ("002", None)):
        img = tmp_path / "cohn-kanade-images" / "S005" / seq
        img.mkdir(parents=True)
        for k in (1, 2, 3, 10):
            (img / f"S005_{seq}_{k:08d}.png").write_bytes(b"")
        facs = tmp_path / "FACS" / "S005" / seq
        facs.mkdir(parents=True)
        (facs / f"S005_{seq}_00000010_facs.txt").write_text(
            "   9.0000000e+00   0.0000000e+00\n   1.7000000e+01   2.0000000e+00\n")
        if emo:
            e = tmp_path / "Emotion" / "S005" / seq
            e.mkdir(parents=True)
            (e / f"S005_{seq}_00000010_emotion.txt").write_text(emo)
    a, b = read_ckplus(tmp_path)
    assert (a.name, a.label, a.onset, a.apex, a.aus) == ("S005_001", 2, 1, 10, frozenset({9, 17}))
    assert a.frame_paths[-1].name == "S005_001_00000010.png"
    assert b.label is None and b.emotion == ""
    assert read_ckplus(tmp_path, scheme="megc3")[0].label == 0  # disgust -> negative
