"""The SSD heads of mxnet-ssd (``symbol/common.py``), node for node, so graphs match the SageMaker algorithm's.

Names are the contract: ``multibox_loc_pred``, ``multibox_cls_pred`` and ``multibox_anchors`` are what conversion
looks for, and per-layer nodes are named after the feature layer they read (``_plus12_cls_pred_conv``,
``relu4_3_loc_pred_conv``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mxnet as mx
import numpy as np

from edge_runtime.model_format import DEFAULT_VARIANCES

# Box-coordinate variances of the algorithm's MultiBoxTarget and MultiBoxDetection (the deploy-folder contract's).
VARIANCES = DEFAULT_VARIANCES

Symbol = Any  # an mx.sym.Symbol; mxnet ships no type information


def conv_act_layer(
    from_layer: Symbol,
    name: str,
    num_filter: int,
    kernel: tuple[int, int],
    pad: tuple[int, int],
    stride: tuple[int, int],
) -> Symbol:
    """A convolution with an explicit zero-initialised bias (learning rate x2), then ReLU, as mxnet-ssd builds it."""
    bias = mx.symbol.Variable(
        name=f"{name}_conv_bias", init=mx.init.Constant(0.0), attr={"__lr_mult__": "2.0"}
    )
    conv = mx.symbol.Convolution(
        data=from_layer, bias=bias, kernel=kernel, pad=pad, stride=stride, num_filter=num_filter, name=f"{name}_conv"
    )
    return mx.symbol.Activation(data=conv, act_type="relu", name=f"{name}_relu")


def multi_layer_feature(
    body: Symbol,
    from_layers: Sequence[str],
    num_filters: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    min_filter: int = 128,
) -> list[Symbol]:
    """Pick named layers out of the base network, then stack extra 1x1 + 3x3 layers where ``from_layers`` is empty."""
    internals = body.get_internals()
    layers: list[Symbol] = []
    for k, (from_layer, num_filter, stride, pad) in enumerate(zip(from_layers, num_filters, strides, pads)):
        if from_layer.strip():
            layers.append(internals[from_layer.strip() + "_output"])
            continue
        num_1x1 = max(min_filter, num_filter // 2)
        conv_1x1 = conv_act_layer(layers[-1], f"multi_feat_{k}_conv_1x1", num_1x1, (1, 1), (0, 0), (1, 1))
        layers.append(
            conv_act_layer(conv_1x1, f"multi_feat_{k}_conv_3x3", num_filter, (3, 3), (pad, pad), (stride, stride))
        )
    return layers


def format_sizes(sizes: Sequence[float]) -> str:
    """Anchor sizes as the algorithm writes them: float32 values, shortest form, no spaces: ``(0.1,0.14142136)``."""
    return "(" + ",".join(str(np.float32(size)) for size in sizes) + ")"


def format_ratios(ratios: Sequence[float]) -> str:
    """Aspect ratios as Python 2's ``str`` wrote them (12 significant digits): ``(1,2,0.5,3,0.333333333333)``."""
    return "(" + ",".join(f"{ratio:.12g}" for ratio in ratios) + ")"


def multibox_layer(
    from_layers: Sequence[Symbol],
    num_classes: int,
    sizes: Sequence[Sequence[float]],
    ratios: Sequence[Sequence[float]],
    normalizations: Sequence[float],
    num_channels: Sequence[int],
    steps: Sequence[float] = (),
) -> tuple[Symbol, Symbol, Symbol]:
    """Location and class predictions plus anchors for every feature layer, concatenated.

    ``num_classes`` excludes the background; the class head predicts ``num_classes + 1`` scores per anchor.
    Returns ``(multibox_loc_pred, multibox_cls_pred, multibox_anchors)``.
    """
    num_scores = num_classes + 1  # background is class 0 of the softmax
    loc_pred_layers, cls_pred_layers, anchor_layers = [], [], []
    for k, from_layer in enumerate(from_layers):
        from_name = from_layer.name
        if normalizations[k] > 0:
            # L2-normalise early, high-resolution layers (vgg's relu4_3) and learn a per-channel scale.
            from_layer = mx.symbol.L2Normalization(data=from_layer, mode="channel", name=f"{from_name}_norm")
            scale = mx.symbol.Variable(
                name=f"{from_name}_scale",
                shape=(1, num_channels[k], 1, 1),
                init=mx.init.Constant(normalizations[k]),
                attr={"__wd_mult__": "0.1"},
            )
            from_layer = mx.symbol.broadcast_mul(lhs=scale, rhs=from_layer)
        num_anchors = len(sizes[k]) - 1 + len(ratios[k])

        loc_bias = mx.symbol.Variable(
            name=f"{from_name}_loc_pred_conv_bias", init=mx.init.Constant(0.0), attr={"__lr_mult__": "2.0"}
        )
        loc_pred = mx.symbol.Convolution(
            data=from_layer, bias=loc_bias, kernel=(3, 3), stride=(1, 1), pad=(1, 1),
            num_filter=num_anchors * 4, name=f"{from_name}_loc_pred_conv",
        )
        loc_pred = mx.symbol.transpose(loc_pred, axes=(0, 2, 3, 1))
        loc_pred_layers.append(mx.symbol.Flatten(data=loc_pred))

        cls_bias = mx.symbol.Variable(
            name=f"{from_name}_cls_pred_conv_bias", init=mx.init.Constant(0.0), attr={"__lr_mult__": "2.0"}
        )
        cls_pred = mx.symbol.Convolution(
            data=from_layer, bias=cls_bias, kernel=(3, 3), stride=(1, 1), pad=(1, 1),
            num_filter=num_anchors * num_scores, name=f"{from_name}_cls_pred_conv",
        )
        cls_pred = mx.symbol.transpose(cls_pred, axes=(0, 2, 3, 1))
        cls_pred_layers.append(mx.symbol.Flatten(data=cls_pred))

        step = (steps[k], steps[k]) if steps else "(-1.0, -1.0)"
        anchors = mx.symbol.contrib.MultiBoxPrior(
            from_layer, sizes=format_sizes(sizes[k]), ratios=format_ratios(ratios[k]), clip=False,
            name=f"{from_name}_anchors", steps=step,
        )
        anchor_layers.append(mx.symbol.Flatten(data=anchors))

    loc_preds = mx.symbol.Concat(*loc_pred_layers, num_args=len(loc_pred_layers), dim=1, name="multibox_loc_pred")
    cls_preds = mx.symbol.Concat(*cls_pred_layers, num_args=len(cls_pred_layers), dim=1)
    cls_preds = mx.symbol.Reshape(data=cls_preds, shape=(0, -1, num_scores))
    cls_preds = mx.symbol.transpose(cls_preds, axes=(0, 2, 1), name="multibox_cls_pred")
    anchor_boxes = mx.symbol.Concat(*anchor_layers, num_args=len(anchor_layers), dim=1)
    anchor_boxes = mx.symbol.Reshape(data=anchor_boxes, shape=(0, -1, 4), name="multibox_anchors")
    return loc_preds, cls_preds, anchor_boxes


def detection_head(
    cls_preds: Symbol,
    loc_preds: Symbol,
    anchor_boxes: Symbol,
    nms_thresh: float,
    force_suppress: bool,
    nms_topk: int,
    variances: Sequence[float] = VARIANCES,
) -> Symbol:
    """The deploy output: a channel softmax over the class scores, then decoding + NMS into ``detection``.

    ``detection`` has shape (batch, anchors, 6), rows ``[class_id, score, xmin, ymin, xmax, ymax]``, ``class_id -1`` for
    background or suppressed rows. Conversion and :func:`get_symbol` both end with exactly this.
    """
    cls_prob = mx.symbol.SoftmaxActivation(data=cls_preds, mode="channel", name="cls_prob")
    return mx.symbol.contrib.MultiBoxDetection(
        *[cls_prob, loc_preds, anchor_boxes], name="detection", nms_threshold=nms_thresh,
        force_suppress=force_suppress, variances=tuple(variances), nms_topk=nms_topk,
    )
