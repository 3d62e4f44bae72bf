"""VGG-16 "reduced" (fc6/fc7 as dilated convolutions), the classic SSD base network, as in mxnet-ssd."""

from __future__ import annotations

from typing import Any

import mxnet as mx

Symbol = Any  # an mx.sym.Symbol; mxnet ships no type information

# (group, number of 3x3 convolutions, filters)
GROUPS = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]


def get_symbol(num_classes: int = 1000) -> Symbol:
    """Five conv groups, pool5 3x3/1, fc6 dilated 3x3 (1024), fc7 1x1 (1024), then an unused classifier."""
    body = mx.symbol.Variable(name="data")
    for group, num_convs, num_filter in GROUPS:
        for i in range(1, num_convs + 1):
            body = mx.symbol.Convolution(
                data=body, kernel=(3, 3), pad=(1, 1), num_filter=num_filter, name=f"conv{group}_{i}"
            )
            body = mx.symbol.Activation(data=body, act_type="relu", name=f"relu{group}_{i}")
        if group == 3:
            # "full" rounds up, so 75x75 becomes 38x38 at 300 as in the SSD paper
            body = mx.symbol.Pooling(
                data=body, pool_type="max", kernel=(2, 2), stride=(2, 2), pooling_convention="full", name="pool3"
            )
        elif group == 5:
            body = mx.symbol.Pooling(
                data=body, pool_type="max", kernel=(3, 3), stride=(1, 1), pad=(1, 1), name="pool5"
            )
        else:
            body = mx.symbol.Pooling(data=body, pool_type="max", kernel=(2, 2), stride=(2, 2), name=f"pool{group}")
    conv6 = mx.symbol.Convolution(data=body, kernel=(3, 3), pad=(6, 6), dilate=(6, 6), num_filter=1024, name="fc6")
    relu6 = mx.symbol.Activation(data=conv6, act_type="relu", name="relu6")
    conv7 = mx.symbol.Convolution(data=relu6, kernel=(1, 1), pad=(0, 0), num_filter=1024, name="fc7")
    relu7 = mx.symbol.Activation(data=conv7, act_type="relu", name="relu7")
    gpool = mx.symbol.Pooling(data=relu7, pool_type="avg", kernel=(7, 7), global_pool=True, name="global_pool")
    conv8 = mx.symbol.Convolution(data=gpool, num_filter=num_classes, kernel=(1, 1), name="fc8")
    flat = mx.symbol.Flatten(data=conv8)
    return mx.symbol.SoftmaxOutput(data=flat, name="softmax")
