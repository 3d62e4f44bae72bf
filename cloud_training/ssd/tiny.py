"""A small base network for SSD that trains on a 2-core CPU in minutes; the SSD heads on top are the standard ones.

Five stages of (3x3 stride-2 conv, 3x3 conv), each with BatchNorm and ReLU, 16 to 128 channels. SSD reads stages 3, 4
and 5 (strides 8, 16, 32); extra layers go down to 1 or 2 pixels. About 0.9 M parameters for two classes.
"""

from __future__ import annotations

from typing import Any

import mxnet as mx

Symbol = Any  # an mx.sym.Symbol; mxnet ships no type information

STAGE_FILTERS = (16, 32, 64, 128, 128)


def _conv_bn_relu(data: Symbol, name: str, num_filter: int, stride: int) -> Symbol:
    conv = mx.sym.Convolution(
        data=data, num_filter=num_filter, kernel=(3, 3), stride=(stride, stride), pad=(1, 1), no_bias=True,
        name=f"{name}_conv",
    )
    bn = mx.sym.BatchNorm(data=conv, fix_gamma=False, eps=2e-5, momentum=0.9, name=f"{name}_bn")
    return mx.sym.Activation(data=bn, act_type="relu", name=f"{name}_relu")


def get_symbol() -> Symbol:
    """The feature extractor; layer ``tiny_stage{N}_b_relu`` is the output of stage N (stride 2**N)."""
    body = mx.sym.Variable(name="data")
    for stage, num_filter in enumerate(STAGE_FILTERS, start=1):
        body = _conv_bn_relu(body, f"tiny_stage{stage}_a", num_filter, stride=2)
        body = _conv_bn_relu(body, f"tiny_stage{stage}_b", num_filter, stride=1)
    return body
