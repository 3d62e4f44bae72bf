"""``cloud-training evaluate``: VOC07 mAP and per-class AP of a deploy model on a Ground Truth manifest."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edge_runtime.argtypes import number_in

EPILOG = """\
example:
  cloud-training evaluate models/boxes prepared/validation.manifest --report boxes-validation.pdf

MODEL_DIR is a deploy model folder (cloud-training convert). Inference runs through the edge runtime's detector,
so the number is measured on exactly what devices compute, but keeps every box down to --score-threshold (0.01, as
mxnet-ssd evaluates) rather than the device's display threshold. The metric is mxnet-ssd's VOC07MApMetric (what
SageMaker reports as validation:mAP): IoU strictly above --iou-threshold, duplicates are false positives, 11-point
interpolated AP; mAP averages the classes that have ground truth or detections (a class predicted but never labelled
counts AP 0). MANIFEST is a local path or s3:// URI; relative source-refs are read from beside it.

--report draws each image on a PDF page: true boxes green, predictions at or above --report-threshold red.
"""

EVERY_DETECTION = 1 << 30  # top_k for evaluation: all rows the graph's NMS kept


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="VOC07 mAP and per-class AP of a deploy model on a manifest, with an optional PDF report",
        description="Evaluate a deploy model folder on a Ground Truth manifest (VOC07 11-point mAP, as mxnet-ssd).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL_DIR", help="deploy model folder (cloud-training convert)")
    parser.add_argument("manifest", metavar="MANIFEST", help="Ground Truth manifest (local path or s3:// URI)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--report", metavar="FILE.pdf", help="write a PDF with one annotated page per image")
    parser.add_argument("--report-threshold", type=number_in(0.0, 1.0, high_open=True), default=0.5, metavar="F",
                        help="lowest score of a prediction drawn in the report (default: 0.5)")
    parser.add_argument("--score-threshold", type=number_in(0.0, 1.0, high_open=True), default=0.01, metavar="F",
                        help="lowest score of a detection the metric sees (default: 0.01)")
    parser.add_argument("--iou-threshold", type=number_in(0.0, 1.0, high_open=True), default=0.5, metavar="F",
                        help="IoU a detection must exceed to match a true box (default: 0.5)")
    parser.add_argument("--backend", choices=["auto", "onnxruntime", "mxnet"], default="auto",
                        help="inference engine, as the device's model.backend (default auto: onnxruntime when the"
                             " folder has model.onnx)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                        help="int8 evaluates model.int8.onnx (cloud-training convert --quantize int8)")
    parser.add_argument("--label-attribute", metavar="NAME", help="default: detected from -metadata.type")
    parser.add_argument("--force", action="store_true", help="replace an existing report")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cloud_training.errors import EvaluationError
    from cloud_training.evaluation.loop import class_names, evaluate
    from cloud_training.manifest import io
    from edge_runtime.errors import EdgeRuntimeError

    if args.report:
        io.check_writable([args.report], args.force)
    records, _, _ = io.read_records([args.manifest], args.label_attribute, skip_invalid=False)
    if not records:
        raise EvaluationError(f"{args.manifest}: no images to evaluate")
    try:
        from edge_runtime.config import ModelConfig
        from edge_runtime.detectors import create_detector
        from edge_runtime.model import read_model_info

        info = read_model_info(args.model)
        names = class_names(info, records)
        config = ModelConfig(path=args.model, backend=args.backend, precision=args.precision,
                             score_threshold=args.score_threshold, warmup_runs=0)
        detector = create_detector(config, info)
        detector.top_k = EVERY_DETECTION
    except EdgeRuntimeError as error:
        raise EvaluationError(str(error)) from None

    if args.report:
        from cloud_training.evaluation.report import PdfReport

        with PdfReport(args.report, names, args.report_threshold) as report:
            result = evaluate(records, detector, args.iou_threshold, observer=report.add)
    else:
        result = evaluate(records, detector, args.iou_threshold)

    summary = {
        "model": {"name": info.name, "version": info.version, "folder": str(info.folder), "backend": detector.backend,
                  "precision": args.precision},
        "manifest": args.manifest,
        "images": len(records),
        "metric": "VOC07 11-point (mxnet-ssd VOC07MApMetric)",
        "iou_threshold": args.iou_threshold,
        "score_threshold": args.score_threshold,
        "mAP": result.mean_ap,
        "classes": [
            {
                "class_id": item.class_id,
                "name": names.get(item.class_id, f"class_{item.class_id}"),
                "ap": item.ap,
                "ground_truth": item.ground_truth,
                "detections": item.detections,
                "true_positives": item.true_positives,
                "false_positives": item.false_positives,
            }
            for item in result.classes.values()
        ],
        "report": args.report,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_table(summary))
    if args.report:
        print(f"wrote {args.report}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _ap_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _table(summary: dict[str, Any]) -> str:
    from cloud_training.manifest.table import format_table

    rows: list[list[object]] = [
        [item["name"], item["ground_truth"], item["detections"], item["true_positives"], item["false_positives"],
         _ap_text(item["ap"])]
        for item in summary["classes"]
    ]
    rows.append(["mAP", "", "", "", "", _ap_text(summary["mAP"])])
    header = ["class", "true boxes", "detections", "TP", "FP", "AP"]
    model = summary["model"]
    title = (
        f"{model['name']} {model['version']} on {summary['manifest']}: {summary['images']} images, "
        f"VOC07 11-point, IoU > {summary['iou_threshold']:g}, scores >= {summary['score_threshold']:g}"
    )
    return title + "\n" + format_table(header, rows)
