"""Read a model folder into a :class:`ModelInfo`: a deploy folder (``model.json``) or the plain AWS-sample pair.

:class:`ModelInfo` is backend-neutral: what any detector needs (input, classes, the MultiBoxDetection settings)
and which files the folder has, so the registry can tell which backends can run it. Everything that can be
checked without a runtime is checked here first, so a device reports a bad deployment in one line before
spending seconds on loading: the manifest's format, that each listed file exists with its size and SHA-256
digest, and for the plain pair (when MXNet is installed to read its graph) that the graph's class head agrees
with ``hyperparams.json`` (the AWS sample ships a graph with 2 classes beside hyperparameters saying 4; loading
it silently would label boxes wrong). The names and numbers come from :mod:`edge_runtime.model_format`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from edge_runtime.errors import ModelError
from edge_runtime.model_format import (
    CLASS_HEAD,
    DEFAULT_DETECTION_THRESHOLD,
    DEFAULT_NMS_THRESHOLD,
    DEFAULT_NMS_TOPK,
    DEFAULT_VARIANCES,
    HYPERPARAMS_JSON,
    MEAN_RGB,
    MODEL_FORMAT,
    MODEL_JSON,
    MXNET_FILES,
    ONNX_FILE,
    ONNX_INT8_FILE,
    PARAMS_FILE,
    SYMBOL_FILE,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NmsSettings:
    """MultiBoxDetection's parameters: what the MXNet graph has as attributes and the numpy version takes."""

    threshold: float = DEFAULT_NMS_THRESHOLD  # IoU at or above which a box is suppressed
    topk: int = DEFAULT_NMS_TOPK  # best boxes kept before NMS; -1 for all
    force_suppress: bool = False  # across classes too
    variances: tuple[float, float, float, float] = DEFAULT_VARIANCES
    score_threshold: float = DEFAULT_DETECTION_THRESHOLD  # below it an anchor is background
    clip: bool = True  # boxes clipped to the image


@dataclass(frozen=True)
class ModelInfo:
    """What any detector needs to know about a model, whichever layout it came from and whichever backend runs it."""

    folder: Path
    name: str
    version: str
    image_size: int
    mean: tuple[float, float, float]
    num_classes: int
    class_names: tuple[str, ...] | None
    layout: str  # "deploy-folder" or "plain-pair"
    nms: NmsSettings = field(default_factory=NmsSettings)
    files: Mapping[str, Path] = field(default_factory=dict)  # the model files present (and checked), by name
    # model.json's evaluation.recommended_thresholds (class name -> score), written by `cloud-training evaluate
    # --record`: the per-class thresholds a detector uses when its configuration sets no class_thresholds
    recommended_thresholds: Mapping[str, float] = field(default_factory=dict)

    def path_of(self, name: str) -> Optional[Path]:
        return self.files.get(name)

    @property
    def has_mxnet(self) -> bool:
        return all(name in self.files for name in MXNET_FILES)

    @property
    def symbol_path(self) -> Path:
        return self.files.get(SYMBOL_FILE, self.folder / SYMBOL_FILE)

    @property
    def params_path(self) -> Path:
        return self.files.get(PARAMS_FILE, self.folder / PARAMS_FILE)

    @property
    def onnx_path(self) -> Optional[Path]:
        return self.files.get(ONNX_FILE)

    @property
    def onnx_int8_path(self) -> Optional[Path]:
        return self.files.get(ONNX_INT8_FILE)

    def label(self, class_id: int) -> str:
        """The class name of ``class_id``, or ``class_<id>`` when the model has no names for it."""
        if self.class_names is not None and 0 <= class_id < len(self.class_names):
            return self.class_names[class_id]
        return f"class_{class_id}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_model_info(folder: str | Path, verify_digests: bool = True) -> ModelInfo:
    """Inspect ``folder`` and return its :class:`ModelInfo`, or raise a one-line :class:`ModelError`."""
    path = Path(folder)
    if not path.is_dir():
        raise ModelError(f"{path}: model folder not found")
    if (path / MODEL_JSON).is_file():
        return _read_deploy_folder(path, verify_digests)
    if (path / HYPERPARAMS_JSON).is_file():
        return _read_plain_pair(path)
    raise ModelError(f"{path}: not a model folder (neither {MODEL_JSON} nor {HYPERPARAMS_JSON} is there)")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: cannot read ({error})") from None
    except json.JSONDecodeError as error:
        raise ModelError(f"{path}: not valid JSON at line {error.lineno} ({error.msg})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data


def _read_deploy_folder(folder: Path, verify_digests: bool) -> ModelInfo:
    manifest_path = folder / MODEL_JSON
    manifest = _load_json(manifest_path)
    if manifest.get("format") != MODEL_FORMAT:
        raise ModelError(f"{manifest_path}: format must be {MODEL_FORMAT!r} (got {manifest.get('format')!r})")
    files = manifest.get("files")
    if not isinstance(files, dict) or not (set(MXNET_FILES) <= set(files) or ONNX_FILE in files):
        raise ModelError(
            f"{manifest_path}: files must list {ONNX_FILE}, or {SYMBOL_FILE} and {PARAMS_FILE}, with their sha256"
        )
    for name, entry in files.items():
        _check_file(folder, name, entry, verify_digests)
    try:
        shape = manifest["input"]["shape"]
        image_size = int(shape[2])
        if len(shape) != 4 or int(shape[1]) != 3 or int(shape[3]) != image_size:
            raise ValueError(f"input.shape must be [1, 3, S, S] (got {shape})")
        mean_list = [float(value) for value in manifest["input"].get("mean", MEAN_RGB)]
        if len(mean_list) != 3:
            raise ValueError(f"input.mean must have 3 values (got {mean_list})")
        num_classes = int(manifest["num_classes"])
        names = manifest.get("class_names")
        if names is not None and (not isinstance(names, list) or len(names) != num_classes):
            raise ValueError(f"class_names must be null or {num_classes} names (got {names})")
        return ModelInfo(
            folder=folder,
            name=str(manifest.get("name") or folder.name),
            version=str(manifest.get("version") or "0"),
            image_size=image_size,
            mean=(mean_list[0], mean_list[1], mean_list[2]),
            num_classes=num_classes,
            class_names=tuple(str(name) for name in names) if names is not None else None,
            layout="deploy-folder",
            nms=_nms_settings(manifest.get("nms") or {}),
            files={str(name): folder / str(name) for name in files},
            recommended_thresholds=_recommended_thresholds(manifest, names),
        )
    except (KeyError, TypeError, ValueError, IndexError) as error:
        problem = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise ModelError(f"{manifest_path}: {problem}") from None


def _recommended_thresholds(manifest: Mapping[str, Any], names: Optional[list[Any]]) -> dict[str, float]:
    """``evaluation.recommended_thresholds``: each a class name (or id) of this model and a score in [0, 1]."""
    evaluation = manifest.get("evaluation")
    found = evaluation.get("recommended_thresholds") if isinstance(evaluation, Mapping) else None
    if found is None:
        return {}
    if not isinstance(found, Mapping):
        raise ValueError(f"evaluation.recommended_thresholds must be an object (got {found!r})")
    known = {str(name) for name in names or []} | {str(index) for index in range(int(manifest["num_classes"]))}
    result: dict[str, float] = {}
    for key, value in found.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if str(key) not in known or not number or not 0 <= value <= 1:
            raise ValueError(f"evaluation.recommended_thresholds.{key}: a class of the model and a score in [0, 1]"
                             f" (got {value!r})")
        result[str(key)] = float(value)
    return result


def _check_file(folder: Path, name: str, entry: Any, verify_digests: bool) -> None:
    file = folder / name
    if not file.is_file():
        raise ModelError(f"{file}: model file missing (listed in {MODEL_JSON})")
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise ModelError(f"{folder / MODEL_JSON}: files.{name}: a file name, not a path")
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise ModelError(f"{folder / MODEL_JSON}: files.{name} needs a sha256")
    size = file.stat().st_size
    if "size" in entry and entry["size"] != size:
        raise ModelError(f"{file}: size {size} bytes does not match {MODEL_JSON} ({entry['size']} bytes)")
    if verify_digests:
        actual = sha256_of(file)
        if actual != entry["sha256"].lower():
            raise ModelError(
                f"{file}: SHA-256 digest mismatch: the file's SHA-256 is {actual[:12]}… but model.json says"
                f" {entry['sha256'][:12]}…"
            )


def _read_plain_pair(folder: Path) -> ModelInfo:
    hyper_path = folder / HYPERPARAMS_JSON
    hyper = _load_json(hyper_path)
    try:
        num_classes = int(hyper["num_classes"])
        image_size = int(hyper["image_shape"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{hyper_path}: needs integer num_classes and image_shape ({error})") from None
    symbol_path = folder / SYMBOL_FILE
    if not symbol_path.is_file():
        raise ModelError(f"{symbol_path}: model file missing")
    if importlib.util.find_spec("mxnet") is not None:  # only MXNet can run (or read the shapes of) this graph
        graph_classes = graph_class_count(symbol_path, image_size)
        if graph_classes != num_classes:
            raise ModelError(
                f"{folder}: the graph has {graph_classes} classes but {HYPERPARAMS_JSON} says num_classes {num_classes}"
            )
    params_path = folder / PARAMS_FILE
    if not params_path.is_file():
        raise ModelError(f"{params_path}: model file missing")
    return ModelInfo(
        folder=folder,
        name=folder.name,
        version="0",
        image_size=image_size,
        mean=MEAN_RGB,
        num_classes=num_classes,
        class_names=None,
        layout="plain-pair",
        nms=_plain_pair_nms(symbol_path),
        files={SYMBOL_FILE: symbol_path, PARAMS_FILE: params_path},
    )


def detection_attributes(symbol_path: Path) -> dict[str, Any]:
    """The MultiBoxDetection node's settings in a graph file, read as JSON (no MXNet needed), as model.json's nms."""
    try:
        graph = json.loads(symbol_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{symbol_path}: cannot read the graph ({error})") from None
    for node in graph.get("nodes", []) if isinstance(graph, dict) else []:
        if node.get("op") == "_contrib_MultiBoxDetection":
            attrs = node.get("attrs") or node.get("attr") or node.get("param") or {}
            return parse_detection_attributes(attrs)
    return {}


def parse_detection_attributes(attrs: Mapping[str, str]) -> dict[str, Any]:
    """MXNet's string attributes of MultiBoxDetection (``"True"``, ``"(0.1, 0.1, 0.2, 0.2)"``) as model.json's nms."""

    def flag(text: str) -> bool:
        return text.strip().lower() in ("true", "1")

    parsed: dict[str, Any] = {}
    try:
        if "nms_threshold" in attrs:
            parsed["threshold"] = float(attrs["nms_threshold"])
        if "nms_topk" in attrs:
            parsed["topk"] = int(float(attrs["nms_topk"]))
        if "force_suppress" in attrs:
            parsed["force_suppress"] = flag(attrs["force_suppress"])
        if "variances" in attrs:
            parsed["variances"] = [float(part) for part in attrs["variances"].strip("()[] ").split(",") if part.strip()]
        if "threshold" in attrs:
            parsed["score_threshold"] = float(attrs["threshold"])
        if "clip" in attrs:
            parsed["clip"] = flag(attrs["clip"])
    except ValueError as error:
        raise ModelError(f"MultiBoxDetection attributes {dict(attrs)}: {error}") from None
    return parsed


def _plain_pair_nms(symbol_path: Path) -> NmsSettings:
    try:
        return _nms_settings(detection_attributes(symbol_path))
    except ValueError as error:
        raise ModelError(f"{symbol_path}: MultiBoxDetection: {error}") from None


def _nms_settings(nms: Mapping[str, Any]) -> NmsSettings:
    """model.json's ``nms`` object; absent keys take MultiBoxDetection's defaults (older folders omit some)."""
    if not isinstance(nms, Mapping):
        raise ValueError(f"nms must be an object (got {nms!r})")
    variances = tuple(float(value) for value in nms.get("variances", DEFAULT_VARIANCES))
    if len(variances) != 4:
        raise ValueError(f"nms.variances must have 4 values (got {list(variances)})")
    return NmsSettings(
        threshold=float(nms.get("threshold", DEFAULT_NMS_THRESHOLD)),
        topk=int(nms.get("topk", DEFAULT_NMS_TOPK)),
        # MXNet's operator default; the converter writes the graph's own value, which the SageMaker graphs set True
        force_suppress=bool(nms.get("force_suppress", False)),
        variances=(variances[0], variances[1], variances[2], variances[3]),
        score_threshold=float(nms.get("score_threshold", DEFAULT_DETECTION_THRESHOLD)),
        clip=bool(nms.get("clip", True)),
    )


def graph_class_count(symbol_path: Path, image_size: int) -> int:
    """The classes of a deploy graph: dim 1 of the class head for a (1, 3, S, S) input, minus the background."""
    from edge_runtime.detectors.mxnet_io import load_symbol

    symbol = load_symbol(symbol_path)
    internals = symbol.get_internals()
    if CLASS_HEAD not in internals.list_outputs():
        raise ModelError(f"{symbol_path}: not an SSD deploy graph (no {CLASS_HEAD})")
    try:
        _, out_shapes, _ = internals[CLASS_HEAD].infer_shape(data=(1, 3, image_size, image_size))
    except Exception as error:  # MXNetError: shapes do not fit this input size
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"{symbol_path}: cannot infer shapes for a {image_size}px input ({first})") from None
    return int(out_shapes[0][1]) - 1
