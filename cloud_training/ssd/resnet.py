"""ResNet v2 (pre-activation) as in MXNet's image-classification symbols, used by mxnet-ssd and SageMaker's SSD.

The classification head (``bn1 .. softmax``) is built too, as mxnet-ssd does: the SSD takes internal layers out of the
whole network, so keeping the head makes the auto-generated names (``_plus12``, ``flatten0``) match the algorithm's
graphs.
"""

from __future__ import annotations

from typing import Any

import mxnet as mx

Symbol = Any  # an mx.sym.Symbol; mxnet ships no type information

BN_MOMENTUM = 0.9
WORKSPACE = 256
# num_layers -> (units per stage, filters: stem then each stage's output)
RESNET_SPECS = {
    50: ([3, 4, 6, 3], [64, 256, 512, 1024, 2048]),
    101: ([3, 4, 23, 3], [64, 256, 512, 1024, 2048]),
}


def residual_unit(data: Symbol, num_filter: int, stride: tuple[int, int], dim_match: bool, name: str) -> Symbol:
    """A bottleneck unit: BN-ReLU-conv1x1, BN-ReLU-conv3x3 (strided), BN-ReLU-conv1x1, plus the shortcut."""
    bn1 = mx.sym.BatchNorm(data=data, fix_gamma=False, eps=2e-5, momentum=BN_MOMENTUM, name=name + "_bn1")
    act1 = mx.sym.Activation(data=bn1, act_type="relu", name=name + "_relu1")
    conv1 = mx.sym.Convolution(
        data=act1, num_filter=int(num_filter * 0.25), kernel=(1, 1), stride=(1, 1), pad=(0, 0),
        no_bias=True, workspace=WORKSPACE, name=name + "_conv1",
    )
    bn2 = mx.sym.BatchNorm(data=conv1, fix_gamma=False, eps=2e-5, momentum=BN_MOMENTUM, name=name + "_bn2")
    act2 = mx.sym.Activation(data=bn2, act_type="relu", name=name + "_relu2")
    conv2 = mx.sym.Convolution(
        data=act2, num_filter=int(num_filter * 0.25), kernel=(3, 3), stride=stride, pad=(1, 1),
        no_bias=True, workspace=WORKSPACE, name=name + "_conv2",
    )
    bn3 = mx.sym.BatchNorm(data=conv2, fix_gamma=False, eps=2e-5, momentum=BN_MOMENTUM, name=name + "_bn3")
    act3 = mx.sym.Activation(data=bn3, act_type="relu", name=name + "_relu3")
    conv3 = mx.sym.Convolution(
        data=act3, num_filter=num_filter, kernel=(1, 1), stride=(1, 1), pad=(0, 0),
        no_bias=True, workspace=WORKSPACE, name=name + "_conv3",
    )
    if dim_match:
        shortcut = data
    else:
        shortcut = mx.sym.Convolution(
            data=act1, num_filter=num_filter, kernel=(1, 1), stride=stride, no_bias=True,
            workspace=WORKSPACE, name=name + "_sc",
        )
    return conv3 + shortcut  # auto-named _plusN: SSD configs refer to these names


def get_symbol(num_classes: int = 1000, num_layers: int = 50) -> Symbol:
    """The ImageNet-size ResNet (7x7 stem and max pooling), ending in a softmax classifier that SSD does not use."""
    units, filter_list = RESNET_SPECS[num_layers]
    data = mx.sym.Variable(name="data")
    data = mx.sym.identity(data=data, name="id")
    data = mx.sym.BatchNorm(data=data, fix_gamma=True, eps=2e-5, momentum=BN_MOMENTUM, name="bn_data")
    body = mx.sym.Convolution(
        data=data, num_filter=filter_list[0], kernel=(7, 7), stride=(2, 2), pad=(3, 3),
        no_bias=True, name="conv0", workspace=WORKSPACE,
    )
    body = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=2e-5, momentum=BN_MOMENTUM, name="bn0")
    body = mx.sym.Activation(data=body, act_type="relu", name="relu0")
    body = mx.sym.Pooling(data=body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")
    for i, num_units in enumerate(units):
        first_stride = (1, 1) if i == 0 else (2, 2)
        body = residual_unit(body, filter_list[i + 1], first_stride, False, name=f"stage{i + 1}_unit1")
        for j in range(num_units - 1):
            body = residual_unit(body, filter_list[i + 1], (1, 1), True, name=f"stage{i + 1}_unit{j + 2}")
    bn1 = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=2e-5, momentum=BN_MOMENTUM, name="bn1")
    relu1 = mx.sym.Activation(data=bn1, act_type="relu", name="relu1")
    pool1 = mx.sym.Pooling(data=relu1, global_pool=True, kernel=(7, 7), pool_type="avg", name="pool1")
    flat = mx.sym.Flatten(data=pool1)
    fc1 = mx.sym.FullyConnected(data=flat, num_hidden=num_classes, name="fc1")
    return mx.sym.SoftmaxOutput(data=fc1, name="softmax")
