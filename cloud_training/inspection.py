"""Look inside a model without changing it: a training artifact, a deploy model folder, or the plain deploy pair.

Every check conversion makes is made here too (graph is SSD, class counts agree, weights fit the graph), plus the
SHA-256 digests a deploy folder's model.json lists, so a bad model is caught on the workstation, not on the device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from cloud_training.artifact import (
    DEPLOY_SYMBOL_FILE,
    HYPERPARAMS_FILE,
    SYMBOL_FILE,
    parse_hyperparameters,
    read_artifact,
)
from cloud_training.conversion import (
    DEFAULT_IMAGE_SHAPE,
    check_num_classes,
    convert,
    detection_attributes,
    graph_shape,
    int_hyperparameter,
    load_params,
    load_symbol,
    select_params,
)
from cloud_training.deploy_folder import DEPLOY_PARAMS_FILE, MODEL_JSON
from cloud_training.errors import ArtifactError
from edge_runtime.errors import ModelError
from edge_runtime.model import ModelInfo, read_model_info


@dataclass
class Inspection:
    path: str
    kind: str
    network: Optional[str]
    image_shape: int
    num_classes: int
    num_anchors: int
    class_names: Optional[list[str]]
    nms: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)  # file name -> what was checked
    onnx: Optional[dict[str, Any]] = None  # model.json's onnx entry: opset, outputs, post-process, check, int8
    backends: list[str] = field(default_factory=list)  # what can run it: onnxruntime (model.onnx), mxnet
    lineage: Optional[dict[str, Any]] = None  # model.json's lineage: data, hyperparameters, job, best epoch
    evaluation: Optional[dict[str, Any]] = None  # model.json's evaluation (evaluate --record)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def inspect_model(path: Path) -> Inspection:
    if path.is_dir() and (path / DEPLOY_SYMBOL_FILE).exists():
        return _inspect_deploy_folder(path)
    return _inspect_training_artifact(path)


def _inspect_training_artifact(path: Path) -> Inspection:
    from cloud_training.lineage import lineage_for
    from edge_runtime.model import sha256_of

    artifact = read_artifact(path)
    model = convert(artifact)
    lineage = lineage_for(path, sha256_of(path)) if path.is_file() else None  # the run's lineage.json beside it
    return Inspection(
        lineage=lineage,
        path=str(path),
        kind="training artifact",
        network=artifact.hyperparameters.get("base_network"),
        image_shape=model.image_shape,
        num_classes=model.shape.num_classes,
        num_anchors=model.shape.num_anchors,
        class_names=None,
        nms={key: str(value) for key, value in detection_attributes(artifact.symbol_json).items()},
        files={name: "read and checked" for name in (SYMBOL_FILE, "model_algo_1-0000.params", HYPERPARAMS_FILE)},
    )


def _inspect_deploy_folder(path: Path) -> Inspection:
    files: dict[str, str] = {}
    symbol_json = (path / DEPLOY_SYMBOL_FILE).read_text(encoding="utf-8", errors="replace")
    symbol_where = f"{path / DEPLOY_SYMBOL_FILE}"
    class_names: Optional[list[str]] = None
    network: Optional[str] = None
    if (path / MODEL_JSON).exists():
        kind = "deploy model folder"
        info = _device_view(path)
        manifest = json.loads((path / MODEL_JSON).read_text(encoding="utf-8"))  # valid: the device view read it
        files.update({name: "SHA-256 verified" for name in manifest["files"]})
        files[MODEL_JSON] = "read"
        image_shape, declared = info.image_size, {"num_classes": str(info.num_classes)}
        class_names = list(info.class_names) if info.class_names is not None else None
        network = manifest.get("network")
        declared_where = str(path / MODEL_JSON)
    elif (path / HYPERPARAMS_FILE).exists():
        kind = "deploy graph + hyperparams.json"
        declared_where = str(path / HYPERPARAMS_FILE)
        declared = parse_hyperparameters((path / HYPERPARAMS_FILE).read_bytes(), declared_where)
        image_shape = int_hyperparameter(declared, "image_shape", DEFAULT_IMAGE_SHAPE, declared_where)
        network = declared.get("base_network")
        files[HYPERPARAMS_FILE] = "read"
    else:
        raise ArtifactError(f"{path}: has {DEPLOY_SYMBOL_FILE} but neither {MODEL_JSON} nor {HYPERPARAMS_FILE}")
    symbol = load_symbol(symbol_json, symbol_where)  # after the digests: a changed file is named as changed
    shape = graph_shape(symbol, image_shape, symbol_where)
    check_num_classes(declared, shape, declared_where)
    files.setdefault(DEPLOY_SYMBOL_FILE, "read")
    params_path = path / DEPLOY_PARAMS_FILE
    if params_path.exists():
        arg_params, aux_params = load_params(params_path.read_bytes(), str(params_path))
        select_params(symbol, arg_params, aux_params, image_shape, str(params_path))
        verified = files.get(DEPLOY_PARAMS_FILE)
        files[DEPLOY_PARAMS_FILE] = f"{verified}, weights fit the graph" if verified else "weights fit the graph"
    else:
        files[DEPLOY_PARAMS_FILE] = "absent: only the graph was checked"
    found = Inspection(
        path=str(path), kind=kind, network=network, image_shape=image_shape, num_classes=shape.num_classes,
        num_anchors=shape.num_anchors, class_names=class_names, nms=detection_attributes(symbol_json), files=files,
    )
    found.backends = ["mxnet"] if params_path.exists() else []
    if (path / MODEL_JSON).exists():
        _inspect_onnx(path, found, manifest)
        found.lineage = manifest.get("lineage")
        found.evaluation = manifest.get("evaluation")
    return found


def _inspect_onnx(path: Path, found: Inspection, manifest: dict[str, Any]) -> None:
    """Load each ONNX file with ONNX Runtime exactly as the device's backend does (inputs, outputs, class count)."""
    from edge_runtime.config import ModelConfig
    from edge_runtime.detectors import create_detector
    from edge_runtime.model_format import ONNX_FILE, ONNX_INT8_FILE

    found.onnx = manifest.get("onnx")
    checks: tuple[tuple[str, Literal["fp32", "int8"]], ...] = ((ONNX_FILE, "fp32"), (ONNX_INT8_FILE, "int8"))
    for name, precision in checks:
        if name not in manifest["files"]:
            continue
        try:
            create_detector(ModelConfig(path=str(path), backend="onnxruntime", precision=precision, warmup_runs=0))
        except ModelError as error:
            raise ArtifactError(str(error)) from None
        found.files[name] = f"{found.files.get(name, 'read')}, runs on ONNX Runtime with {found.num_anchors} anchors"
        found.backends.insert(0, f"onnxruntime ({name})")


def _device_view(path: Path) -> ModelInfo:
    """model.json read and every listed file's digest checked exactly as the device will, before it loads anything."""
    try:
        return read_model_info(path, verify_digests=True)
    except ModelError as error:
        raise ArtifactError(str(error)) from None
