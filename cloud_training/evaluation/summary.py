"""One summary of an evaluation, the single source of ``evaluate --json``, its table, the report's first page,
``compare`` and the ``evaluation`` entry ``evaluate --record`` writes into model.json.

Everything the report says in figures comes from this dict, so a test can check the PDF's text against the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from cloud_training.evaluation.analysis import (
    Curve,
    ImageReview,
    Recommendation,
    confusion_matrix,
    curve,
    recommend,
    review_image,
    thresholds_for,
)
from cloud_training.evaluation.loop import SCORE_THRESHOLD, Evaluation

METRIC_NAME = "VOC07 11-point (mxnet-ssd VOC07MApMetric)"


@dataclass(frozen=True)
class Analysis:
    """Curves, recommendations, the thresholds shown, each image's review and the confusion matrix."""

    curves: dict[int, Curve]
    recommended: dict[int, Recommendation]
    shown: dict[int, float]
    reviews: list[ImageReview]
    confusion: Any  # (C + 1, C + 1) numpy array


def analyse(evaluation: Evaluation, num_classes: int, fixed_threshold: Optional[float] = None,
            iou_threshold: float = 0.5) -> Analysis:
    curves = {class_id: curve(evaluation.metric, class_id) for class_id in range(num_classes)}
    recommended = {
        class_id: found for class_id, found in ((c, recommend(c, curves[c])) for c in curves) if found is not None
    }
    shown = thresholds_for(num_classes, recommended, fixed_threshold)
    reviews = [
        review_image(index, image.truth, image.detections, shown, iou_threshold)
        for index, image in enumerate(evaluation.images)
    ]
    return Analysis(curves, recommended, shown, reviews, confusion_matrix(reviews, num_classes))


def summarise(
    evaluation: Evaluation,
    analysis: Analysis,
    names: Mapping[int, str],
    model: Mapping[str, Any],
    dataset: Mapping[str, Any],
    iou_threshold: float,
    score_threshold: float = SCORE_THRESHOLD,
) -> dict[str, Any]:
    """The evaluation as one JSON-able dict (the shape ``evaluate --json`` prints)."""
    result = evaluation.result

    def name(class_id: int) -> str:
        return names.get(class_id, f"class_{class_id}")

    classes = []
    for item in result.classes.values():
        found = analysis.recommended.get(item.class_id)
        reviews = analysis.reviews
        shown_tp = sum(1 for r in reviews for b in r.boxes if b.outcome == "tp" and b.class_id == item.class_id)
        shown_fp = sum(1 for r in reviews for b in r.boxes if b.outcome == "fp" and b.class_id == item.class_id)
        classes.append({
            "class_id": item.class_id,
            "name": name(item.class_id),
            "ap": item.ap,
            "ground_truth": item.ground_truth,
            "detections": item.detections,
            "true_positives": item.true_positives,
            "false_positives": item.false_positives,
            "recommended_threshold": None if found is None else {
                "score": round(found.threshold, 4), "precision": found.precision, "recall": found.recall,
                "f1": found.f1,
            },
            "shown_threshold": analysis.shown.get(item.class_id),
            "recall_at_shown": shown_tp / item.ground_truth if item.ground_truth else None,
            "false_positives_at_shown": shown_fp,  # what a device at that threshold would report wrongly
        })
    return {
        "model": dict(model),
        "manifest": dataset.get("manifest"),
        "dataset": dict(dataset),
        "images": len(evaluation.images),
        "metric": METRIC_NAME,
        "iou_threshold": iou_threshold,
        "score_threshold": score_threshold,
        "mAP": result.mean_ap,
        "classes": classes,
        "outcomes_at_shown_thresholds": {
            "true_positives": sum(r.count("tp") for r in analysis.reviews),
            "false_positives": sum(r.count("fp") for r in analysis.reviews),
            "missed": sum(r.count("missed") for r in analysis.reviews),
            "images_with_errors": sum(1 for r in analysis.reviews if r.errors),
        },
    }


MIN_BOXES_FOR_THRESHOLD = 20
"""Fewest true boxes of a class for ``--record`` to record its recommended threshold: on a handful of boxes the
F1-best score is noise (2 frames once gave 0.027 at precision 0.06), and the device would use it by default."""


def recommended_thresholds(summary: Mapping[str, Any], min_boxes: int = 0) -> dict[str, float]:
    """Class name -> recommended score threshold, for the classes that have one found on at least ``min_boxes``
    true boxes (model.json's form)."""
    return {
        item["name"]: item["recommended_threshold"]["score"]
        for item in summary["classes"]
        if item.get("recommended_threshold") and item["ground_truth"] >= min_boxes
    }


def thin_evidence(summary: Mapping[str, Any], min_boxes: int) -> dict[str, int]:
    """Class name -> its true boxes, for the classes with a recommendation measured on fewer than ``min_boxes``."""
    return {
        item["name"]: item["ground_truth"]
        for item in summary["classes"]
        if item.get("recommended_threshold") and item["ground_truth"] < min_boxes
    }


def model_json_entry(summary: Mapping[str, Any], recorded_at: str,
                     min_boxes: int = MIN_BOXES_FOR_THRESHOLD) -> dict[str, Any]:
    """What ``evaluate --record`` writes under model.json's ``evaluation``: the result and where it was measured;
    thresholds only where the evidence holds (:data:`MIN_BOXES_FOR_THRESHOLD`)."""
    return {
        "recorded_at": recorded_at,
        "dataset": dict(summary["dataset"]),
        "images": summary["images"],
        "metric": summary["metric"],
        "iou_threshold": summary["iou_threshold"],
        "mAP": summary["mAP"],
        "ap": {item["name"]: item["ap"] for item in summary["classes"]},
        "recommended_thresholds": recommended_thresholds(summary, min_boxes),
        "threshold_min_true_boxes": min_boxes,
        "backend": summary["model"].get("backend"),
        "precision": summary["model"].get("precision"),
    }
