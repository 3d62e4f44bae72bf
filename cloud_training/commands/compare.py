"""``cloud-training compare``: two deploy models on the same images, per class side by side, and where they differ."""

from __future__ import annotations

import argparse
import json
from typing import Any

from edge_runtime.detectors.registry import engine_choices

EPILOG = """\
example:
  cloud-training compare models/boxes-v1 models/boxes-v2 prepared/validation.manifest

Both models are evaluated exactly as `evaluate` does (same images, same VOC07 metric). Per class: AP of each, the
difference B - A, and each model's recall at its own recommended threshold (precision too with --json) (the F1-best
score on these images, what `evaluate --record` writes and devices then use). Then the images where the two disagree
most: the difference in errors (missed true boxes + false positives) at those thresholds, with each model's counts.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="evaluate two deploy models on the same manifest: per-class AP and recall side by side, and the images"
             " where they disagree most",
        description="Compare two deploy model folders on one Ground Truth manifest.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_a", metavar="MODEL_A", help="deploy model folder (the baseline)")
    parser.add_argument("model_b", metavar="MODEL_B", help="deploy model folder (the candidate)")
    parser.add_argument("manifest", metavar="MANIFEST", help="Ground Truth manifest (local path or s3:// URI)")
    parser.add_argument("--top", type=int, default=10, metavar="N",
                        help="images listed where the models disagree most (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--backend", choices=engine_choices(), default="auto",
                        help="inference engine for both models (default auto)")
    parser.add_argument("--label-attribute", metavar="NAME", help="default: detected from -metadata.type")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cloud_training.commands.evaluate import measure
    from cloud_training.errors import EvaluationError
    from cloud_training.manifest import io

    if args.top < 0:
        raise EvaluationError(f"--top must be 0 or more (got {args.top})")
    from edge_runtime.errors import EdgeRuntimeError
    from edge_runtime.model import read_model_info

    for model in (args.model_a, args.model_b):  # both readable before minutes are spent evaluating the first
        try:
            read_model_info(model)
        except EdgeRuntimeError as error:
            raise EvaluationError(str(error)) from None
    records, _, _ = io.read_records([args.manifest], args.label_attribute, skip_invalid=False)
    a = measure(args.model_a, args.manifest, args.label_attribute, args.backend, records=records, desc="evaluating A")
    b = measure(args.model_b, args.manifest, args.label_attribute, args.backend, records=records, desc="evaluating B")
    if a.names != b.names:
        raise EvaluationError(
            f"the models label classes differently ({', '.join(a.names.values())} vs {', '.join(b.names.values())})"
        )
    comparison = compare(a, b, args.top)
    if args.json:
        print(json.dumps(comparison, indent=2))
    else:
        print(text(comparison))
    return 0


def _model(measured: Any) -> dict[str, Any]:
    model = measured.summary["model"]
    return {"name": model["name"], "version": model["version"], "folder": model["folder"],
            "mAP": measured.summary["mAP"]}


def compare(a: Any, b: Any, top: int) -> dict[str, Any]:
    """The comparison as a dict: per class both models' AP and thresholds, then the images ordered by disagreement."""
    from cloud_training import storage

    classes = []
    for item_a, item_b in zip(a.summary["classes"], b.summary["classes"]):
        classes.append({
            "class_id": item_a["class_id"],
            "name": item_a["name"],
            "ground_truth": item_a["ground_truth"],
            "a": _side(item_a),
            "b": _side(item_b),
            "ap_difference": None if item_a["ap"] is None or item_b["ap"] is None else item_b["ap"] - item_a["ap"],
        })
    images = []
    for review_a, review_b in zip(a.analysis.reviews, b.analysis.reviews):
        record = a.evaluation.images[review_a.index].record
        images.append({
            "image": storage.basename(record.resolved_ref),
            "index": review_a.index,
            "a": _errors(review_a),
            "b": _errors(review_b),
            "disagreement": review_b.errors - review_a.errors,
        })
    images.sort(key=lambda item: (-abs(item["disagreement"]), item["index"]))
    return {
        "manifest": a.summary["dataset"],
        "images": len(images),
        "metric": a.summary["metric"],
        "a": _model(a),
        "b": _model(b),
        "classes": classes,
        "disagreements": images[:top],
    }


def _errors(review: Any) -> dict[str, int]:
    return {"missed": review.count("missed"), "false_positives": review.count("fp"), "errors": review.errors}


def _side(item: dict[str, Any]) -> dict[str, Any]:
    choice = item["recommended_threshold"] or {}
    return {"ap": item["ap"], "threshold": choice.get("score"), "recall": choice.get("recall"),
            "precision": choice.get("precision")}


def _f(value: float | None, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def text(comparison: dict[str, Any]) -> str:
    from cloud_training.manifest.table import format_table

    a, b = comparison["a"], comparison["b"]
    header = ["class", "true boxes", "AP A", "AP B", "B - A", "thr A", "recall A", "thr B", "recall B"]
    rows: list[list[object]] = [
        [item["name"], item["ground_truth"], _f(item["a"]["ap"]), _f(item["b"]["ap"]),
         _f(item["ap_difference"], signed=True), _f(item["a"]["threshold"], 2), _f(item["a"]["recall"], 2),
         _f(item["b"]["threshold"], 2), _f(item["b"]["recall"], 2)]
        for item in comparison["classes"]
    ]
    difference = None if a["mAP"] is None or b["mAP"] is None else b["mAP"] - a["mAP"]
    rows.append(["mAP", "", _f(a["mAP"]), _f(b["mAP"]), _f(difference, signed=True), "", "", "", ""])
    lines = [
        f"A: {a['name']} {a['version']} ({a['folder']})",
        f"B: {b['name']} {b['version']} ({b['folder']})",
        f"on {comparison['manifest']['manifest']}: {comparison['images']} images, {comparison['metric']};"
        " thr/recall: at each model's recommended (F1-best) threshold ('-': none, it found no box of the class;"
        " its images are then counted at 0.5)",
        format_table(header, rows),
    ]
    listed = [item for item in comparison["disagreements"] if item["disagreement"]]
    if not listed:
        lines.append("\nthe two models make the same number of errors on every image")
        return "\n".join(lines)
    lines.append("\nimages where they disagree most (errors = missed + false positives, at those thresholds):")
    image_rows: list[list[object]] = [
        [item["image"], item["a"]["errors"], f"{item['a']['missed']}/{item['a']['false_positives']}",
         item["b"]["errors"], f"{item['b']['missed']}/{item['b']['false_positives']}", f"{item['disagreement']:+d}"]
        for item in listed
    ]
    lines.append(format_table(["image", "errors A", "missed/FP A", "errors B", "missed/FP B", "B - A"], image_rows))
    return "\n".join(lines)
