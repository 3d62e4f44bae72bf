"""``cloud-training evaluate``: VOC07 mAP and per-class AP of a deploy model on a Ground Truth manifest."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from edge_runtime.argtypes import number_in
from edge_runtime.detectors.registry import PRECISIONS, engine_choices

DEFAULT_PAGES = 20
EPILOG = """\
example:
  cloud-training evaluate models/boxes prepared/validation.manifest --report boxes-validation.pdf

MODEL_DIR is a deploy model folder (cloud-training convert). Inference runs through the edge runtime's detector,
so the number is measured on exactly what devices compute, but keeps every box down to --score-threshold (0.01, as
mxnet-ssd evaluates) rather than the device's display threshold. The metric is mxnet-ssd's VOC07MApMetric (what
SageMaker reports as validation:mAP): IoU strictly above --iou-threshold, duplicates are false positives, 11-point
interpolated AP; mAP averages the classes that have ground truth or detections (a class predicted but never labelled
counts AP 0). MANIFEST is a local path or s3:// URI; relative source-refs are read from beside it.

--report writes a PDF: page 1 the summary (mAP, per-class AP and counts, model and data identity with SHA-256,
thresholds), then precision-recall curves, score histograms of true and false positives, the confusion matrix with
background, then the --pages worst images (most missed + false positives) first: true positives green, false
positives red, missed boxes blue dashed. Boxes are shown at each class's recommended threshold (the F1-best score on
these images) unless --report-threshold fixes one. --html DIR writes the same as a browsable folder (index.html).
--record writes mAP, per-class AP and the recommended thresholds into MODEL_DIR/model.json (its evaluation entry),
which the device uses when its configuration sets no class_thresholds. A class's threshold is recorded only when it
was measured on at least --min-boxes true boxes (default 20): on fewer it is noise, so evaluate warns and records
none for that class (the device then keeps its score_threshold).
"""


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
    parser.add_argument("--report", metavar="FILE.pdf", help="write the PDF report (summary, curves, worst images)")
    parser.add_argument("--html", metavar="DIR", type=Path, help="write the report as a browsable folder")
    parser.add_argument("--pages", type=_pages, default=DEFAULT_PAGES, metavar="N",
                        help=f"worst images drawn in the report (default {DEFAULT_PAGES}; 0 for none)")
    parser.add_argument("--report-threshold", type=number_in(0.0, 1.0, high_open=True), metavar="F",
                        help="one score threshold for the report's image pages and confusion matrix"
                             " (default: each class's recommended threshold)")
    parser.add_argument("--record", action="store_true",
                        help="write the result and recommended thresholds into MODEL_DIR/model.json")
    parser.add_argument("--min-boxes", type=_positive, default=None, metavar="N",
                        help="fewest true boxes of a class for --record to record its recommended threshold"
                             " (default: 20)")
    parser.add_argument("--score-threshold", type=number_in(0.0, 1.0, high_open=True), default=0.01, metavar="F",
                        help="lowest score of a detection the metric sees (default: 0.01)")
    parser.add_argument("--iou-threshold", type=number_in(0.0, 1.0, high_open=True), default=0.5, metavar="F",
                        help="IoU a detection must exceed to match a true box (default: 0.5)")
    parser.add_argument("--backend", choices=engine_choices(), default="auto",
                        help="inference engine, as the device's model.backend (default auto: onnxruntime when the"
                             " folder has model.onnx; openvino for bf16/fp16)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="int8 evaluates model.int8.onnx (cloud-training convert --quantize int8); bf16/fp16 run"
                             " on openvino. With --record, a reduced precision's mAP goes under model.json's"
                             " evaluations (the device's auto choice reads it), fp32's under evaluation")
    parser.add_argument("--label-attribute", metavar="NAME", help="default: detected from -metadata.type")
    parser.add_argument("--force", action="store_true", help="replace an existing report or --html folder")
    parser.set_defaults(handler=run)


def _pages(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {text})")
    return value


def _positive(text: str) -> int:
    value = _pages(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {text})")
    return value


def run(args: argparse.Namespace) -> int:
    from cloud_training.errors import OutputError

    if args.report:
        from cloud_training.manifest import io

        if not str(args.report).lower().endswith(".pdf"):  # it is a PDF whatever the name says
            raise OutputError(f"--report {args.report}: the report is a PDF, give a .pdf name (or --html DIR)")
        io.check_writable([args.report], args.force)
    if args.html is not None and args.html.exists() and not args.force:
        raise OutputError(f"{args.html} already exists (use --force to replace it)")
    if args.report or args.html is not None:  # before the work, not after it
        from cloud_training.extras import require

        require(("matplotlib",), "cloud-training evaluate --report/--html")
    measured = measure(args.model, args.manifest, args.label_attribute, args.backend, args.precision,
                       args.score_threshold, args.iou_threshold, args.report_threshold)
    summary = measured.summary
    summary["report"] = args.report
    if args.report or args.html is not None:
        from cloud_training.evaluation.report import Report

        report = Report(summary, measured.analysis, measured.evaluation, measured.names, args.pages)
        if args.report:
            report.write_pdf(args.report)
        if args.html is not None:
            report.write_html(args.html, args.force)
    if args.record:
        record_in_model_json(Path(args.model), summary, args.min_boxes)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_table(summary))
    out = sys.stderr if args.json else sys.stdout
    for target in (args.report, args.html):
        if target:
            print(f"wrote {target}", file=out)
    if args.record:
        print(f"recorded the evaluation in {Path(args.model) / 'model.json'}", file=out)
    return 0


class Measured:
    """An evaluation with everything drawn from it: the rows, the analysis, the summary, the class names."""

    def __init__(self, evaluation: Any, analysis: Any, summary: dict[str, Any], names: dict[int, str],
                 info: Any) -> None:
        self.evaluation = evaluation
        self.analysis = analysis
        self.summary = summary
        self.names = names
        self.info = info


def measure(model: str, manifest: str, label_attribute: str | None, backend: str = "auto", precision: str = "fp32",
            score_threshold: float = 0.01, iou_threshold: float = 0.5, report_threshold: float | None = None,
            records: Any = None, desc: str = "evaluating") -> Measured:
    """Evaluate one model folder on one manifest: what ``evaluate`` and ``compare`` both run."""
    from cloud_training.errors import EvaluationError
    from cloud_training.evaluation.loop import EVERY_DETECTION, class_names, evaluate_images
    from cloud_training.evaluation.summary import analyse, summarise
    from cloud_training.lineage import manifest_identity
    from cloud_training.manifest import io
    from edge_runtime.errors import EdgeRuntimeError

    if records is None:
        records, _, _ = io.read_records([manifest], label_attribute, skip_invalid=False)
    if not records:
        raise EvaluationError(f"{manifest}: no images to evaluate")
    try:
        from edge_runtime.config import ModelConfig
        from edge_runtime.detectors import create_detector
        from edge_runtime.model import read_model_info

        # the metric sees every class down to score_threshold, whatever thresholds an earlier --record recommended
        info = dataclasses.replace(read_model_info(model), recommended_thresholds={})
        names = class_names(info, records)
        config = ModelConfig.model_validate({"path": model, "backend": backend, "precision": precision,
                                             "score_threshold": score_threshold, "warmup_runs": 0})
        detector = create_detector(config, info)
        detector.top_k = EVERY_DETECTION
    except EdgeRuntimeError as error:
        raise EvaluationError(str(error)) from None
    evaluation = evaluate_images(records, detector, iou_threshold, desc=desc)
    analysis = analyse(evaluation, info.num_classes, report_threshold, iou_threshold)
    identity = manifest_identity(manifest)
    dataset = {"manifest": manifest, "sha256": identity["sha256"], "lines": identity["lines"]}
    model_entry = {"name": info.name, "version": info.version, "folder": str(info.folder), "backend": detector.backend,
                   "precision": precision, "lineage": _lineage_of(info.folder)}
    summary = summarise(evaluation, analysis, names, model_entry, dataset, iou_threshold, score_threshold)
    return Measured(evaluation, analysis, summary, names, info)


def _lineage_of(folder: Path) -> dict[str, Any] | None:
    path = folder / "model.json"
    if not path.is_file():
        return None
    lineage = json.loads(path.read_text(encoding="utf-8")).get("lineage")
    return lineage if isinstance(lineage, dict) else None


def record_in_model_json(folder: Path, summary: dict[str, Any], min_boxes: int | None = None) -> None:
    """The evaluation into model.json; a class's threshold only when measured on ``min_boxes`` true boxes or more
    (a warning names the others and the minimum: the device would otherwise use a threshold found on noise)."""
    import logging

    from cloud_training.deploy_folder import add_files_in_place, utc_timestamp
    from cloud_training.errors import EvaluationError
    from cloud_training.evaluation.summary import MIN_BOXES_FOR_THRESHOLD, model_json_entry, thin_evidence

    if not (folder / "model.json").is_file():
        raise EvaluationError(f"--record: {folder} has no model.json to record in (a plain deploy pair)")
    minimum = MIN_BOXES_FOR_THRESHOLD if min_boxes is None else min_boxes
    thin = thin_evidence(summary, minimum)
    if thin:
        counts = ", ".join(f"{name} ({count})" for name, count in thin.items())
        logging.getLogger(__name__).warning(
            "--record: too few true boxes to record a threshold for %s: at least %d are needed (--min-boxes);"
            " none recorded for %s, the device keeps its score_threshold", counts, minimum,
            "it" if len(thin) == 1 else "them")
    entry = model_json_entry(summary, utc_timestamp(), minimum)
    precision = summary["model"].get("precision") or "fp32"
    if precision == "fp32":
        add_files_in_place(folder, {}, {"evaluation": entry})
    else:  # never over fp32's entry (its thresholds are the device's defaults): beside it, for auto's mAP gate
        others = json.loads((folder / "model.json").read_text(encoding="utf-8")).get("evaluations") or {}
        add_files_in_place(folder, {}, {"evaluations": {**others, precision: entry}})


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
