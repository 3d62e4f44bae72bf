"""``cloud-training inspect``: what a model is and whether its parts agree, without changing it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cloud_training.lineage import describe_score

EPILOG = """\
examples:
  cloud-training inspect model.tar.gz
  cloud-training inspect models/demo --json

PATH is a training artifact (model.tar.gz or its folder), a deploy model folder written by `convert`, or a folder with
the plain deploy pair (deploy_model_algo_1-symbol.json [+ .params]) and hyperparams.json as the AWS sample ships it.
Exits 2 with one line when the parts disagree (e.g. num_classes vs the graph's class head, a digest mismatch).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show what a model is and check that its files agree",
        description="Inspect a training artifact or a deploy model folder and check its consistency.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", metavar="PATH", type=Path, help="model.tar.gz or a model folder")
    parser.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cloud_training.inspection import inspect_model

    found = inspect_model(args.path)
    if args.json:
        print(json.dumps(found.as_dict(), indent=2))
        return 0
    print(f"{found.path}: {found.kind}")
    print(f"  network     {found.network or 'unknown'}")
    print(f"  input       3x{found.image_shape}x{found.image_shape}")
    names = ", ".join(found.class_names) if found.class_names else "(not recorded)"
    print(f"  classes     {found.num_classes}: {names}")
    print(f"  anchors     {found.num_anchors}")
    print("  nms         " + (", ".join(f"{k}={v}" for k, v in sorted(found.nms.items())) or "(no detection layer)"))
    for name, status in found.files.items():
        print(f"  {name:<34} {status}")
    if found.onnx:
        check = found.onnx.get("checked_against_mxnet", {})
        print(f"  onnx        opset {found.onnx.get('opset')}, outputs {', '.join(found.onnx.get('outputs', []))};"
              f" {found.onnx.get('postprocess')}")  # fmt: skip
        print("              checked against MXNet: " + ", ".join(f"{k} {v:.2g}" for k, v in check.items()))
        if found.onnx.get("int8"):
            int8 = found.onnx["int8"]
            print(f"  int8        {int8.get('method')}; calibrated on {int8['calibration']['images']} image(s)")
    print("  backends    " + (", ".join(found.backends) or "none: the folder has neither model.onnx nor the params"))
    for line in lineage_lines(found.lineage) + evaluation_lines(found.evaluation):
        print(line)
    return 0


def _score(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def lineage_lines(lineage: dict[str, Any] | None) -> list[str]:
    if not lineage:
        return ["  lineage     not recorded (convert a training run that wrote lineage.json)"]
    job = lineage.get("job") or {}
    where = job.get("training_job_arn") or job.get("run_folder") or "unknown"
    lines = [f"  lineage     {lineage.get('backend')} training ({where})",
             f"              {describe_score(lineage)}"]
    for key, title in (("train_manifests", "train"), ("validation_manifests", "validation")):
        for item in lineage.get(key) or []:
            lines.append(f"              {title:<10} {item['uri']}  sha256 {item['sha256'][:16]}"
                         f"  {item['lines']} lines")
    hyper = lineage.get("hyperparameters") or {}
    if hyper:
        lines.append("              hyperparameters " + ", ".join(f"{k}={v}" for k, v in sorted(hyper.items())))
    return lines


def evaluation_lines(evaluation: dict[str, Any] | None) -> list[str]:
    if not evaluation:
        return ["  evaluation  not recorded (cloud-training evaluate MODEL MANIFEST --record)"]
    dataset = evaluation.get("dataset") or {}
    lines = [f"  evaluation  mAP {_score(evaluation.get('mAP'))} on {dataset.get('manifest')} (sha256"
             f" {str(dataset.get('sha256'))[:16]}, {evaluation.get('images')} images), {evaluation.get('recorded_at')}"]
    for name, ap in (evaluation.get("ap") or {}).items():
        threshold = (evaluation.get("recommended_thresholds") or {}).get(name)
        advice = f", recommended threshold {threshold:.2f}" if threshold is not None else ", no threshold recommended"
        lines.append(f"              {name}: AP {_score(ap)}{advice}")
    return lines
