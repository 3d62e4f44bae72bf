"""The deploy model folder contract, in one place: file names, the input convention, the ONNX tensors, the format id.

Everything that writes or reads a deploy folder takes its names and numbers from here: the converter and exporter
(``cloud_training``), publishing and the component build, and the device (``edge_runtime.model``). It imports nothing
but the standard library, so the device can use it without MXNet or ONNX.

A deploy folder holds::

    model.json                            this contract's manifest (format ``ssd-deploy-model/1``), digests of each file
    deploy_model_algo_1-symbol.json       MXNet deploy graph (softmax + MultiBoxDetection): the cloud side's reference
    deploy_model_algo_1-0000.params       its weights
    model.onnx                            the same network for ONNX Runtime, cut before MultiBoxDetection (see below)
    model.int8.onnx                       optional: statically quantised copy of model.onnx (never used by default)
    samples.npz                           sample frames and model.onnx's fp32 detections: the engines' accuracy gate

The ONNX graph has one input, ``data`` (1, 3, S, S), and the three tensors the MXNet graph feeds MultiBoxDetection:
``cls_prob`` (1, classes + 1, anchors) after the channel softmax, ``loc_pred`` (1, anchors * 4) and ``anchors``
(1, anchors, 4), a constant. The detection step itself runs in numpy (``edge_runtime.detectors.multibox``).
"""

from __future__ import annotations

import json
from pathlib import Path

MODEL_FORMAT = "ssd-deploy-model/1"
MODEL_JSON = "model.json"
HYPERPARAMS_JSON = "hyperparams.json"  # the plain pair's (and SageMaker's) hyperparameters

DEPLOY_PREFIX = "deploy_model_algo_1"
SYMBOL_FILE = f"{DEPLOY_PREFIX}-symbol.json"
PARAMS_FILE = f"{DEPLOY_PREFIX}-0000.params"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
# Sample frames (prepared input batches) and model.onnx's fp32 detections on them: the accuracy gate of
# ``model.backend auto`` (edge_runtime.detectors.choice); written by convert and export.
SAMPLES_FILE = "samples.npz"
SAMPLES_FLOOR = 0.3  # the lowest score the gate compares

# A deploy folder runs on MXNet when it has both MXNet files, on ONNX Runtime when it has model.onnx; model.json's
# ``files`` lists what it has, and a folder needs at least one complete set.
MXNET_FILES = (SYMBOL_FILE, PARAMS_FILE)

# The training contract (DESIGN.md): RGB, square resize, minus this mean, NCHW float32.
MEAN_RGB = (123.68, 116.779, 103.939)
OUTPUT_ROW = ("class_id", "score", "xmin", "ymin", "xmax", "ymax")

# MXNet graph node the device reads the class count from in a plain pair (``multibox_cls_pred`` before softmax).
CLASS_HEAD = "multibox_cls_pred_output"

# The ONNX graph's tensors.
ONNX_INPUT = "data"
ONNX_OUTPUTS = ("cls_prob", "loc_pred", "anchors")
ONNX_OPSET = 13  # Softmax over one axis (opset 13) and what ONNX Runtime back to 1.10 runs; Jetson images lag

# MultiBoxDetection's defaults (MXNet's operator), used where a graph or model.json does not say.
DEFAULT_DETECTION_THRESHOLD = 0.01
DEFAULT_NMS_THRESHOLD = 0.45
DEFAULT_NMS_TOPK = 400
DEFAULT_VARIANCES = (0.1, 0.1, 0.2, 0.2)


def device_files(folder: Path) -> dict[str, bytes]:
    """What the model component ships of a deploy folder, by name: the files the device runs and ``model.json``.

    With ``model.onnx`` listed, MXNet's graph and weights stay off the device (it runs ONNX Runtime; they are half
    the demo's bytes and ~110 MB of a resnet-50/512 model): they are left out, and so is their entry in the shipped
    ``model.json`` (which the device checks every listed file against). A folder without ``model.onnx`` ships
    whole, its ``model.json`` as it is. ``components/build.py`` and ``cloud-training publish`` both zip this, so
    both give the same bytes and digest."""
    raw = (folder / MODEL_JSON).read_bytes()
    manifest = json.loads(raw)
    listed: dict[str, object] = manifest.get("files", {})
    if ONNX_FILE in listed and any(name in listed for name in MXNET_FILES):
        manifest["files"] = {name: entry for name, entry in listed.items() if name not in MXNET_FILES}
        raw = (json.dumps(manifest, indent=2) + "\n").encode()
    shipped = {name: (folder / name).read_bytes() for name in sorted(manifest.get("files", {}))}
    shipped[MODEL_JSON] = raw
    return shipped


def shipped_files(manifest_files: dict[str, object]) -> tuple[str, ...]:
    """The files a deploy folder ships (what a model component zips): those model.json lists, then model.json."""
    return (*sorted(manifest_files), MODEL_JSON)
