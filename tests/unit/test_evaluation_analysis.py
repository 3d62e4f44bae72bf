"""The report's numbers as pure functions of literal rows: recommended thresholds, outcomes, confusions, order."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_training.evaluation.analysis import (
    Curve,
    confusion_matrix,
    curve,
    curve_from,
    recommend,
    review_image,
    thresholds_for,
    worst_first,
)
from cloud_training.evaluation.voc import VOC07MApMetric


def literal_curve(scores: list[float], hits: list[bool], positives: int) -> Curve:
    return curve_from(np.array(scores), np.array(hits), positives)


def test_the_curve_is_the_metrics_own_matching() -> None:
    metric = VOC07MApMetric()
    metric.update(np.array([[0, 0.6, 0.1, 0.1, 0.4, 0.4], [0, 0.9, 0.1, 0.1, 0.41, 0.4]]), TRUTH[:1])
    found = curve(metric, 0)  # the 0.9 row matches first; the 0.6 one is then a duplicate, a false positive
    assert found.tp_scores.tolist() == [0.9] and found.fp_scores.tolist() == [0.6] and found.positives == 1
    assert found.precision.tolist() == [1.0, 0.5] and found.recall.tolist() == [1.0, 1.0]


def test_the_recommended_threshold_maximises_f1() -> None:
    found = literal_curve([0.7, 0.9, 0.5, 0.8, 0.6], [True, True, True, False, False], positives=4)
    assert found.scores.tolist() == [0.9, 0.8, 0.7, 0.6, 0.5]
    choice = recommend(0, found)
    assert choice is not None
    # F1 down the list: 0.4, 0.333, 0.571, 0.5, 0.667: the last (P 3/5, R 3/4) wins
    assert (choice.threshold, choice.precision, choice.recall) == (0.5, pytest.approx(0.6), pytest.approx(0.75))
    assert choice.f1 == pytest.approx(2 * 0.6 * 0.75 / 1.35)


def test_a_threshold_cannot_split_tied_scores() -> None:
    choice = recommend(0, literal_curve([0.9, 0.9, 0.4], [True, False, True], positives=2))
    assert choice is not None  # at 0.9 both tied rows pass: P 1/2, R 1/2 (F1 0.5); at 0.4 P 2/3, R 1 (F1 0.8)
    assert choice.threshold == 0.4 and choice.precision == pytest.approx(2 / 3)
    only_ties = recommend(0, literal_curve([0.9, 0.9], [True, False], positives=1))
    assert only_ties is not None and only_ties.precision == 0.5  # never the 1.0 of the first row alone


def test_no_true_positive_means_no_recommendation_and_the_default() -> None:
    assert recommend(0, literal_curve([0.9], [False], positives=3)) is None
    assert thresholds_for(2, {}) == {0: 0.5, 1: 0.5}
    assert thresholds_for(2, {}, fixed=0.3) == {0: 0.3, 1: 0.3}


TRUTH = np.array([[0, 0.1, 0.1, 0.4, 0.4], [1, 0.5, 0.5, 0.9, 0.9]])


def test_outcomes_at_the_thresholds_and_a_confusion_counted_once() -> None:
    detections = np.array([
        [0, 0.9, 0.1, 0.1, 0.4, 0.4],     # on the class-0 box: true positive
        [0, 0.8, 0.52, 0.5, 0.9, 0.9],    # class 0 on the class-1 box: a confusion
        [1, 0.3, 0.5, 0.5, 0.9, 0.9],     # right, but below its threshold: not shown
        [1, 0.7, 0.0, 0.6, 0.2, 0.95],    # over nothing: spurious
        [-1, 0.99, 0.1, 0.1, 0.4, 0.4],   # background row: ignored
    ])
    review = review_image(0, TRUTH, detections, {0: 0.5, 1: 0.5})
    outcomes = sorted((box.outcome, box.class_id, box.actual_class) for box in review.boxes)
    assert outcomes == [("fp", 0, 1), ("fp", 1, None), ("missed", 1, None), ("tp", 0, None)]
    assert (review.count("tp"), review.count("fp"), review.count("missed"), review.errors) == (1, 2, 1, 3)
    matrix = confusion_matrix([review], 2)
    assert matrix.tolist() == [[1, 0, 0],   # class 0: found once
                               [1, 0, 0],   # class 1: taken for class 0 once (not also counted missed)
                               [0, 1, 0]]   # background: one spurious class-1 box
    lower = review_image(0, TRUTH, detections, {0: 0.5, 1: 0.25})
    assert sorted(box.outcome for box in lower.boxes) == ["fp", "fp", "tp", "tp"]  # the 0.3 row now finds its box


def test_two_wrong_class_detections_on_one_true_box_count_it_once() -> None:
    truth = np.array([[1, 0.5, 0.5, 0.9, 0.9]])
    detections = np.array([
        [0, 0.7, 0.5, 0.5, 0.9, 0.9],     # class 0 on the class-1 box
        [2, 0.8, 0.51, 0.5, 0.9, 0.9],    # class 2 on the same box, scored higher: this one is the confusion
    ])
    review = review_image(0, truth, detections, {0: 0.5, 1: 0.5, 2: 0.5})
    outcomes = sorted((box.outcome, box.class_id, box.actual_class) for box in review.boxes)
    assert outcomes == [("fp", 0, None), ("fp", 2, 1), ("missed", 1, None)]
    matrix = confusion_matrix([review], 3)
    assert matrix[1].sum() == 1, "one true box, one count in its row"
    assert matrix.tolist() == [[0, 0, 0, 0],
                               [0, 0, 1, 0],   # the class-1 box taken for class 2 (the higher score), once
                               [0, 0, 0, 0],
                               [1, 0, 0, 0]]   # the other detection on it: spurious


def test_worst_first_orders_by_errors_then_misses_then_manifest_order() -> None:
    none = np.zeros((0, 6))
    spurious = np.array([[0, 0.9, 0.6, 0.0, 0.9, 0.2]])
    reviews = [
        review_image(0, TRUTH[:1], np.array([[0, 0.9, 0.1, 0.1, 0.4, 0.4]]), {0: 0.5}),  # perfect
        review_image(1, TRUTH[:1], none, {0: 0.5}),                                      # 1 missed
        review_image(2, TRUTH[:0], spurious, {0: 0.5}),                                  # 1 false positive
        review_image(3, TRUTH, none, {0: 0.5, 1: 0.5}),                                  # 2 missed
    ]
    assert [review.index for review in worst_first(reviews)] == [3, 1, 2, 0]
