"""Turn an SSD training graph into the deploy graph by surgery, knowing nothing of its base network.

The training graph of mxnet-ssd / SageMaker always contains three named nodes: ``multibox_cls_pred`` (class scores,
(batch, classes+1, anchors)), ``multibox_loc_pred`` (box offsets) and ``multibox_anchors``. We keep everything that
feeds them, drop the loss layers (MultiBoxTarget, SoftmaxOutput, smooth L1, MakeLoss), and add the deploy head:
a channel softmax and MultiBoxDetection (decode + NMS). The result is the graph mxnet-ssd's deploy.py would write,
without its ``--network --num-class --data-shape`` flags, which are read from the artifact instead.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Optional

import mxnet as mx

from cloud_training.artifact import PARAMS_FILE, SYMBOL_FILE, TrainingArtifact
from cloud_training.errors import ArtifactError, GraphError
from cloud_training.ssd.heads import VARIANCES, detection_head
from edge_runtime.detectors.mxnet_io import mxnet_reason, native_stderr_to_log, split_checkpoint
from edge_runtime.model_format import DEFAULT_NMS_THRESHOLD, DEFAULT_NMS_TOPK

log = logging.getLogger(__name__)

MULTIBOX_NODES = ("multibox_cls_pred", "multibox_loc_pred", "multibox_anchors")
DEFAULT_IMAGE_SHAPE = 300  # the algorithm's default image_shape

Symbol = Any  # an mx.sym.Symbol; mxnet ships no type information
Params = dict[str, mx.nd.NDArray]


@dataclass(frozen=True)
class NmsSettings:
    threshold: float
    topk: int
    force_suppress: bool
    variances: tuple[float, ...] = VARIANCES


@dataclass(frozen=True)
class GraphShape:
    """What shape inference tells about an SSD graph at a given input size."""

    num_classes: int  # without background
    num_anchors: int


@dataclass
class DeployModel:
    symbol: Symbol
    arg_params: Params
    aux_params: Params
    image_shape: int
    shape: GraphShape
    nms: NmsSettings


def load_symbol(symbol_json: str, where: str) -> Symbol:
    try:
        json.loads(symbol_json)
    except json.JSONDecodeError as error:
        raise GraphError(f"{where}: not valid JSON ({error})") from None
    try:
        with native_stderr_to_log(log):
            return mx.sym.load_json(symbol_json)
    except mx.base.MXNetError as error:
        raise GraphError(f"{where}: not an MXNet symbol graph ({mxnet_reason(error)})") from None


def multibox_outputs(symbol: Symbol, where: str) -> tuple[Symbol, Symbol, Symbol]:
    """The graph's (cls_pred, loc_pred, anchors) nodes; a graph without them is not an SSD graph."""
    internals = symbol.get_internals()
    outputs = set(internals.list_outputs())
    missing = [name for name in MULTIBOX_NODES if f"{name}_output" not in outputs]
    if missing:
        raise GraphError(
            f"{where}: the graph has no {', '.join(missing)} node(s): not an SSD graph of mxnet-ssd or the"
            " SageMaker object detection algorithm"
        )
    cls_pred, loc_pred, anchors = (internals[f"{name}_output"] for name in MULTIBOX_NODES)
    return cls_pred, loc_pred, anchors


def infer_shapes(symbol: Symbol, image_shape: int, where: str) -> tuple[list[Any], list[Any], list[Any]]:
    """MXNet shape inference for one square RGB image; a graph that cannot take that size is one clear error."""
    try:
        with native_stderr_to_log(log):
            arg_shapes, out_shapes, aux_shapes = symbol.infer_shape(data=(1, 3, image_shape, image_shape))
    except mx.base.MXNetError as error:
        raise GraphError(
            f"{where}: the graph cannot run at image_shape {image_shape} ({mxnet_reason(error)})"
        ) from None
    return arg_shapes, out_shapes, aux_shapes


def graph_shape(symbol: Symbol, image_shape: int, where: str) -> GraphShape:
    """Infer the class count and anchor count of an SSD graph at ``image_shape`` x ``image_shape``."""
    cls_pred, _, _ = multibox_outputs(symbol, where)
    _, out_shapes, _ = infer_shapes(cls_pred, image_shape, where)
    if not out_shapes or out_shapes[0] is None or len(out_shapes[0]) != 3:
        raise GraphError(f"{where}: cannot infer the shape of multibox_cls_pred at image_shape {image_shape}")
    _, scores, anchors = out_shapes[0]
    return GraphShape(num_classes=scores - 1, num_anchors=anchors)


def detection_attributes(symbol_json: str) -> dict[str, str]:
    """The attributes of the graph's MultiBoxDetection node (empty if it has none), read from the JSON."""
    for node in json.loads(symbol_json).get("nodes", []):
        if node.get("op") == "_contrib_MultiBoxDetection":
            attrs = node.get("attrs") or node.get("attr") or node.get("param") or {}
            return {str(key): str(value) for key, value in attrs.items()}
    return {}


def to_deploy_symbol(train_symbol: Symbol, nms: NmsSettings, where: str) -> Symbol:
    cls_pred, loc_pred, anchors = multibox_outputs(train_symbol, where)
    return detection_head(cls_pred, loc_pred, anchors, nms.threshold, nms.force_suppress, nms.topk, nms.variances)


def load_params(raw: bytes, where: str) -> tuple[Params, Params]:
    """Split an MXNet checkpoint's ``arg:``/``aux:`` arrays; a truncated or foreign file is one clear error."""
    if not raw:
        raise ArtifactError(f"{where}: the file is empty")
    try:
        with native_stderr_to_log(log):
            loaded = mx.nd.load_frombuffer(raw)
    except mx.base.MXNetError as error:
        raise ArtifactError(f"{where}: truncated or not an MXNet params file ({mxnet_reason(error)})") from None
    if not isinstance(loaded, dict):
        raise ArtifactError(f"{where}: holds an unnamed array list, not a checkpoint's named parameters")
    arg_params, aux_params, foreign = split_checkpoint(loaded)
    if foreign:
        raise ArtifactError(f"{where}: parameter {foreign[0]!r} is neither 'arg:' nor 'aux:': not a checkpoint file")
    return arg_params, aux_params


def select_params(
    symbol: Symbol, arg_params: Params, aux_params: Params, image_shape: int, where: str
) -> tuple[Params, Params]:
    """Keep exactly the parameters ``symbol`` uses, after checking each exists with the shape the graph needs."""
    arg_shapes, _, aux_shapes = infer_shapes(symbol, image_shape, where)
    wanted_args = dict(zip(symbol.list_arguments(), arg_shapes))
    wanted_args.pop("data")
    wanted_aux = dict(zip(symbol.list_auxiliary_states(), aux_shapes))
    return _pick(wanted_args, arg_params, where), _pick(wanted_aux, aux_params, where)


def _pick(wanted: dict[str, tuple[int, ...]], available: Params, where: str) -> Params:
    missing = [name for name in wanted if name not in available]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ArtifactError(f"{where}: no weights for {', '.join(missing[:3])}{more} that the graph needs")
    for name, shape in wanted.items():
        got = tuple(available[name].shape)
        if got != tuple(shape):
            raise ArtifactError(f"{where}: {name} has shape {got} but the graph needs {tuple(shape)}")
    return {name: available[name] for name in wanted}


def int_hyperparameter(hyperparameters: dict[str, str], key: str, default: int, where: str) -> int:
    """An integer hyperparameter; SageMaker writes every value as a string, sometimes as "512.0"."""
    raw = hyperparameters.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value.is_integer():
        raise ArtifactError(f"{where}: {key} must be an integer (got {raw!r})")
    return int(value)


def float_hyperparameter(hyperparameters: dict[str, str], key: str, default: float, where: str) -> float:
    raw = hyperparameters.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ArtifactError(f"{where}: {key} must be a number (got {raw!r})") from None


def check_num_classes(hyperparameters: dict[str, str], shape: GraphShape, where: str) -> None:
    """hyperparams.json's num_classes must be what the graph's class head predicts; name both numbers if not."""
    declared = int_hyperparameter(hyperparameters, "num_classes", shape.num_classes, where)
    if declared != shape.num_classes:
        raise ArtifactError(
            f"{where}: num_classes is {declared} but the graph's class head predicts {shape.num_classes}"
            f" class(es) (+ background): the files do not belong together"
        )


def convert(
    artifact: TrainingArtifact,
    nms_threshold: Optional[float] = None,
    nms_topk: Optional[int] = None,
    force_suppress: Optional[bool] = None,
) -> DeployModel:
    """The deploy model of ``artifact``. NMS settings default to hyperparams.json, then to the training graph."""
    hyper_where = f"{artifact.source}: hyperparams.json"
    hyper = artifact.hyperparameters
    image_shape = int_hyperparameter(hyper, "image_shape", DEFAULT_IMAGE_SHAPE, hyper_where)
    train_symbol = load_symbol(artifact.symbol_json, f"{artifact.source}: {SYMBOL_FILE}")
    trained_detection = detection_attributes(artifact.symbol_json)
    nms = NmsSettings(
        threshold=nms_threshold
        if nms_threshold is not None
        else float_hyperparameter(hyper, "nms_threshold", DEFAULT_NMS_THRESHOLD, hyper_where),
        topk=nms_topk if nms_topk is not None else int_hyperparameter(hyper, "nms_topk", DEFAULT_NMS_TOPK, hyper_where),
        force_suppress=force_suppress
        if force_suppress is not None
        else trained_detection.get("force_suppress", "True").lower() in ("true", "1"),
        variances=_parse_variances(trained_detection.get("variances")),
    )
    deploy_symbol = to_deploy_symbol(train_symbol, nms, f"{artifact.source}: {SYMBOL_FILE}")
    shape = graph_shape(deploy_symbol, image_shape, f"{artifact.source}: {SYMBOL_FILE}")
    check_num_classes(hyper, shape, hyper_where)
    arg_params, aux_params = load_params(artifact.params, f"{artifact.source}: {PARAMS_FILE}")
    arg_params, aux_params = select_params(
        deploy_symbol, arg_params, aux_params, image_shape, f"{artifact.source}: {PARAMS_FILE}"
    )
    return DeployModel(deploy_symbol, arg_params, aux_params, image_shape, shape, nms)


def _parse_variances(raw: Optional[str]) -> tuple[float, ...]:
    if not raw:
        return VARIANCES
    try:
        values = tuple(float(part) for part in raw.strip("()[] ").split(",") if part.strip())
    except ValueError:
        return VARIANCES
    return values if len(values) == 4 else VARIANCES
