"""Export an SSD deploy graph to ONNX: the network up to MultiBoxDetection, anchors as a constant.

Why our own translator and not ``mx.onnx.export_model``: MXNet's exporter has no translation for
``MultiBoxPrior``/``MultiBoxDetection``, and its output depends on the installed onnx version. The graphs this
project builds (and the SageMaker algorithm ships) use a dozen operators, each translated here from its MXNet
definition; an operator outside that list is refused by name, never approximated.

The ONNX graph stops at the three tensors MultiBoxDetection takes (:mod:`edge_runtime.model_format`): ``cls_prob``
(the channel softmax), ``loc_pred`` and ``anchors``. The anchors depend only on the input size, so MXNet computes
them once here and the graph carries them as a constant. The detection step is numpy on the device
(:mod:`edge_runtime.detectors.multibox`, which says why not ONNX's NonMaxSuppression).

Every export is checked before it is written: ONNX's checker, then ONNX Runtime and MXNet on the same seeded input,
with the largest difference of each output recorded in model.json and refused above :data:`TOLERANCE`.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from cloud_training.errors import GraphError
from edge_runtime.model_format import ONNX_INPUT, ONNX_OPSET, ONNX_OUTPUTS

log = logging.getLogger(__name__)

DETECTION_OP = "_contrib_MultiBoxDetection"
# Largest difference accepted between ONNX Runtime and MXNet on the check input, relative to the largest magnitude
# of each tensor (at least 1). Measured: float32 rounding through resnet-50 with random weights stays near 3e-6 of
# it; a wrong translation is off by the order of the values themselves. The class scores are compared before the
# softmax: with random weights the logits reach 1e6, where a 3e-6 relative rounding flips probabilities near 0.5.
TOLERANCE = {"class_logits": 1e-4, "loc_pred": 1e-4, "anchors": 1e-6}
CHECK_LOGITS = "check_class_logits"  # an extra output of the copy that is checked, never of the model written

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class OnnxExport:
    model_bytes: bytes
    num_classes: int  # without background
    num_anchors: int
    max_difference: dict[str, float]  # output -> max |onnxruntime - mxnet| on the check input

    def summary(self) -> dict[str, Any]:
        """model.json's ``onnx`` entry."""
        return {
            "opset": ONNX_OPSET,
            "input": ONNX_INPUT,
            "outputs": list(ONNX_OUTPUTS),
            "postprocess": "MultiBoxDetection in numpy (edge_runtime.detectors.multibox)",
            "checked_against_mxnet": {name: float(f"{value:.3g}") for name, value in self.max_difference.items()},
        }


def _attrs(node: Mapping[str, Any]) -> dict[str, str]:
    raw = node.get("attrs") or node.get("attr") or node.get("param") or {}
    return {str(key): str(value) for key, value in raw.items()}


def _ints(text: str | None, default: tuple[int, ...]) -> list[int]:
    if text is None or text in ("", "()", "None"):
        return list(default)
    value = ast.literal_eval(text)
    return [int(item) for item in (value if isinstance(value, (tuple, list)) else (value,))]


def _flag(text: str | None, default: bool) -> bool:
    return default if text is None else text.strip().lower() in ("true", "1")


class _Builder:
    """Translates MXNet nodes one by one into ONNX nodes and initialisers."""

    def __init__(self, nodes: list[dict[str, Any]], arrays: Arrays, where: str) -> None:
        import onnx.helper  # noqa: F401  (fail early, here, if onnx is missing)

        self.nodes_json = nodes
        self.arrays = arrays
        self.where = where
        self.onnx_nodes: list[Any] = []
        self.initializers: dict[str, Any] = {}
        self.translated: dict[int, None] = {}

    # ---- names ------------------------------------------------------------------------------------------
    def tensor(self, entry: list[int]) -> str:
        """The ONNX tensor name of an MXNet node output (node id, output index)."""
        node_id, index = int(entry[0]), int(entry[1])
        node = self.nodes_json[node_id]
        if node["op"] == "null":
            name = str(node["name"])
            if name == ONNX_INPUT:
                return name
            if name not in self.initializers:
                if name not in self.arrays:
                    raise GraphError(f"{self.where}: no weights for {name}, which the graph needs")
                self.constant(name, self.arrays[name])
            return name
        base = str(node["name"])
        if base in ONNX_OUTPUTS:  # MXNet's softmax node is called cls_prob too: the graph output takes the name
            base = f"{base}_mxnet"
        return base if index == 0 else f"{base}_output{index}"

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        self.initializers[name] = numpy_helper.from_array(array, name)
        return name

    def emit(self, op: str, inputs: list[str], outputs: list[str], name: str, **attributes: Any) -> None:
        from onnx import helper

        self.onnx_nodes.append(helper.make_node(op, inputs, outputs, name=name, **attributes))

    # ---- the walk ---------------------------------------------------------------------------------------
    def translate_upto(self, entry: list[int]) -> str:
        """Translate every node ``entry`` depends on (MXNet's JSON is in topological order), return its tensor."""
        stack = [int(entry[0])]
        needed: set[int] = set()
        while stack:
            node_id = stack.pop()
            if node_id in needed:
                continue
            needed.add(node_id)
            stack.extend(int(item[0]) for item in self.nodes_json[node_id].get("inputs", []))
        for node_id in sorted(needed):
            if node_id not in self.translated and self.nodes_json[node_id]["op"] != "null":
                self.translate(node_id)
                self.translated[node_id] = None
        return self.tensor(entry)

    def translate(self, node_id: int) -> None:
        node = self.nodes_json[node_id]
        op = str(node["op"])
        handler = TRANSLATIONS.get(op)
        if handler is None:
            raise GraphError(
                f"{self.where}: operator {op} (node {node['name']}) has no ONNX translation here; supported:"
                f" {', '.join(sorted(TRANSLATIONS))}"
            )
        inputs = [self.tensor(item) for item in node.get("inputs", [])]
        try:
            handler(self, node, inputs, self.tensor([node_id, 0]), _attrs(node))
        except (ValueError, SyntaxError) as error:
            raise GraphError(f"{self.where}: node {node['name']} ({op}): unreadable attributes ({error})") from None


# ---- operator translations: (builder, node, input tensors, output name, attributes) --------------------------
Translation = Callable[[_Builder, dict[str, Any], list[str], str, dict[str, str]], None]


def _convolution(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    kernel = _ints(attrs.get("kernel"), ())
    if len(kernel) != 2 or attrs.get("layout", "None") not in ("None", "NCHW"):
        raise GraphError(f"{b.where}: node {out}: only 2-D NCHW convolutions are exported (kernel {kernel})")
    pad = _ints(attrs.get("pad"), (0, 0))
    if _flag(attrs.get("no_bias"), False):
        inputs = inputs[:2]
    b.emit("Conv", inputs, [out], out, kernel_shape=kernel, strides=_ints(attrs.get("stride"), (1, 1)),
           pads=pad + pad, dilations=_ints(attrs.get("dilate"), (1, 1)), group=int(attrs.get("num_group", "1")))


def _batch_norm(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    if int(attrs.get("axis", "1")) != 1:
        raise GraphError(f"{b.where}: node {out}: BatchNorm over axis {attrs['axis']} is not exported")
    data, gamma, beta, mean, var = inputs
    if _flag(attrs.get("fix_gamma"), True):  # MXNet's default: gamma is held at 1 whatever the file says
        gamma = b.constant(f"{out}_gamma_fixed", np.ones_like(b.arrays[gamma], dtype=np.float32))
    b.emit("BatchNormalization", [data, gamma, beta, mean, var], [out], out,
           epsilon=float(attrs.get("eps", "0.001")))


def _activation(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    kinds = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softrelu": "Softplus", "softsign": "Softsign"}
    act = attrs.get("act_type", "")
    if act not in kinds:
        raise GraphError(f"{b.where}: node {out}: Activation act_type {act!r} is not exported")
    b.emit(kinds[act], inputs, [out], out)


def _leaky_relu(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    if attrs.get("act_type", "leaky") != "leaky":
        raise GraphError(f"{b.where}: node {out}: LeakyReLU act_type {attrs['act_type']} is not exported")
    b.emit("LeakyRelu", inputs[:1], [out], out, alpha=float(attrs.get("slope", "0.25")))


def _pooling(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    kind = attrs.get("pool_type", "max")
    if kind not in ("max", "avg"):
        raise GraphError(f"{b.where}: node {out}: {kind} pooling is not exported")
    if _flag(attrs.get("global_pool"), False):
        b.emit("GlobalMaxPool" if kind == "max" else "GlobalAveragePool", inputs, [out], out)
        return
    convention = attrs.get("pooling_convention", "valid")
    if convention not in ("valid", "full"):
        raise GraphError(f"{b.where}: node {out}: pooling_convention {convention} is not exported")
    pad = _ints(attrs.get("pad"), (0, 0))
    options: dict[str, Any] = {
        "kernel_shape": _ints(attrs.get("kernel"), ()), "strides": _ints(attrs.get("stride"), (1, 1)),
        "pads": pad + pad, "ceil_mode": 1 if convention == "full" else 0,
    }  # fmt: skip
    if kind == "avg":
        options["count_include_pad"] = 1 if _flag(attrs.get("count_include_pad"), True) else 0
    b.emit("MaxPool" if kind == "max" else "AveragePool", inputs, [out], out, **options)


def _simple(onnx_op: str, **fixed: Any) -> Translation:
    def translate(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
        b.emit(onnx_op, inputs, [out], out, **fixed)

    return translate


def _scalar(onnx_op: str, reverse: bool = False) -> Translation:
    def translate(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
        scalar = b.constant(f"{out}_scalar", np.asarray(float(attrs["scalar"]), dtype=np.float32))
        b.emit(onnx_op, [scalar, inputs[0]] if reverse else [inputs[0], scalar], [out], out)

    return translate


def _transpose(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    axes = _ints(attrs.get("axes"), ())
    b.emit("Transpose", inputs, [out], out, **({"perm": axes} if axes else {}))


def _concat(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    b.emit("Concat", inputs, [out], out, axis=int(attrs.get("dim", "1")))


def _reshape(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    shape = _ints(attrs.get("shape"), ())
    if not shape or any(value < -1 for value in shape) or _flag(attrs.get("reverse"), False):
        raise GraphError(f"{b.where}: node {out}: Reshape {attrs.get('shape')} uses MXNet-only codes (-2, -3, -4)")
    target = b.constant(f"{out}_shape", np.asarray(shape, dtype=np.int64))
    b.emit("Reshape", [inputs[0], target], [out], out)


def _softmax_activation(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    if attrs.get("mode", "instance") != "channel":
        raise GraphError(f"{b.where}: node {out}: SoftmaxActivation mode {attrs.get('mode', 'instance')} is not"
                         " exported (the SSD graphs use mode channel)")  # fmt: skip
    b.emit("Softmax", inputs, [out], out, axis=1)


def _softmax(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    if attrs.get("temperature", "None") not in ("None", "1", "1.0"):
        raise GraphError(f"{b.where}: node {out}: softmax with a temperature is not exported")
    b.emit("Softmax", inputs[:1], [out], out, axis=int(attrs.get("axis", "-1")))


def _l2_normalization(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    """MXNet: ``x / sqrt(sum(x^2) + eps)``, the sum over channels (``channel``), all but the batch (``instance``)
    or the spatial axes (``spatial``); ONNX's LpNormalization has no eps, so it is spelled out."""
    axes = {"channel": [1], "instance": [1, 2, 3], "spatial": [2, 3]}.get(attrs.get("mode", "instance"))
    if axes is None:
        raise GraphError(f"{b.where}: node {out}: L2Normalization mode {attrs['mode']} is not exported")
    eps = b.constant(f"{out}_eps", np.asarray(float(attrs.get("eps", "1e-10")), dtype=np.float32))
    b.emit("ReduceSumSquare", inputs, [f"{out}_sumsq"], f"{out}_sumsq", axes=axes, keepdims=1)
    b.emit("Add", [f"{out}_sumsq", eps], [f"{out}_sumsq_eps"], f"{out}_add_eps")
    b.emit("Sqrt", [f"{out}_sumsq_eps"], [f"{out}_norm"], f"{out}_sqrt")
    b.emit("Div", [inputs[0], f"{out}_norm"], [out], out)


def _clip(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    low = b.constant(f"{out}_min", np.asarray(float(attrs["a_min"]), dtype=np.float32))
    high = b.constant(f"{out}_max", np.asarray(float(attrs["a_max"]), dtype=np.float32))
    b.emit("Clip", [inputs[0], low, high], [out], out)


def _fully_connected(b: _Builder, node: dict[str, Any], inputs: list[str], out: str, attrs: dict[str, str]) -> None:
    data = inputs[0]
    if _flag(attrs.get("flatten"), True):
        b.emit("Flatten", [data], [f"{out}_flat"], f"{out}_flatten", axis=1)
        data = f"{out}_flat"
    else:
        raise GraphError(f"{b.where}: node {out}: FullyConnected with flatten=False is not exported")
    weights = inputs[1:2] if _flag(attrs.get("no_bias"), False) else inputs[1:3]
    b.emit("Gemm", [data, *weights], [out], out, transB=1)


TRANSLATIONS: dict[str, Translation] = {
    "Convolution": _convolution,
    "BatchNorm": _batch_norm,
    "Activation": _activation,
    "LeakyReLU": _leaky_relu,
    "Pooling": _pooling,
    "Flatten": _simple("Flatten", axis=1),
    "transpose": _transpose,
    "Concat": _concat,
    "Reshape": _reshape,
    "SoftmaxActivation": _softmax_activation,
    "softmax": _softmax,
    "L2Normalization": _l2_normalization,
    "FullyConnected": _fully_connected,
    "clip": _clip,
    **{name: _simple("Add") for name in ("elemwise_add", "broadcast_add", "_plus", "_Plus", "_add")},
    **{name: _simple("Sub") for name in ("elemwise_sub", "broadcast_sub", "_minus", "_Minus", "_sub")},
    **{name: _simple("Mul") for name in ("elemwise_mul", "broadcast_mul", "_mul", "_Mul")},
    **{name: _simple("Div") for name in ("elemwise_div", "broadcast_div", "_div", "_Div")},
    **{name: _simple("Identity") for name in ("_copy", "identity", "Dropout", "BlockGrad", "stop_gradient")},
    "_plus_scalar": _scalar("Add"),
    "_minus_scalar": _scalar("Sub"),
    "_rminus_scalar": _scalar("Sub", reverse=True),
    "_mul_scalar": _scalar("Mul"),
    "_div_scalar": _scalar("Div"),
}


def detection_inputs(nodes: list[dict[str, Any]], where: str) -> tuple[list[int], list[int], list[int]]:
    """The (cls_prob, loc_pred, anchors) entries feeding the graph's MultiBoxDetection node."""
    for node in nodes:
        if node.get("op") == DETECTION_OP:
            entries = node.get("inputs", [])
            if len(entries) != 3:
                break
            return entries[0], entries[1], entries[2]
    raise GraphError(f"{where}: no MultiBoxDetection node with 3 inputs: not an SSD deploy graph")


def export_onnx(
    symbol_json: str, arg_params: Mapping[str, Any], aux_params: Mapping[str, Any], image_shape: int, where: str
) -> OnnxExport:
    """The ONNX model of a deploy graph and its weights (MXNet NDArrays or numpy), checked against MXNet."""
    import onnx
    from onnx import TensorProto, helper

    nodes = json.loads(symbol_json)["nodes"]
    arrays = {name: _numpy(value) for name, value in {**arg_params, **aux_params}.items()}
    cls_entry, loc_entry, anchor_entry = detection_inputs(nodes, where)
    softmax = nodes[int(cls_entry[0])]
    if softmax.get("op") not in ("SoftmaxActivation", "softmax") or not softmax.get("inputs"):
        raise GraphError(f"{where}: MultiBoxDetection's class input is not a softmax: not an SSD deploy graph")
    logits_entry = softmax["inputs"][0]
    reference = _mxnet_reference(symbol_json, arg_params, aux_params, image_shape, nodes,
                                 (cls_entry, loc_entry, anchor_entry, logits_entry), where)  # fmt: skip
    anchors = reference["anchors"]
    builder = _Builder(nodes, arrays, where)
    cls_tensor = builder.translate_upto(cls_entry)
    loc_tensor = builder.translate_upto(loc_entry)
    builder.constant("anchors_constant", anchors.astype(np.float32))
    cls_name, loc_name, anchor_name = ONNX_OUTPUTS
    builder.emit("Identity", [cls_tensor], [cls_name], "cls_prob_output")
    builder.emit("Identity", [loc_tensor], [loc_name], "loc_pred_output")
    builder.emit("Identity", ["anchors_constant"], [anchor_name], "anchors_output")
    used = {name for node in builder.onnx_nodes for name in node.input}
    initializers = [tensor for name, tensor in builder.initializers.items() if name in used]  # fix_gamma's originals
    num_anchors = int(anchors.shape[1])
    num_classes = int(reference["cls_prob"].shape[1]) - 1
    graph = helper.make_graph(
        builder.onnx_nodes,
        "ssd",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, [1, 3, image_shape, image_shape])],
        [
            helper.make_tensor_value_info(cls_name, TensorProto.FLOAT, [1, num_classes + 1, num_anchors]),
            helper.make_tensor_value_info(loc_name, TensorProto.FLOAT, [1, num_anchors * 4]),
            helper.make_tensor_value_info(anchor_name, TensorProto.FLOAT, [1, num_anchors, 4]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="cloud-training")  # fmt: skip
    model.ir_version = 7  # what ONNX Runtime 1.10+ reads; newer onnx packages would stamp a version old runtimes refuse
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0]
        raise GraphError(f"{where}: the exported ONNX graph is not valid ({first})") from None
    data = model.SerializeToString()
    checked = onnx.ModelProto()
    checked.CopyFrom(model)
    checked.graph.node.append(helper.make_node("Identity", [builder.tensor(logits_entry)], [CHECK_LOGITS]))
    checked.graph.output.append(helper.make_tensor_value_info(CHECK_LOGITS, TensorProto.FLOAT, None))
    differences = _compare_with_onnxruntime(checked.SerializeToString(), reference, where)
    return OnnxExport(data, num_classes, num_anchors, differences)


def _numpy(value: Any) -> np.ndarray:
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


def check_input(image_shape: int, seed: int = 2024) -> np.ndarray:
    """A seeded input in the range a mean-subtracted image has: what export checks both engines on."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-124.0, 152.0, size=(1, 3, image_shape, image_shape)).astype(np.float32)


def _mxnet_reference(
    symbol_json: str, arg_params: Mapping[str, Any], aux_params: Mapping[str, Any], image_shape: int,
    nodes: list[dict[str, Any]], entries: tuple[list[int], ...], where: str,
) -> dict[str, np.ndarray]:  # fmt: skip
    """MXNet's cls_prob, loc_pred, anchors and class logits for :func:`check_input`."""
    import mxnet as mx

    from edge_runtime.detectors.mxnet_io import native_stderr_to_log

    def output_name(entry: list[int]) -> str:
        node = nodes[int(entry[0])]
        return f"{node['name']}_output" if int(entry[1]) == 0 else f"{node['name']}_output{int(entry[1])}"

    with native_stderr_to_log(log):
        internals = mx.sym.load_json(symbol_json).get_internals()
    group = mx.sym.Group([internals[output_name(entry)] for entry in entries])
    data = mx.nd.array(check_input(image_shape))
    args = {name: _ndarray(arg_params[name]) for name in group.list_arguments() if name != ONNX_INPUT}
    aux = {name: _ndarray(aux_params[name]) for name in group.list_auxiliary_states()}
    try:
        with native_stderr_to_log(log):
            executor = group.bind(mx.cpu(), args={**args, ONNX_INPUT: data}, aux_states=aux, grad_req="null")
            executor.forward(is_train=False)
    except (mx.base.MXNetError, KeyError) as error:
        raise GraphError(f"{where}: MXNet cannot run the graph to check the export ({error})") from None
    cls_prob, loc_pred, anchors, logits = (output.asnumpy() for output in executor.outputs)
    return {"cls_prob": cls_prob, "loc_pred": loc_pred, "anchors": anchors, "class_logits": logits,
            "data": data.asnumpy()}  # fmt: skip


def _ndarray(value: Any) -> Any:
    import mxnet as mx

    return value if isinstance(value, mx.nd.NDArray) else mx.nd.array(value)


def _compare_with_onnxruntime(model_bytes: bytes, reference: Mapping[str, np.ndarray], where: str) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        cls_prob, loc_pred, anchors, logits = session.run([*ONNX_OUTPUTS, CHECK_LOGITS],
                                                          {ONNX_INPUT: reference["data"]})
    except Exception as error:  # onnxruntime's own exception types: any of them means the export is unusable
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise GraphError(f"{where}: ONNX Runtime cannot run the exported graph ({first})") from None
    got = {"class_logits": logits, "loc_pred": loc_pred, "anchors": anchors, "cls_prob": cls_prob}
    differences: dict[str, float] = {}
    for name, value in got.items():
        expected = reference[name]
        if value.shape != expected.shape:
            raise GraphError(f"{where}: exported {name} has shape {value.shape}, MXNet's {expected.shape}")
        differences[name] = float(np.max(np.abs(value - expected))) if value.size else 0.0
        if name not in TOLERANCE:
            continue  # cls_prob: recorded, judged through the logits
        limit = TOLERANCE[name] * max(1.0, float(np.abs(expected).max()))
        if differences[name] > limit:
            raise GraphError(
                f"{where}: the ONNX export differs from MXNet in {name} by {differences[name]:.3g} (limit"
                f" {limit:.3g}): not written"
            )
    return differences
