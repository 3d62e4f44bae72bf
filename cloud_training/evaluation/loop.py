"""The evaluation loop: each manifest image through a detector, its boxes into the VOC07 metric.

The loop takes any :class:`edge_runtime.detectors.Detector`, the seam the device pipeline uses, so the number measured
here comes from exactly the pre- and post-processing devices run (any backend of the registry), and a test can pass
a detector that returns the ground truth to check the plumbing end to end (mAP 1.0). An optional observer sees every
image with its boxes. Each image's rows (not its pixels) are kept, so the report can pick the worst images after the
last one and decode only those again.

:func:`validation_rows` is the same path from a network's raw ``(anchors, 6)`` rows to the metric's, which the local
trainer's validation uses, so the training log's ``validation mAP`` and ``evaluate``'s are one implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from cloud_training.errors import EvaluationError
from cloud_training.evaluation.voc import VOC07MApMetric, VOCResult
from cloud_training.manifest import io
from cloud_training.manifest.records import Record
from cloud_training.progress import progress

if TYPE_CHECKING:
    from edge_runtime.detectors.base import Detection, Detector
    from edge_runtime.model import ModelInfo


@dataclass(frozen=True)
class ImageOutcome:
    """One evaluated image: the BGR pixels, the ground truth ``(n, 5)`` rows ``[class_id, xmin, ymin, xmax, ymax]``
    (normalised) and every detection the detector returned."""

    record: Record
    image: np.ndarray
    ground_truth: np.ndarray
    detections: list[Detection]


Observer = Callable[[ImageOutcome], None]
SCORE_THRESHOLD = 0.01  # the lowest score the metric sees, as mxnet-ssd evaluates
EVERY_DETECTION = 1 << 30  # top_k for evaluation: all rows the graph's NMS kept


@dataclass(frozen=True)
class ImageRows:
    """One evaluated image as the metric saw it: ground truth ``(n, 5)`` and detections ``(m, 6)``, normalised."""

    record: Record
    truth: np.ndarray
    detections: np.ndarray


@dataclass(frozen=True)
class Evaluation:
    """The metric's result, the metric itself (for curves) and every image's rows, in manifest order."""

    result: VOCResult
    metric: VOC07MApMetric
    images: list[ImageRows]


def ground_truth_rows(record: Record) -> np.ndarray:
    """Ground Truth's pixel ``left, top, width, height`` boxes as normalised corners (divided by ``image_size``)."""
    rows = [
        [
            box.class_id,
            box.left / record.width,
            box.top / record.height,
            (box.left + box.width) / record.width,
            (box.top + box.height) / record.height,
        ]
        for box in record.boxes
    ]
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def detection_rows(detections: Sequence[Detection]) -> np.ndarray:
    """Detections as the metric's ``(m, 6)`` rows ``[class_id, score, xmin, ymin, xmax, ymax]``, normalised."""
    rows = [[item.class_id, item.score, *item.box_normalized] for item in detections]
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def class_names(info: ModelInfo, records: Sequence[Record]) -> dict[int, str]:
    """Names by class id: the model's, else the manifests' ``class-map``; refuse a manifest the model cannot label.

    A class id beyond the model's classes, or a class-map name that disagrees with the model's name for that id,
    means the model and the data were labelled differently, and any mAP computed from them would be meaningless.
    """
    names: dict[int, str] = {index: info.label(index) for index in range(info.num_classes)}
    for record in records:
        for box in record.boxes:
            if box.class_id >= info.num_classes:
                raise EvaluationError(
                    f"{record.where}: class_id {box.class_id} but model {info.name} has {info.num_classes} "
                    f"class(es) (0..{info.num_classes - 1})"
                )
        class_map = record.metadata.get("class-map", {})
        for key, value in class_map.items():
            if not key.isdigit() or int(key) >= info.num_classes:
                continue
            class_id, name = int(key), str(value)
            if info.class_names is None:
                names[class_id] = name
            elif info.class_names[class_id] != name:
                raise EvaluationError(
                    f"{record.where}: class-map says class {class_id} is {name!r} but model {info.name} calls it "
                    f"{info.class_names[class_id]!r}"
                )
    return names


def validation_rows(rows: np.ndarray) -> np.ndarray:
    """A network's raw ``(anchors, 6)`` detection rows as the metric's, exactly as :func:`evaluate` gets them from the
    device's detector: background and scores below :data:`SCORE_THRESHOLD` dropped, boxes clipped to the image."""
    from edge_runtime.detectors.base import postprocess

    return detection_rows(postprocess(rows, 1, 1, str, SCORE_THRESHOLD, None, EVERY_DETECTION))


def evaluate(
    records: Sequence[Record],
    detector: Detector,
    iou_threshold: float = 0.5,
    observer: Optional[Observer] = None,
) -> VOCResult:
    """Detect on every record's image and return per-class AP and mAP."""
    return evaluate_images(records, detector, iou_threshold, observer).result


def evaluate_images(
    records: Sequence[Record],
    detector: Detector,
    iou_threshold: float = 0.5,
    observer: Optional[Observer] = None,
    desc: str = "evaluating",
) -> Evaluation:
    """Detect on every record's image (progress on stderr) and keep the result, the metric and each image's rows."""
    metric = VOC07MApMetric(iou_threshold=iou_threshold)
    images: list[ImageRows] = []
    for record in progress(records, desc, unit="img"):
        image = io.load_image(record)
        detections = detector.detect(image).detections
        truth = ground_truth_rows(record)
        rows = detection_rows(detections)
        metric.update(rows, truth)
        images.append(ImageRows(record, truth, rows))
        if observer is not None:
            observer(ImageOutcome(record, image, truth, detections))
    return Evaluation(metric.result(detector.info.num_classes), metric, images)
