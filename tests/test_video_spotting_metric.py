"""MEGC spotting metric and spot-then-recognise scores on cases computed by hand."""
import pytest

from fedpsyau_jax.video.spotting_metric import Span, iou, match, recognition_scores, spotting_scores


def test_iou_counts_frames_inclusively():
    assert iou(Span(10, 19), Span(10, 19)) == 1.0
    # [10,19] vs [15,24]: intersection 15..19 = 5 frames, union 10..24 = 15 frames
    assert iou(Span(10, 19), Span(15, 24)) == pytest.approx(5 / 15)
    assert iou(Span(0, 3), Span(4, 9)) == 0.0                   # adjacent, no shared frame
    assert iou(Span(0, 4), Span(4, 9)) == pytest.approx(1 / 10)  # one shared frame


def test_iou_of_exactly_one_half_is_a_true_positive():
    gt = Span(0, 9)                     # 10 frames
    pred = Span(0, 4)                   # 5 frames inside: IoU 5/10
    assert iou(pred, gt) == 0.5
    assert match([pred], [gt]) == [(0, 0)]
    assert match([Span(0, 3)], [gt]) == []                       # 4/10 < 0.5


def test_matching_is_one_to_one_and_best_first():
    gt = [Span(100, 109)]
    preds = [Span(101, 110), Span(100, 109)]                     # IoU 9/11 and 1.0
    assert match(preds, gt) == [(1, 0)]                          # the exact one wins
    s = spotting_scores({"v": preds}, {"v": gt})["overall"]
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 0)
    assert s["precision"] == 0.5 and s["recall"] == 1.0 and s["f1"] == pytest.approx(2 / 3)


def test_counts_are_pooled_over_videos_not_averaged():
    gt = {"a": [Span(0, 9, "micro")], "b": [Span(0, 9, "micro"), Span(50, 99, "macro"), Span(200, 209, "micro")]}
    pred = {"a": [Span(0, 9, "micro")],                                   # TP
            "b": [Span(52, 99, "macro"), Span(300, 305, "micro")]}         # TP (48/50), FP
    s = spotting_scores(pred, gt)
    o = s["overall"]
    assert (o["tp"], o["fp"], o["fn"]) == (2, 1, 2)
    assert o["precision"] == pytest.approx(2 / 3) and o["recall"] == pytest.approx(2 / 4)
    assert o["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # a per-video mean of F1 would give (1.0 + 0.4) / 2 = 0.7, the pooled F1 is 0.571
    assert o["f1"] == pytest.approx(4 / 7)
    mi, ma = s["micro"], s["macro"]
    assert (mi["tp"], mi["fp"], mi["fn"]) == (1, 1, 2)
    assert (ma["tp"], ma["fp"], ma["fn"]) == (1, 0, 0) and ma["f1"] == 1.0


def test_kind_mismatch_counts_overall_but_not_per_kind():
    s = spotting_scores({"v": [Span(0, 9, "macro")]}, {"v": [Span(0, 9, "micro")]})
    assert s["overall"]["tp"] == 1
    assert (s["micro"]["tp"], s["micro"]["fn"]) == (0, 1)
    assert (s["macro"]["tp"], s["macro"]["fp"]) == (0, 1)


def test_no_predictions_gives_zero_not_nan():
    s = spotting_scores({}, {"v": [Span(0, 9, "micro")]})["overall"]
    assert (s["tp"], s["fp"], s["fn"]) == (0, 0, 1)
    assert s["precision"] == 0.0 and s["recall"] == 0.0 and s["f1"] == 0.0


def test_spot_then_recognise_on_true_positives_only():
    gt = {"v": [Span(0, 9, "micro", "happiness"), Span(100, 109, "micro", "surprise"),
                Span(200, 209, "micro", "surprise"), Span(400, 409, "micro", "happiness")]}
    pred = {"v": [Span(0, 9, "micro", "happiness"),        # TP, right
                  Span(100, 109, "micro", "happiness"),    # TP, wrong
                  Span(200, 209, "micro", "surprise"),     # TP, right
                  Span(300, 309, "micro", "surprise")]}    # FP: not in recognition
    s = spotting_scores(pred, gt)
    assert s["overall"]["f1"] == pytest.approx(0.75)        # P 3/4, R 3/4
    r = s["recognition"]
    assert r["n"] == 3
    # happiness: tp 1, fp 1, fn 0 -> F1 2/3; surprise: tp 1, fp 0, fn 1 -> F1 2/3
    assert r["uf1"] == pytest.approx(2 / 3)
    assert r["uar"] == pytest.approx((1.0 + 0.5) / 2)
    assert r["strs"] == pytest.approx(0.75 * 2 / 3)


def test_recognition_scores_ignore_classes_absent_from_truth():
    r = recognition_scores(["a", "a", "b"], ["a", "c", "b"])
    assert r["classes"] == ["a", "b"]
    assert r["uf1"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert r["uar"] == pytest.approx((0.5 + 1.0) / 2)
