"""Real SSD graphs with seeded random weights, and SageMaker-layout artifacts made from them.

Nothing here is mocked: the graphs are the product's own, the weights are initialised as training would, and the
artifact is written exactly as SageMaker lays out model.tar.gz.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

import mxnet as mx
import numpy as np

from cloud_training.ssd import get_symbol_train

Params = dict[str, mx.nd.NDArray]

BASE_HYPERPARAMETERS = {
    "mini_batch_size": "16",
    "learning_rate": "0.001",
    "optimizer": "sgd",
    "momentum": "0.9",
    "weight_decay": "0.0005",
    "epochs": "30",
    "overlap_threshold": "0.5",
    "nms_threshold": "0.45",
    "nms_topk": "400",
    "label_width": "350",
    "use_pretrained_model": "0",
}


def random_params(symbol: mx.sym.Symbol, data_shape: int, seed: int = 0, label_width: int = 0) -> tuple[Params, Params]:
    """Weights for every argument of ``symbol`` (Xavier, as training starts) and plausible BatchNorm statistics."""
    mx.random.seed(seed)
    rng = np.random.default_rng(seed)
    shapes: dict[str, tuple[int, ...]] = {"data": (1, 3, data_shape, data_shape)}
    if "label" in symbol.list_arguments():
        shapes["label"] = (1, max(label_width, 1), 5)
    arg_shapes, _, aux_shapes = symbol.infer_shape(**shapes)
    initializer = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
    arg_params: Params = {}
    for name, shape in zip(symbol.list_arguments(), arg_shapes):
        if name in shapes:
            continue
        array = mx.nd.zeros(shape)
        if name.endswith("_weight"):
            initializer(mx.init.InitDesc(name), array)
        elif name.endswith("_gamma"):
            array[:] = mx.nd.array(rng.uniform(0.5, 1.5, shape))
        elif name.endswith(("_beta", "_bias")):
            array[:] = mx.nd.array(rng.normal(0.0, 0.1, shape))
        elif name.endswith("_scale"):
            array[:] = 20.0
        arg_params[name] = array
    aux_params: Params = {}
    for name, shape in zip(symbol.list_auxiliary_states(), aux_shapes):
        low, high = (0.5, 1.5) if name.endswith("_var") else (-0.1, 0.1)
        aux_params[name] = mx.nd.array(rng.uniform(low, high, shape))
    return arg_params, aux_params


def params_bytes(arg_params: Params, aux_params: Params) -> bytes:
    """The bytes of a ``model_algo_1-0000.params`` file, as ``mx.model.save_checkpoint`` writes it."""
    merged = {f"arg:{k}": v for k, v in arg_params.items()}
    merged.update({f"aux:{k}": v for k, v in aux_params.items()})
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model.params"
        mx.nd.save(str(target), merged)
        return target.read_bytes()


def training_artifact_files(
    network: str = "tiny-cnn",
    num_classes: int = 2,
    data_shape: int = 128,
    seed: int = 0,
    hyperparameters: Optional[dict[str, str]] = None,
) -> dict[str, bytes]:
    """The three files of a training artifact: symbol, params, hyperparams.json (string values, as SageMaker)."""
    symbol = get_symbol_train(network, num_classes, data_shape)
    arg_params, aux_params = random_params(symbol, data_shape, seed)
    hyper = dict(BASE_HYPERPARAMETERS)
    hyper.update(base_network=network, num_classes=str(num_classes), image_shape=str(data_shape))
    hyper.update(hyperparameters or {})
    return {
        "model_algo_1-symbol.json": symbol.tojson().encode(),
        "model_algo_1-0000.params": params_bytes(arg_params, aux_params),
        "hyperparams.json": json.dumps(hyper).encode(),
    }


def write_tarball(path: Path, files: dict[str, bytes], links: Optional[dict[str, str]] = None) -> Path:
    """Write ``files`` as a gzipped tar, the way SageMaker packs model.tar.gz; ``links`` adds symlink members."""
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return path


def write_folder(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    return path


def calibrate_heads(
    symbol: mx.sym.Symbol, arg_params: Params, aux_params: Params, data: mx.nd.NDArray,
    cls_std: float = 1.5, loc_std: float = 0.5,
) -> None:
    """Rescale each prediction conv so its outputs have a realistic spread on ``data`` (in place).

    Random weights through a deep network give logits in the thousands: every score is 1.0 and every box degenerate,
    which would make a comparison of two graphs' detections trivially true. Class logits with std ~1.5 and box offsets
    with std ~0.5 give varied scores and plausible boxes, so NMS has real work to do.
    """
    internals = symbol.get_internals()
    heads = [name[: -len("_output")] for name in internals.list_outputs()
             if name.endswith(("_cls_pred_conv_output", "_loc_pred_conv_output"))]
    group = mx.sym.Group([internals[f"{name}_output"] for name in heads])
    inputs = {name: arg_params[name] for name in group.list_arguments() if name != "data"}
    inputs["data"] = data
    executor = group.bind(mx.cpu(), args=inputs, aux_states={k: aux_params[k] for k in group.list_auxiliary_states()},
                          grad_req="null")
    executor.forward(is_train=False)
    for name, output in zip(heads, executor.outputs):
        target = cls_std if "_cls_pred_" in name else loc_std
        factor = target / max(float(output.asnumpy().std()), 1e-12)
        arg_params[f"{name}_weight"] *= factor
        arg_params[f"{name}_bias"] *= factor
