"""``cloud-training convert``: a SageMaker SSD training artifact in, a deploy model folder out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cloud_training.lineage import describe_score
from edge_runtime.argtypes import number_in

EPILOG = """\
example:
  cloud-training convert model.tar.gz --out models/boxes --class-names "blue box,yellow box"

ARTIFACT is the model.tar.gz a SageMaker object detection job (or `cloud-training train`) wrote, or a folder with its
three files: model_algo_1-symbol.json, model_algo_1-0000.params, hyperparams.json. The network, class count and input
size are read from the artifact; NMS settings default to hyperparams.json (nms_threshold, nms_topk).

DIR receives deploy_model_algo_1-symbol.json, deploy_model_algo_1-0000.params (the MXNet deploy graph), model.onnx
(the same network for ONNX Runtime, what devices run; checked against MXNet before it is written) and model.json,
or nothing on error. A lineage.json beside model.tar.gz (what `train` writes: manifests' SHA-256 and lines,
hyperparameters, backend and job, best epoch and its validation mAP) goes into model.json's lineage when it describes
this very artifact (its artifact_sha256); --lineage names another file.

With --quantize int8 also model.int8.onnx, calibrated on --calibration's images; the device uses it only when told to
(model.precision int8).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a training artifact for inference: the MXNet deploy graph (loss layers dropped, NMS added)"
        " and model.onnx",
        description="Convert a SageMaker object detection training artifact into a deploy model folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("artifact", metavar="ARTIFACT", type=Path, help="model.tar.gz or a folder with its three files")
    parser.add_argument("--out", metavar="DIR", type=Path, required=True, help="the deploy model folder to write")
    parser.add_argument("--nms-threshold", type=number_in(0.0, 1.0, low_open=True), metavar="F",
                        help="IoU above which NMS suppresses a box"
                             " (default: hyperparams.json nms_threshold, else 0.45)")
    parser.add_argument("--nms-topk", type=_topk, metavar="N",
                        help="boxes kept per image before NMS, -1 for all"
                             " (default: hyperparams.json nms_topk, else 400)")
    parser.add_argument("--force-suppress", action=argparse.BooleanOptionalAction, default=None,
                        help="suppress overlapping boxes across classes too (default: as the training graph, else on)")
    parser.add_argument("--class-names", metavar="NAMES", type=_names,
                        help='comma-separated class names in class-id order, e.g. "blue box,yellow box"')
    parser.add_argument("--name", help="model name recorded in model.json (default: the output folder's name)")
    parser.add_argument("--model-version", default="1.0.0", metavar="VERSION",
                        help="model version recorded in model.json (default: 1.0.0)")
    parser.add_argument("--lineage", metavar="FILE", type=Path,
                        help="the training run's lineage.json (default: the one beside ARTIFACT, if any)")
    parser.add_argument("--force", action="store_true", help="replace DIR if it exists")
    add_quantize_options(parser)
    parser.set_defaults(handler=run)


def add_quantize_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quantize", choices=["int8"],
                        help="also write model.int8.onnx, statically quantised (ONNX Runtime QDQ, per channel)")
    parser.add_argument("--calibration", metavar="MANIFEST",
                        help="images to calibrate --quantize on: a Ground Truth manifest (local or s3://), e.g. the"
                             " training split")
    parser.add_argument("--calibration-images", type=int, default=64, metavar="N",
                        help="how many of its images to calibrate on (default 64)")


def run(args: argparse.Namespace) -> int:
    # Imported here: mxnet takes a second to load, and --help should not wait for it.
    from cloud_training.artifact import read_artifact
    from cloud_training.conversion import convert
    from cloud_training.deploy_folder import model_metadata, write_deploy_folder
    from cloud_training.errors import ArtifactError
    from cloud_training.gate_samples import SAMPLE_FRAMES, add_samples, sample_batches
    from cloud_training.lineage import lineage_for
    from cloud_training.onnx_files import onnx_files, quantize_request
    from edge_runtime.model_format import DEFAULT_DETECTION_THRESHOLD, SAMPLES_FILE

    quantize = quantize_request(args)  # a missing --calibration is refused before the conversion's seconds
    artifact = read_artifact(args.artifact)
    model = convert(artifact, args.nms_threshold, args.nms_topk, args.force_suppress)
    if args.class_names is not None and len(args.class_names) != model.shape.num_classes:
        raise ArtifactError(
            f"--class-names lists {len(args.class_names)} name(s) but the model has {model.shape.num_classes} class(es)"
        )
    nms = {
        "threshold": model.nms.threshold,
        "topk": model.nms.topk,
        "force_suppress": model.nms.force_suppress,
        "variances": list(model.nms.variances),
        "score_threshold": DEFAULT_DETECTION_THRESHOLD,  # MultiBoxDetection's threshold and clip: the deploy
        "clip": True,  # head leaves both at the operator's defaults
    }
    metadata = model_metadata(
        name=args.name or args.out.resolve().name,
        version=args.model_version,
        network=artifact.hyperparameters.get("base_network"),
        image_shape=model.image_shape,
        num_classes=model.shape.num_classes,
        num_anchors=model.shape.num_anchors,
        class_names=args.class_names,
        nms=nms,
        source={"artifact": artifact.source, "sha256": artifact.sha256, "hyperparameters": artifact.hyperparameters},
    )
    if args.lineage is not None and not args.lineage.is_file():
        raise ArtifactError(f"--lineage {args.lineage}: no such file")
    lineage = lineage_for(args.artifact, artifact.sha256, args.lineage)
    if lineage is not None:
        metadata["lineage"] = lineage
    where = f"{artifact.source}: deploy graph"
    extra, entries = onnx_files(model.symbol.tojson(), model.arg_params, model.aux_params, model.image_shape, where,
                                quantize)  # fmt: skip
    metadata.update(entries)
    write_deploy_folder(args.out, model.symbol, model.arg_params, model.aux_params, metadata, force=args.force,
                        extra_files=extra)  # fmt: skip
    references = add_samples(args.out, sample_batches(args.calibration, model.image_shape))
    weights = sum(int(array.size) for array in (*model.arg_params.values(), *model.aux_params.values()))
    names = ", ".join(args.class_names) if args.class_names else "(no names: pass --class-names)"
    print(f"converted {artifact.source} -> {args.out}")
    print(f"  network     {metadata['network'] or 'unknown (no base_network in hyperparams.json)'}")
    print(f"  input       3x{model.image_shape}x{model.image_shape} RGB minus mean {metadata['input']['mean']}")
    print(f"  classes     {model.shape.num_classes}: {names}")
    print(f"  anchors     {model.shape.num_anchors}")
    print(f"  nms         threshold {nms['threshold']}, top-k {nms['topk']}, force_suppress {nms['force_suppress']}")
    print(f"  weights     {weights / 1e6:.2f} M values in {len(model.arg_params) + len(model.aux_params)} arrays")
    print_onnx_summary(entries)
    print(f"  samples     {SAMPLES_FILE}: {SAMPLE_FRAMES} frames, {references} fp32 detection(s) (the engines' gate)")
    if lineage is not None:
        print(f"  lineage     {lineage.get('backend')} training, {describe_score(lineage)}")
    return 0


def print_onnx_summary(entries: dict[str, Any]) -> None:
    check = entries["onnx"]["checked_against_mxnet"]
    print(f"  onnx        model.onnx, opset {entries['onnx']['opset']}; max |ONNX Runtime - MXNet| on a check input:"
          f" logits {check['class_logits']:.2g}, box offsets {check['loc_pred']:.2g}")  # fmt: skip
    int8 = entries["onnx"].get("int8")
    if int8:
        print(f"  int8        model.int8.onnx, calibrated on {int8['calibration']['images']} image(s) of"
              f" {int8['calibration']['manifest']}; run it with model.precision int8 after checking its mAP")


def _topk(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"must be a positive count, or -1 for all (got {text})")
    return value


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if any(not name for name in names):
        raise argparse.ArgumentTypeError(f"empty class name in {text!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"duplicate class name in {text!r}")
    return names
