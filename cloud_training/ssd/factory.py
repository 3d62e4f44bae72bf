"""Network configurations and the two public graph builders, ``get_symbol_train`` and ``get_symbol``.

Network names are the SageMaker algorithm's ``base_network`` values (``resnet-50``, ``vgg-16``) plus ``tiny-cnn``, the
small network of this project. Anchor sizes follow the algorithm: for scales s_k, layer k gets sizes
``(s_k, sqrt(s_k * s_k+1))``; the last scale is 1.05.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import mxnet as mx

from cloud_training.errors import NetworkConfigError
from cloud_training.ssd import resnet, tiny, vgg16_reduced
from cloud_training.ssd.heads import VARIANCES, detection_head, multi_layer_feature, multibox_layer

Symbol = Any  # an mx.sym.Symbol; mxnet ships no type information

NETWORKS = ("resnet-50", "vgg-16", "tiny-cnn")
# The algorithm documents image_shape >= 300; below that the deepest extra layers of the big networks vanish.
MIN_DATA_SHAPE = {"resnet-50": 300, "vgg-16": 300, "tiny-cnn": 64}
MAX_DATA_SHAPE = 2048
LAST_SCALE = 1.05
RATIOS_3 = (1, 2, 0.5)
RATIOS_5 = (1, 2, 0.5, 3, 1.0 / 3)


@dataclass(frozen=True)
class NetworkConfig:
    """Where the SSD reads features and which anchors it lays on each feature layer."""

    body: Callable[[], Symbol]
    from_layers: Sequence[str]  # "" = an extra 1x1 + 3x3 layer on top of the previous one
    num_filters: Sequence[int]
    strides: Sequence[int]
    pads: Sequence[int]
    scales: Sequence[float]  # s_k per feature layer; sizes are (s_k, sqrt(s_k * s_k+1))
    ratios: Sequence[Sequence[float]]
    normalizations: Sequence[float]  # > 0: L2-normalise that layer with this initial scale
    steps: Sequence[float] = ()
    min_filter: int = 128

    @property
    def sizes(self) -> list[tuple[float, float]]:
        scales = [*self.scales, LAST_SCALE]
        return [(scales[k], math.sqrt(scales[k] * scales[k + 1])) for k in range(len(self.scales))]


def network_config(network: str, data_shape: int) -> NetworkConfig:
    """The configuration of ``network`` at input size ``data_shape`` (square), as the algorithm builds it."""
    if network not in NETWORKS:
        raise NetworkConfigError(f"unknown base network {network!r} (choose one of {', '.join(NETWORKS)})")
    if not MIN_DATA_SHAPE[network] <= data_shape <= MAX_DATA_SHAPE:
        raise NetworkConfigError(
            f"{network} needs a data shape between {MIN_DATA_SHAPE[network]} and {MAX_DATA_SHAPE} pixels"
            f" (got {data_shape})"
        )
    if network == "resnet-50":
        return NetworkConfig(
            body=lambda: resnet.get_symbol(num_layers=50),
            from_layers=("_plus12", "_plus15", "", "", "", ""),
            num_filters=(-1, -1, 512, 256, 256, 128),
            strides=(-1, -1, 2, 2, 2, 2),
            pads=(-1, -1, 1, 1, 1, 1),
            scales=(0.1, 0.2, 0.37, 0.54, 0.71, 0.88),
            ratios=(RATIOS_3, RATIOS_5, RATIOS_5, RATIOS_5, RATIOS_3, RATIOS_3),
            normalizations=(-1,) * 6,
        )
    if network == "vgg-16":
        if data_shape >= 448:
            return NetworkConfig(
                body=vgg16_reduced.get_symbol,
                from_layers=("relu4_3", "relu7", "", "", "", "", ""),
                num_filters=(512, -1, 512, 256, 256, 256, 256),
                strides=(-1, -1, 2, 2, 2, 2, 1),
                pads=(-1, -1, 1, 1, 1, 1, 1),
                scales=(0.07, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9),
                ratios=(RATIOS_3, RATIOS_5, RATIOS_5, RATIOS_5, RATIOS_5, RATIOS_3, RATIOS_3),
                normalizations=(20, -1, -1, -1, -1, -1, -1),
                steps=[x / 512.0 for x in (8, 16, 32, 64, 128, 256, 512)] if data_shape == 512 else (),
            )
        return NetworkConfig(
            body=vgg16_reduced.get_symbol,
            from_layers=("relu4_3", "relu7", "", "", "", ""),
            num_filters=(512, -1, 512, 256, 256, 256),
            strides=(-1, -1, 2, 2, 1, 1),
            pads=(-1, -1, 1, 1, 0, 0),
            scales=(0.1, 0.2, 0.37, 0.54, 0.71, 0.88),
            ratios=(RATIOS_3, RATIOS_5, RATIOS_5, RATIOS_5, RATIOS_3, RATIOS_3),
            normalizations=(20, -1, -1, -1, -1, -1),
            steps=[x / 300.0 for x in (8, 16, 32, 64, 100, 300)] if data_shape == 300 else (),
        )
    return NetworkConfig(
        body=tiny.get_symbol,
        from_layers=("tiny_stage3_b_relu", "tiny_stage4_b_relu", "tiny_stage5_b_relu", "", ""),
        num_filters=(-1, -1, -1, 128, 128),
        strides=(-1, -1, -1, 2, 2),
        pads=(-1, -1, -1, 1, 1),
        scales=(0.1, 0.25, 0.45, 0.65, 0.85),
        ratios=(RATIOS_3,) * 5,
        normalizations=(-1,) * 5,
        min_filter=64,
    )


def _multibox(network: str, num_classes: int, data_shape: int) -> tuple[Symbol, Symbol, Symbol]:
    if num_classes < 1:
        raise NetworkConfigError(f"num_classes must be at least 1 (got {num_classes})")
    config = network_config(network, data_shape)
    body = config.body()
    layers = multi_layer_feature(
        body, config.from_layers, config.num_filters, config.strides, config.pads, min_filter=config.min_filter
    )
    return multibox_layer(
        layers, num_classes, sizes=config.sizes, ratios=config.ratios, normalizations=config.normalizations,
        num_channels=config.num_filters, steps=config.steps,
    )


def get_symbol_train(
    network: str,
    num_classes: int,
    data_shape: int,
    nms_thresh: float = 0.45,
    force_suppress: bool = True,
    nms_topk: int = 400,
    overlap_threshold: float = 0.5,
    negative_mining_ratio: float = 3,
    **_ignored: object,
) -> Symbol:
    """The training graph: outputs ``cls_prob, loc_loss, cls_label, det_out``; inputs ``data`` and ``label``.

    ``label`` is (batch, objects, 5+) with rows ``[class_id, xmin, ymin, xmax, ymax]`` (normalised), -1 padded.
    Extra keyword arguments (other hyperparameters) are accepted and ignored, as mxnet-ssd's builder does.
    """
    with mx.name.NameManager():  # fresh auto-name counters, so names are the same however often we build
        label = mx.symbol.Variable("label")
        loc_preds, cls_preds, anchor_boxes = _multibox(network, num_classes, data_shape)
        target = mx.symbol.contrib.MultiBoxTarget(
            *[anchor_boxes, label, cls_preds], overlap_threshold=overlap_threshold, ignore_label=-1,
            negative_mining_ratio=negative_mining_ratio, minimum_negative_samples=0, negative_mining_thresh=0.5,
            variances=VARIANCES, name="multibox_target",
        )
        loc_target, loc_target_mask, cls_target = target[0], target[1], target[2]
        cls_prob = mx.symbol.SoftmaxOutput(
            data=cls_preds, label=cls_target, ignore_label=-1, use_ignore=True, grad_scale=1.0,
            multi_output=True, normalization="valid", name="cls_prob",
        )
        loc_loss_ = mx.symbol.smooth_l1(
            name="loc_loss_", data=loc_target_mask * (loc_preds - loc_target), scalar=1.0
        )
        loc_loss = mx.symbol.MakeLoss(loc_loss_, grad_scale=1.0, normalization="valid", name="loc_loss")
        # monitoring outputs: no gradient
        cls_label = mx.symbol.MakeLoss(data=cls_target, grad_scale=0, name="cls_label")
        det = mx.symbol.contrib.MultiBoxDetection(
            *[cls_prob, loc_preds, anchor_boxes], name="detection", nms_threshold=nms_thresh,
            force_suppress=force_suppress, variances=VARIANCES, nms_topk=nms_topk,
        )
        det = mx.symbol.MakeLoss(data=det, grad_scale=0, name="det_out")
        return mx.symbol.Group([cls_prob, loc_loss, cls_label, det])


def get_symbol(
    network: str,
    num_classes: int,
    data_shape: int,
    nms_thresh: float = 0.45,
    force_suppress: bool = True,
    nms_topk: int = 400,
    **_ignored: object,
) -> Symbol:
    """The deploy graph built from scratch: output ``detection`` (batch, anchors, 6). Conversion gives the same."""
    with mx.name.NameManager():
        loc_preds, cls_preds, anchor_boxes = _multibox(network, num_classes, data_shape)
        return detection_head(cls_preds, loc_preds, anchor_boxes, nms_thresh, force_suppress, nms_topk)
