"""``cloud-training export``: add ``model.onnx`` (and optionally ``model.int8.onnx``) to a model that lacks it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cloud_training.commands.convert import add_quantize_options

EPILOG = """\
examples:
  cloud-training export models/boxes                       # a deploy folder converted before ONNX: adds model.onnx
  cloud-training export models/boxes --force --quantize int8 --calibration data/prepared/train.manifest
  cloud-training export sample-model/ --out models/sample  # the AWS sample's plain pair (+ its params file)

MODEL_DIR is a deploy model folder (model.json; its digests are checked first) or a plain deploy pair:
deploy_model_algo_1-symbol.json, deploy_model_algo_1-0000.params and hyperparams.json, as the AWS sample ships it.
A deploy folder is updated in place (all or nothing: model.json never lists a file that is not complete), or copied
to --out; a plain pair needs --out and becomes a deploy folder there. The export is checked against MXNet before it is
written, as convert does.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="add model.onnx (ONNX Runtime, what devices run) to an existing deploy folder or plain pair",
        description="Export an MXNet SSD deploy graph to ONNX for the device's ONNX Runtime backend.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL_DIR", type=Path, help="deploy model folder or plain deploy pair")
    parser.add_argument("--out", metavar="DIR", type=Path, help="write a new deploy folder here instead")
    parser.add_argument("--force", action="store_true", help="re-export over an existing model.onnx, or replace DIR")
    add_quantize_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cloud_training.commands.convert import print_onnx_summary
    from cloud_training.conversion import graph_shape, load_params, load_symbol, select_params
    from cloud_training.deploy_folder import add_files_in_place, write_deploy_folder
    from cloud_training.errors import ArtifactError, OutputError
    from cloud_training.gate_samples import SAMPLE_FRAMES, add_samples, sample_batches
    from cloud_training.onnx_files import onnx_files, quantize_request, require_mxnet_pair
    from edge_runtime.errors import ModelError
    from edge_runtime.model import read_model_info
    from edge_runtime.model_format import MODEL_JSON, ONNX_FILE, PARAMS_FILE, SAMPLES_FILE, SYMBOL_FILE

    quantize = quantize_request(args)
    folder: Path = args.model
    try:
        info = read_model_info(folder, verify_digests=True)
    except ModelError as error:
        raise ArtifactError(str(error)) from None
    require_mxnet_pair(folder)
    if info.layout == "plain-pair" and args.out is None:
        raise OutputError(f"{folder}: a plain pair has no model.json to record model.onnx in: give --out DIR")
    if args.out is None and info.onnx_path is not None and not args.force:
        raise OutputError(f"{folder}/{ONNX_FILE} exists (use --force to export it again)")
    if args.out is not None and args.out.exists() and not args.force:
        raise OutputError(f"{args.out} already exists (use --force to replace it)")

    symbol_where = str(folder / SYMBOL_FILE)
    symbol_json = (folder / SYMBOL_FILE).read_text(encoding="utf-8")
    symbol = load_symbol(symbol_json, symbol_where)
    arg_params, aux_params = load_params((folder / PARAMS_FILE).read_bytes(), str(folder / PARAMS_FILE))
    arg_params, aux_params = select_params(symbol, arg_params, aux_params, info.image_size, str(folder / PARAMS_FILE))
    files, entries = onnx_files(symbol_json, arg_params, aux_params, info.image_size, symbol_where, quantize)
    if info.layout == "deploy-folder" and args.out is None:
        add_files_in_place(folder, files, entries)
        target = folder
    else:
        metadata = _metadata(info, folder, graph_shape(symbol, info.image_size, symbol_where).num_anchors)
        metadata.update(entries)
        write_deploy_folder(args.out, symbol, arg_params, aux_params, metadata, force=args.force, extra_files=files)
        target = args.out
    references = add_samples(target, sample_batches(args.calibration, info.image_size)) if (
        target / MODEL_JSON).is_file() else None
    print(f"exported {folder} -> {target / ONNX_FILE}")
    print(f"  model       {info.name} {info.version}, {info.num_classes} class(es), input {info.image_size}px")
    print_onnx_summary(entries)
    if references is not None:
        print(f"  samples     {SAMPLES_FILE}: {SAMPLE_FRAMES} frames, {references} fp32 detection(s)")
    if (target / MODEL_JSON).is_file():
        print(f"  recorded in {target / MODEL_JSON} with its SHA-256")
    return 0


def _metadata(info: Any, folder: Path, num_anchors: int) -> dict[str, Any]:
    """model.json content for a plain pair or a copied deploy folder (what convert would have written)."""
    from cloud_training.deploy_folder import model_metadata
    from edge_runtime.model_format import HYPERPARAMS_JSON, MODEL_JSON

    if (folder / MODEL_JSON).is_file():
        manifest: dict[str, Any] = json.loads((folder / MODEL_JSON).read_text(encoding="utf-8"))
        manifest.pop("files", None)
        manifest.pop("onnx", None)
        return manifest
    hyper = json.loads((folder / HYPERPARAMS_JSON).read_text(encoding="utf-8"))
    nms = info.nms
    return model_metadata(
        name=info.name,
        version="0.0.0",
        network=hyper.get("base_network"),
        image_shape=info.image_size,
        num_classes=info.num_classes,
        num_anchors=num_anchors,
        class_names=None,
        nms={"threshold": nms.threshold, "topk": nms.topk, "force_suppress": nms.force_suppress,
             "variances": list(nms.variances), "score_threshold": nms.score_threshold, "clip": nms.clip},
        source={"artifact": str(folder), "sha256": None, "hyperparameters": hyper},
    )  # fmt: skip
