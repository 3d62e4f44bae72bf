"""VOC07 11-point mean average precision, as mxnet-ssd's ``VOC07MApMetric`` computes it (plain numpy, no MXNet).

Why mxnet-ssd's flavour: SageMaker's built-in SSD is built on it and reports ``validation:mAP`` with it, so a number
from ``cloud-training evaluate`` can be set beside the training job's metric. The rules, per class:

- detections are taken in descending score order; each one is compared (IoU on normalised corners, no ``+1`` pixel
  convention) with *every* ground truth box of its class in the same image, and the best one decides;
- best IoU strictly above ``iou_threshold`` (0.5): a true positive if that ground truth is still unmatched, a false
  positive if it was matched already (a duplicate) — there is no fall-back to the second-best box, as in the VOC devkit;
- best IoU at or below the threshold, or no ground truth of the class in the image: a false positive;
- a best match that is *difficult* is ignored (neither TP nor FP), and difficult boxes are not counted as positives
  (unless ``use_difficult``);
- AP is the mean over recall thresholds ``np.arange(0.0, 1.1, 0.1)`` of the highest precision at recall ≥ threshold.
  Those thresholds are numpy's, not exact tenths (the 4th is 0.30000000000000004, the 7th and 8th 0.6000000000000001
  and 0.7000000000000001), so a recall of exactly 0.3, 0.6 or 0.7 does not reach its own threshold. mxnet-ssd, GluonCV
  and py-faster-rcnn all share this; it is kept on purpose so the numbers agree with theirs (see the tests);
- mAP is the mean over the classes that have ground truth *or* (false positive) detections: a class the model predicts
  but the data never contains scores AP 0 and pulls the mean down; a class with neither is left out (``ap`` is None).

Where this differs from mxnet-ssd's code, it follows the rules above rather than three slips in it: mxnet-ssd's sort
before matching is a no-op (``dets[...]`` without assignment; harmless there because MultiBoxDetection output is
already sorted), it counts difficult boxes as positives in an image without any detection of their class, and it
drops an image's positive count for a class when all of that class's detections in the image hit difficult boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)
"""The 11 recall points exactly as mxnet-ssd computes them (float steps included)."""

_TP, _FP, _IGNORED = 1, 2, 0
TRUE_POSITIVE, FALSE_POSITIVE, IGNORED = _TP, _FP, _IGNORED


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[xmin, ymin, xmax, ymax]`` box with each row of ``boxes`` (normalised corners, no +1);
    degenerate pairs (union below 1e-12) score 0 rather than dividing by zero."""
    ixmin = np.maximum(boxes[:, 0], box[0])
    iymin = np.maximum(boxes[:, 1], box[1])
    ixmax = np.minimum(boxes[:, 2], box[2])
    iymax = np.minimum(boxes[:, 3], box[3])
    inter = np.maximum(ixmax - ixmin, 0.0) * np.maximum(iymax - iymin, 0.0)
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = np.where(union < 1e-12, 0.0, inter / np.where(union < 1e-12, 1.0, union))
    result: np.ndarray = ious
    return result


def voc07_average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """11-point interpolated AP: the mean over :data:`VOC07_RECALL_THRESHOLDS` of max precision at recall ≥ t."""
    total = 0.0
    for threshold in VOC07_RECALL_THRESHOLDS:
        reached = recall >= threshold
        total += float(np.max(precision[reached])) if np.any(reached) else 0.0
    return total / 11.0


def recall_precision(scores: np.ndarray, is_tp: np.ndarray, positives: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative recall and precision down the score-sorted detections (ties keep the order they were seen in)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(is_tp, dtype=bool)[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = tp / float(positives) if positives > 0 else np.zeros(len(tp))
    precision = tp / np.maximum(tp + fp, 1)
    return recall, precision


def match_class(dets: np.ndarray, gts: np.ndarray, difficult: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Label one class's detections in one image TP, FP or ignored.

    ``dets``: (m, 5) rows ``[score, xmin, ymin, xmax, ymax]``; ``gts``: (n, 4) corners; ``difficult``: (n,) bool
    (all False when difficult boxes count). Returns (m,) codes in the input order.
    """
    return match_boxes(dets, gts, difficult, iou_threshold)[0]


def match_boxes(
    dets: np.ndarray, gts: np.ndarray, difficult: np.ndarray, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`match_class` plus, for each detection, the index of the ground truth box it was compared with
    (its best IoU), or -1 when none exceeded the threshold: what the report draws as matched, missed or spurious."""
    codes = np.full(len(dets), _FP, dtype=np.int64)
    matched = np.full(len(dets), -1, dtype=np.int64)
    if len(gts) == 0:
        return codes, matched
    found = np.zeros(len(gts), dtype=bool)
    for index in np.argsort(-dets[:, 0], kind="stable"):
        ious = iou(dets[index, 1:5], gts)
        best = int(np.argmax(ious))
        if ious[best] <= iou_threshold:
            continue
        matched[index] = best
        if difficult[best]:
            codes[index] = _IGNORED
        elif not found[best]:
            codes[index] = _TP
            found[best] = True
    return codes, matched


@dataclass(frozen=True)
class ClassResult:
    """One class's outcome; ``ap`` is None when the class had neither ground truth nor scored detections."""

    class_id: int
    ap: Optional[float]
    ground_truth: int
    difficult: int
    detections: int
    true_positives: int
    false_positives: int


@dataclass(frozen=True)
class VOCResult:
    """Per-class results (every class id seen, plus ``0..num_classes-1`` if asked) and their mean."""

    mean_ap: Optional[float]
    classes: dict[int, ClassResult]


@dataclass
class _Tally:
    scores: list[float] = field(default_factory=list)
    is_tp: list[bool] = field(default_factory=list)
    ground_truth: int = 0
    difficult: int = 0
    detections: int = 0


class VOC07MApMetric:
    """Accumulates images with :meth:`update`, then :meth:`result` gives per-class AP and mAP.

    Arrays follow mxnet-ssd's layout so its test cases carry over: detections ``(m, 6)``
    ``[class_id, score, xmin, ymin, xmax, ymax]`` (class_id < 0 rows skipped), ground truth ``(n, 5)``
    ``[class_id, xmin, ymin, xmax, ymax]`` or ``(n, 6)`` with a trailing difficult flag (> 0 means difficult).
    """

    def __init__(self, iou_threshold: float = 0.5, use_difficult: bool = False) -> None:
        self.iou_threshold = iou_threshold
        self.use_difficult = use_difficult
        self._tallies: dict[int, _Tally] = {}
        self.images = 0

    def _tally(self, class_id: int) -> _Tally:
        return self._tallies.setdefault(class_id, _Tally())

    def update(self, detections: np.ndarray, ground_truth: np.ndarray) -> None:
        """Add one image."""
        dets = np.asarray(detections, dtype=np.float64).reshape(-1, 6)
        labels = np.asarray(ground_truth, dtype=np.float64)
        labels = labels.reshape(-1, labels.shape[-1] if labels.ndim == 2 else 5)
        if labels.shape[1] not in (5, 6):
            raise ValueError(f"ground truth rows need 5 or 6 columns (got {labels.shape[1]})")
        dets = dets[dets[:, 0] >= 0]
        labels = labels[labels[:, 0] >= 0]
        flagged = labels[:, 5] > 0 if labels.shape[1] == 6 else np.zeros(len(labels), dtype=bool)
        difficult = flagged & (not self.use_difficult)
        self.images += 1
        class_ids = set(dets[:, 0].astype(np.int64).tolist()) | set(labels[:, 0].astype(np.int64).tolist())
        for class_id in sorted(class_ids):
            tally = self._tally(class_id)
            mine = labels[:, 0].astype(np.int64) == class_id
            tally.ground_truth += int(np.sum(mine & ~difficult))
            tally.difficult += int(np.sum(mine & difficult))
            class_dets = dets[dets[:, 0].astype(np.int64) == class_id][:, 1:6]
            tally.detections += len(class_dets)
            codes = match_class(class_dets, labels[mine, 1:5], difficult[mine], self.iou_threshold)
            scored = codes != _IGNORED
            tally.scores.extend(class_dets[scored, 0].tolist())
            tally.is_tp.extend((codes[scored] == _TP).tolist())

    def scored(self, class_id: int) -> tuple[np.ndarray, np.ndarray, int]:
        """One class's scored detections (scores, is-true-positive flags, in the order seen) and its positives:
        what its precision-recall curve, score histograms and recommended threshold are drawn from."""
        tally = self._tallies.get(class_id, _Tally())
        return np.array(tally.scores, dtype=np.float64), np.array(tally.is_tp, dtype=bool), tally.ground_truth

    def result(self, num_classes: int = 0) -> VOCResult:
        """Per-class AP for every class seen (and every id below ``num_classes``), and mAP over the scored ones."""
        classes: dict[int, ClassResult] = {}
        for class_id in sorted(set(self._tallies) | set(range(num_classes))):
            tally = self._tallies.get(class_id, _Tally())
            tp = int(sum(tally.is_tp))
            ap: Optional[float] = None
            if tally.ground_truth > 0 or tally.scores:
                recall, precision = recall_precision(np.array(tally.scores), np.array(tally.is_tp), tally.ground_truth)
                ap = voc07_average_precision(recall, precision)
            classes[class_id] = ClassResult(
                class_id=class_id,
                ap=ap,
                ground_truth=tally.ground_truth,
                difficult=tally.difficult,
                detections=tally.detections,
                true_positives=tp,
                false_positives=len(tally.is_tp) - tp,
            )
        aps = [item.ap for item in classes.values() if item.ap is not None]
        return VOCResult(mean_ap=float(np.mean(aps)) if aps else None, classes=classes)
