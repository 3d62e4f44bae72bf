"""Real (untrained) SSD deploy models for edge_runtime tests, written as ``cloud-training convert`` lays them out.

The graph comes from ``cloud_training.ssd.get_symbol`` (tests may import cloud_training; edge_runtime may not) and
the weights from Xavier initialisation with a fixed seed, so every run builds the same model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mxnet as mx

SYMBOL = "deploy_model_algo_1-symbol.json"
PARAMS = "deploy_model_algo_1-0000.params"


def build_deploy_model(
    folder: Path,
    num_classes: int = 2,
    image_size: int = 128,
    class_names: list[str] | None = None,
    seed: int = 7,
    onnx: bool = False,
) -> Path:
    from cloud_training.ssd import get_symbol

    folder.mkdir(parents=True, exist_ok=True)
    symbol = get_symbol("tiny-cnn", num_classes=num_classes, data_shape=image_size)
    shape = (1, 3, image_size, image_size)
    arg_shapes, out_shapes, aux_shapes = symbol.infer_shape(data=shape)
    mx.random.seed(seed)
    init = mx.init.Xavier()
    arg_params = {}
    for name, arg_shape in zip(symbol.list_arguments(), arg_shapes):
        if name == "data":
            continue
        array = mx.nd.zeros(arg_shape)
        init(mx.init.InitDesc(name), array)
        arg_params[name] = array
    aux_params = {}
    for name, aux_shape in zip(symbol.list_auxiliary_states(), aux_shapes):
        array = mx.nd.ones(aux_shape) if name.endswith("moving_var") else mx.nd.zeros(aux_shape)
        aux_params[name] = array
    mx.model.save_checkpoint(str(folder / "deploy_model_algo_1"), 0, symbol, arg_params, aux_params)
    names = class_names if class_names is not None else [f"box {index}" for index in range(num_classes)]
    manifest = {
        "format": "ssd-deploy-model/1",
        "name": "test-model",
        "version": "1.2.3",
        "network": "tiny-cnn",
        "input": {"shape": list(shape), "layout": "NCHW", "color": "RGB", "mean": [123.68, 116.779, 103.939]},
        "num_classes": num_classes,
        "class_names": names,
        "nms": {"threshold": 0.45, "topk": 400, "force_suppress": False, "variances": [0.1, 0.1, 0.2, 0.2]},
        "output": {"name": "detection", "shape": list(out_shapes[0])},
        "source": {"artifact": "test", "sha256": "0" * 64, "hyperparameters": {"num_classes": str(num_classes)}},
        "files": {name: _digest(folder / name) for name in (SYMBOL, PARAMS)},
        "created_by": "tests",
        "created_at": "2026-11-21T14:00:00.000Z",
    }
    (folder / "model.json").write_text(json.dumps(manifest, indent=2))
    if onnx:
        add_onnx(folder)
    return folder


def add_onnx(folder: Path) -> Path:
    """``model.onnx`` added as ``cloud-training export`` adds it (the product's exporter, checked against MXNet)."""
    from cloud_training.cli import main

    assert main(["export", str(folder), "--force"]) == 0
    return folder


def _digest(path: Path) -> dict[str, object]:
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "size": path.stat().st_size}


def write_plain_pair(folder: Path, model: Path, num_classes: int, image_size: int) -> Path:
    """The AWS-sample layout (symbol + params + hyperparams.json, string values) from a built deploy model."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (SYMBOL, PARAMS):
        (folder / name).write_bytes((model / name).read_bytes())
    hyper = {"num_classes": str(num_classes), "image_shape": str(image_size), "base_network": "tiny-cnn"}
    (folder / "hyperparams.json").write_text(json.dumps(hyper))
    return folder
