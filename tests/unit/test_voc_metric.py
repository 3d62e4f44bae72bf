"""The VOC07 metric against cases computed by hand (each comment shows the arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_training.evaluation.voc import (
    VOC07_RECALL_THRESHOLDS,
    VOC07MApMetric,
    VOCResult,
    iou,
    voc07_average_precision,
)

A = [0.0, 0.0, 0.5, 0.5]
B = [0.5, 0.5, 1.0, 1.0]


def gt(class_id: int, box: list[float], difficult: int | None = None) -> list[float]:
    return [class_id, *box] if difficult is None else [class_id, *box, difficult]


def det(class_id: int, score: float, box: list[float]) -> list[float]:
    return [class_id, score, *box]


Image = tuple[list[list[float]], list[list[float]]]


def run(images: list[Image], num_classes: int = 0, **options: object) -> VOCResult:
    metric = VOC07MApMetric(**options)  # type: ignore[arg-type]
    for detections, truths in images:
        metric.update(np.array(detections, dtype=float).reshape(-1, 6), np.array(truths, dtype=float))
    return metric.result(num_classes)


def test_perfect_detections_score_one() -> None:
    result = run(
        [
            ([det(0, 0.9, A), det(1, 0.8, B)], [gt(0, A), gt(1, B)]),
            ([det(1, 0.7, A)], [gt(1, A)]),
        ]
    )
    assert result.mean_ap == pytest.approx(1.0)
    assert [c.ap for c in result.classes.values()] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert result.classes[1].ground_truth == 2 and result.classes[1].true_positives == 2


def test_no_detections_score_zero() -> None:
    result = run([([], [gt(0, A), gt(0, B)])])
    assert result.mean_ap == 0.0
    assert result.classes[0].ap == 0.0 and result.classes[0].ground_truth == 2 and result.classes[0].detections == 0


def test_nothing_at_all_has_no_map() -> None:
    result = run([([], [])], num_classes=2)
    assert result.mean_ap is None
    assert [c.ap for c in result.classes.values()] == [None, None]


def test_duplicate_is_a_false_positive() -> None:
    # GTs A and B; sorted detections: A 0.9 (TP), A again 0.8 (duplicate: FP), B 0.7 (TP).
    # recall 0.5, 0.5, 1.0; precision 1, 1/2, 2/3.
    # t = 0 .. 0.5 (6 points): best precision at recall >= t is 1; t = 0.6 .. 1.0 (5 points): 2/3.
    # AP = (6 * 1 + 5 * 2/3) / 11 = 28/33.
    result = run([([det(0, 0.9, A), det(0, 0.8, A), det(0, 0.7, B)], [gt(0, A), gt(0, B)])])
    assert result.classes[0].ap == pytest.approx(28 / 33)
    assert (result.classes[0].true_positives, result.classes[0].false_positives) == (2, 1)


def test_duplicate_does_not_fall_back_to_the_second_best_ground_truth() -> None:
    # B2 overlaps A with IoU 0.2 / 0.3 = 2/3 > 0.5, but the second detection's best match is A (IoU 1), already taken:
    # a false positive, as in mxnet-ssd and the VOC devkit. recall 0.5, 0.5 -> AP = 6 points of 1 / 11.
    b2 = [0.1, 0.0, 0.6, 0.5]
    assert iou(np.array(A), np.array([b2]))[0] == pytest.approx(2 / 3)
    result = run([([det(0, 0.9, A), det(0, 0.8, A)], [gt(0, A), gt(0, b2)])])
    assert result.classes[0].ap == pytest.approx(6 / 11)
    assert result.classes[0].false_positives == 1


def test_missed_ground_truth_lowers_recall() -> None:
    # One of two GTs found at precision 1: recall 0.5 reaches t = 0 .. 0.5 (6 points). AP = 6/11.
    result = run([([det(0, 0.9, A)], [gt(0, A), gt(0, B)])])
    assert result.classes[0].ap == pytest.approx(6 / 11)


def test_difficult_ground_truth_is_ignored() -> None:
    # The detection on the difficult box B is neither TP nor FP, and B is not a positive: 1 of 1 found, AP 1.
    images = [([det(0, 0.95, B), det(0, 0.6, A)], [gt(0, A, difficult=0), gt(0, B, difficult=1)])]
    result = run(images)
    assert result.classes[0].ap == pytest.approx(1.0)
    assert result.classes[0].ground_truth == 1 and result.classes[0].difficult == 1
    assert (result.classes[0].true_positives, result.classes[0].false_positives) == (1, 0)
    # Counted as ordinary boxes (use_difficult) they are both found: still 1.
    assert run(images, use_difficult=True).classes[0].ap == pytest.approx(1.0)


def test_difficult_missed_costs_nothing_unless_used() -> None:
    images = [([det(0, 0.6, A)], [gt(0, A, difficult=0), gt(0, B, difficult=1)])]
    assert run(images).classes[0].ap == pytest.approx(1.0)
    # With use_difficult: 1 of 2 found, recall 0.5 -> 6/11.
    assert run(images, use_difficult=True).classes[0].ap == pytest.approx(6 / 11)


def test_eleven_point_interpolation_by_hand() -> None:
    # 4 GTs over two images; detections by score: TP, FP, TP, FP, TP (one GT never found).
    # recall    .25  .25  .50  .50  .75
    # precision 1    1/2  2/3  1/2  3/5
    # t = 0, .1, .2          -> max precision where recall >= t = 1      (3 points)
    # t = .3, .4, .5         -> 2/3 (recall .5 and .75)                  (3 points)
    # t = .6, .7             -> 3/5 (recall .75 only)                    (2 points)
    # t = .8, .9, 1          -> 0                                        (3 points)
    # AP = (3 * 1 + 3 * 2/3 + 2 * 3/5) / 11 = 6.2 / 11
    far = [0.8, 0.0, 1.0, 0.2]
    c = [0.0, 0.5, 0.5, 1.0]
    d = [0.5, 0.0, 1.0, 0.5]
    images = [
        ([det(0, 0.9, A), det(0, 0.8, far), det(0, 0.5, B)], [gt(0, A), gt(0, B)]),
        ([det(0, 0.7, c), det(0, 0.6, far)], [gt(0, c), gt(0, d)]),
    ]
    result = run(images)
    assert result.classes[0].ap == pytest.approx(6.2 / 11)
    assert (result.classes[0].true_positives, result.classes[0].false_positives) == (3, 2)


def test_recall_thresholds_are_numpys_float_steps_as_in_mxnet_ssd() -> None:
    # 3 of 5 found at precision 1: recall 3/5 = 0.6 falls short of the 7th threshold, 0.6000000000000001, so only
    # t = 0 .. 0.5 count: AP = 6/11 (exact tenths would give 7/11). mxnet-ssd, GluonCV and py-faster-rcnn agree.
    assert VOC07_RECALL_THRESHOLDS[6] > 0.6
    assert voc07_average_precision(np.array([0.2, 0.4, 0.6]), np.array([1.0, 1.0, 1.0])) == pytest.approx(6 / 11)


def test_iou_of_exactly_half_is_not_a_match() -> None:
    # Intersection 0.25, union 0.5 + 0.25 - 0.25 = 0.5: IoU 0.5, not strictly above the threshold -> FP, AP 0.
    wide = [0.0, 0.0, 1.0, 0.5]
    assert iou(np.array(A), np.array([wide]))[0] == 0.5
    result = run([([det(0, 0.9, A)], [gt(0, wide)])])
    assert result.classes[0].ap == 0.0 and result.classes[0].false_positives == 1


def test_detections_are_sorted_by_score_before_matching() -> None:
    # Given low score first: matched in score order the 0.9 one is the TP and 0.3 the duplicate -> AP 1.
    # (Matching in input order would make 0.9 an FP ahead of the TP: AP 0.5.)
    result = run([([det(0, 0.3, A), det(0, 0.9, A)], [gt(0, A)])])
    assert result.classes[0].ap == pytest.approx(1.0)


def test_class_without_ground_truth_counts_zero_in_the_map() -> None:
    # Class 1 is only ever predicted (AP 0, in the mean as mxnet-ssd does); class 2 is never seen (left out).
    result = run([([det(0, 0.9, A), det(1, 0.8, B)], [gt(0, A)])], num_classes=3)
    assert result.classes[0].ap == pytest.approx(1.0)
    assert result.classes[1].ap == 0.0 and result.classes[1].ground_truth == 0
    assert result.classes[2].ap is None
    assert result.mean_ap == pytest.approx(0.5)


def test_background_rows_are_skipped() -> None:
    result = run([([det(-1, 0.99, B), det(0, 0.9, A)], [gt(0, A)])])
    assert result.classes[0].ap == pytest.approx(1.0)
    assert set(result.classes) == {0}


def test_iou_uses_normalised_corners_without_the_pixel_plus_one() -> None:
    boxes = np.array([[0.1, 0.1, 0.2, 0.2], [0.15, 0.1, 0.25, 0.2], [0.3, 0.3, 0.3, 0.3]])
    # Half overlap of two equal boxes: 0.005 / (0.01 + 0.01 - 0.005) = 1/3; a zero-area box against itself: 0.
    np.testing.assert_allclose(iou(boxes[0], boxes[:2]), [1.0, 1 / 3])
    assert iou(boxes[2], boxes[2:])[0] == 0.0
