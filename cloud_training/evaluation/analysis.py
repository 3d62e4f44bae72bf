"""What an evaluation means for someone acting on it: curves, thresholds, a confusion matrix, the worst images.

Pure functions of the evaluated rows (no images, no plotting), so the report, ``compare`` and ``model.json`` all read
the same numbers, and tests check them with literal arrays:

- **precision-recall curve** per class: the VOC07 metric's own scored detections, in descending score order;
- **recommended threshold** per class: the score that maximises F1 on these images (ties in score are kept
  together, since a threshold cannot split them), with the precision and recall it gives;
- **outcomes at thresholds**: per image, each detection at or above its class's threshold is a true positive or a
  false positive by the metric's own matching rule (:func:`~cloud_training.evaluation.voc.match_boxes`), and each
  true box that no true positive found is missed;
- **confusion matrix** with a background row and column: a false positive lying over (IoU above the threshold) an
  unfound true box of another class is a confusion of the two (one per true box: the highest-scoring one); a false
  positive over nothing is spurious (background → class) and a true box nothing found is missed (class → background).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from cloud_training.evaluation.voc import FALSE_POSITIVE, TRUE_POSITIVE, VOC07MApMetric, iou, match_boxes

Outcome = Literal["tp", "fp", "missed"]
DEFAULT_DISPLAY_THRESHOLD = 0.5
"""The threshold for a class the evaluation can recommend none for (it found none of its boxes)."""


@dataclass(frozen=True)
class Curve:
    """One class's precision-recall curve: a point per scored detection, by descending score."""

    scores: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    positives: int
    tp_scores: np.ndarray
    fp_scores: np.ndarray


@dataclass(frozen=True)
class Recommendation:
    """The F1-maximising score threshold of a class and what it gives on the evaluated images."""

    class_id: int
    threshold: float
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class Box:
    """One box drawn on a report page: a detection (``tp``/``fp``, with its score) or a missed true box."""

    class_id: int
    score: Optional[float]
    corners: tuple[float, float, float, float]  # normalised xmin, ymin, xmax, ymax
    outcome: Outcome
    actual_class: Optional[int] = None  # a false positive over an unfound true box of this (other) class


@dataclass(frozen=True)
class ImageReview:
    """One image's outcome at the thresholds: its boxes, and how many were found, missed and spurious."""

    index: int  # position in the manifest
    boxes: tuple[Box, ...]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for box in self.boxes if box.outcome == outcome)

    @property
    def errors(self) -> int:
        """Missed true boxes plus false positives: what 'worst' orders by."""
        return self.count("missed") + self.count("fp")


def curve(metric: VOC07MApMetric, class_id: int) -> Curve:
    return curve_from(*metric.scored(class_id))


def curve_from(scores: np.ndarray, is_tp: np.ndarray, positives: int) -> Curve:
    """The curve of scored detections (any order; ties keep the order given) and the class's positive count."""
    scores, is_tp = np.asarray(scores, dtype=np.float64), np.asarray(is_tp, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], is_tp[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = tp / positives if positives > 0 else np.zeros(len(tp))
    precision = tp / np.maximum(tp + fp, 1)
    return Curve(scores, precision.astype(np.float64), recall.astype(np.float64), positives, scores[hits],
                 scores[~hits])


def recommend(class_id: int, found: Curve) -> Optional[Recommendation]:
    """The F1-best threshold, or None when no detection of the class was a true positive."""
    if found.positives == 0 or not len(found.tp_scores):
        return None
    p, r = found.precision, found.recall
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0)
    last_of_tie = np.append(found.scores[1:] != found.scores[:-1], True)
    best = int(np.argmax(np.where(last_of_tie, f1, -1.0)))
    return Recommendation(class_id, float(found.scores[best]), float(p[best]), float(r[best]), float(f1[best]))


def thresholds_for(
    num_classes: int, recommended: Mapping[int, Recommendation], fixed: Optional[float] = None
) -> dict[int, float]:
    """Per-class display thresholds: ``fixed`` for all, else each class's recommendation (or the default)."""
    return {
        class_id: fixed if fixed is not None else (
            recommended[class_id].threshold if class_id in recommended else DEFAULT_DISPLAY_THRESHOLD
        )
        for class_id in range(num_classes)
    }


def review_image(
    index: int, truth: np.ndarray, detections: np.ndarray, thresholds: Mapping[int, float], iou_threshold: float = 0.5
) -> ImageReview:
    """Outcomes of one image at ``thresholds`` (class id -> lowest score shown); rows as the metric takes them."""
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, truth.shape[-1] if np.ndim(truth) == 2 else 5)
    dets = np.asarray(detections, dtype=np.float64).reshape(-1, 6)
    dets = dets[dets[:, 0] >= 0]
    if len(dets):
        minimum = np.array([thresholds.get(int(c), DEFAULT_DISPLAY_THRESHOLD) for c in dets[:, 0]])
        dets = dets[dets[:, 1] >= minimum]
    boxes: list[Box] = []
    found = np.zeros(len(truth), dtype=bool)
    false_positives: list[int] = []
    for class_id in sorted(set(dets[:, 0].astype(int).tolist()) | set(truth[:, 0].astype(int).tolist())):
        mine = np.where(truth[:, 0].astype(int) == class_id)[0]
        rows = np.where(dets[:, 0].astype(int) == class_id)[0]
        codes, matched = match_boxes(dets[rows, 1:6], truth[mine, 1:5], np.zeros(len(mine), dtype=bool),
                                     iou_threshold)
        for row, code, target in zip(rows, codes, matched):
            if code == TRUE_POSITIVE:
                found[mine[target]] = True
                boxes.append(Box(class_id, float(dets[row, 1]), _corners(dets[row, 2:6]), "tp"))
            elif code == FALSE_POSITIVE:
                false_positives.append(int(row))
    # one unfound true box is one confusion: the highest-scoring wrong-class detection over it takes it, and another
    # over the same box is spurious (else the matrix would count that box twice)
    taken = found.copy()
    for row in sorted(false_positives, key=lambda r: -float(dets[r, 1])):
        actual = _confused_with(dets[row], truth, taken, iou_threshold)
        if actual is not None:
            taken[actual[1]] = True
        boxes.append(Box(int(dets[row, 0]), float(dets[row, 1]), _corners(dets[row, 2:6]), "fp",
                         None if actual is None else actual[0]))
    for position in np.where(~found)[0]:
        boxes.append(Box(int(truth[position, 0]), None, _corners(truth[position, 1:5]), "missed"))
    return ImageReview(index, tuple(boxes))


def _corners(values: Sequence[float] | np.ndarray) -> tuple[float, float, float, float]:
    return float(values[0]), float(values[1]), float(values[2]), float(values[3])


def _confused_with(
    det: np.ndarray, truth: np.ndarray, taken: np.ndarray, iou_threshold: float
) -> Optional[tuple[int, int]]:
    """(class, position) of the untaken true box of another class this false positive lies over, if any."""
    others = np.where((~taken) & (truth[:, 0].astype(int) != int(det[0])))[0]
    if not len(others):
        return None
    ious = iou(det[2:6], truth[others, 1:5])
    best = int(np.argmax(ious))
    return (int(truth[others[best], 0]), int(others[best])) if ious[best] > iou_threshold else None


def confusion_matrix(reviews: Sequence[ImageReview], num_classes: int) -> np.ndarray:
    """``(C + 1, C + 1)`` counts, rows the true class and columns the predicted one; index ``C`` is background.

    A confused false positive counts once as (actual, predicted), and its true box is not counted missed again.
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    background = num_classes
    for review in reviews:
        confused: dict[int, int] = {}
        for box in review.boxes:
            if box.outcome == "tp":
                matrix[box.class_id, box.class_id] += 1
            elif box.outcome == "fp" and box.actual_class is not None:
                matrix[box.actual_class, box.class_id] += 1
                confused[box.actual_class] = confused.get(box.actual_class, 0) + 1
            elif box.outcome == "fp":
                matrix[background, box.class_id] += 1
        for box in review.boxes:
            if box.outcome == "missed":
                if confused.get(box.class_id, 0) > 0:
                    confused[box.class_id] -= 1
                else:
                    matrix[box.class_id, background] += 1
    return matrix


def worst_first(reviews: Sequence[ImageReview]) -> list[ImageReview]:
    """Most errors (missed + false positives) first; ties by more misses, then by manifest order."""
    return sorted(reviews, key=lambda review: (-review.errors, -review.count("missed"), review.index))
