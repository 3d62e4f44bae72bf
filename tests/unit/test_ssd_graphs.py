"""The SSD graphs: structure and names as the SageMaker algorithm's, and conversion that changes no number."""

from __future__ import annotations

import json
import re
from typing import Any

import mxnet as mx
import numpy as np
import pytest

from cloud_training.conversion import NmsSettings, load_symbol, to_deploy_symbol
from cloud_training.errors import NetworkConfigError
from cloud_training.ssd import NETWORKS, get_symbol, get_symbol_train
from tests.support.models import calibrate_heads, random_params
from tests.support.shared import aws_sample

# Auto-generated names of anonymous nodes (flatten12, transpose3, concat0) depend on build order, not on meaning.
ANONYMOUS = re.compile(r"^(flatten|transpose|concat|reshape)\d+$")


def graph_nodes(symbol_json: str) -> list[dict[str, Any]]:
    return list(json.loads(symbol_json)["nodes"])


def assert_same_graph(ours: str, reference: str) -> None:
    """Same operators in the same order with the same attributes and inputs; same names but for anonymous nodes."""
    mine, theirs = graph_nodes(ours), graph_nodes(reference)
    assert len(mine) == len(theirs)
    for index, (a, b) in enumerate(zip(mine, theirs)):
        where = f"node {index} ({a['name']} vs {b['name']})"
        assert a["op"] == b["op"], where
        if a["op"] != "null":
            assert a.get("attrs", {}) == b.get("attrs", {}), where
        assert [i[:2] for i in a["inputs"]] == [i[:2] for i in b["inputs"]], where
        if not (ANONYMOUS.match(a["name"]) and ANONYMOUS.match(b["name"])):
            assert a["name"] == b["name"], where


def parameter_shapes(symbol: mx.sym.Symbol, data_shape: int) -> dict[str, tuple[int, ...]]:
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1, 3, data_shape, data_shape))
    names = symbol.list_arguments() + symbol.list_auxiliary_states()
    return {name: tuple(shape) for name, shape in zip(names, arg_shapes + aux_shapes) if name != "data"}


@pytest.fixture(scope="module")
def aws_deploy_json() -> str:
    return (aws_sample() / "model" / "deploy_model_algo_1-symbol.json").read_text()


def test_converted_resnet50_512_training_graph_is_the_aws_deploy_graph(aws_deploy_json: str) -> None:
    train = get_symbol_train("resnet-50", num_classes=2, data_shape=512, nms_thresh=0.45, force_suppress=True,
                             nms_topk=400)
    # Round-trip through JSON, as conversion sees an artifact: nothing but the saved graph is known.
    deploy = to_deploy_symbol(load_symbol(train.tojson(), "train"), NmsSettings(0.45, 400, True), "train")
    assert_same_graph(deploy.tojson(), aws_deploy_json)
    reference = mx.sym.load_json(aws_deploy_json)
    assert parameter_shapes(deploy, 512) == parameter_shapes(reference, 512)
    assert len(parameter_shapes(deploy, 512)) > 200


def test_get_symbol_builds_the_aws_deploy_graph_directly(aws_deploy_json: str) -> None:
    assert_same_graph(get_symbol("resnet-50", 2, 512).tojson(), aws_deploy_json)


@pytest.mark.parametrize(
    ("network", "data_shape", "anchors"),
    [
        ("resnet-50", 512, 6132),  # what the AWS sample's deploy graph produces
        ("resnet-50", 300, 2268),
        ("vgg-16", 300, 8732),  # the SSD300 paper's anchor count
        ("vgg-16", 512, 24576),  # SSD512 (7 layers, steps by 512)
        ("tiny-cnn", 256, 5456),
    ],
)
def test_graphs_have_the_algorithm_outputs_and_standard_anchor_counts(network: str, data_shape: int,
                                                                      anchors: int) -> None:
    train = get_symbol_train(network, num_classes=3, data_shape=data_shape)
    assert train.list_outputs() == ["cls_prob_output", "loc_loss_output", "cls_label_output", "det_out_output"]
    deploy = get_symbol(network, num_classes=3, data_shape=data_shape)
    assert deploy.list_outputs() == ["detection_output"]
    _, out_shapes, _ = deploy.infer_shape(data=(1, 3, data_shape, data_shape))
    assert out_shapes == [(1, anchors, 6)]
    cls_pred = deploy.get_internals()["multibox_cls_pred_output"]
    assert cls_pred.infer_shape(data=(1, 3, data_shape, data_shape))[1] == [(1, 4, anchors)]


def test_multibox_target_uses_the_algorithm_settings() -> None:
    nodes = graph_nodes(get_symbol_train("tiny-cnn", 2, 256).tojson())
    (target,) = [node for node in nodes if node["op"] == "_contrib_MultiBoxTarget"]
    assert target["attrs"]["overlap_threshold"] == "0.5"
    assert target["attrs"]["negative_mining_ratio"] == "3"
    assert target["attrs"]["variances"] == "(0.1, 0.1, 0.2, 0.2)"
    assert target["attrs"]["ignore_label"] == "-1"


def test_building_twice_gives_identical_graphs() -> None:
    assert get_symbol_train("resnet-50", 2, 300).tojson() == get_symbol_train("resnet-50", 2, 300).tojson()


@pytest.mark.parametrize(
    ("network", "data_shape", "num_classes", "message"),
    [
        ("resnet-101", 300, 2, "unknown base network 'resnet-101'"),
        ("vgg-16", 256, 2, "vgg-16 needs a data shape between 300 and 2048"),
        ("tiny-cnn", 32, 2, "tiny-cnn needs a data shape between 64 and 2048"),
        ("tiny-cnn", 256, 0, "num_classes must be at least 1"),
    ],
)
def test_bad_network_requests_are_refused_clearly(network: str, data_shape: int, num_classes: int,
                                                  message: str) -> None:
    with pytest.raises(NetworkConfigError, match=re.escape(message)):
        get_symbol_train(network, num_classes, data_shape)


@pytest.mark.parametrize(("network", "data_shape"), [("tiny-cnn", 256), ("resnet-50", 512)])
def test_converted_model_computes_exactly_the_training_graphs_det_out(network: str, data_shape: int) -> None:
    train = get_symbol_train(network, num_classes=2, data_shape=data_shape)
    arg_params, aux_params = random_params(train, data_shape, seed=7)
    image = mx.nd.array(np.random.default_rng(3).uniform(-123.0, 132.0, (1, 3, data_shape, data_shape)))
    calibrate_heads(train, arg_params, aux_params, image)

    label = mx.nd.array([[[0, 0.1, 0.1, 0.5, 0.6], [1, 0.4, 0.3, 0.9, 0.8]]])
    training = train.bind(mx.cpu(), args={**arg_params, "data": image, "label": label}, aux_states=aux_params,
                          grad_req="null")
    training.forward(is_train=False)
    det_out = training.outputs[3].asnumpy()

    deploy = to_deploy_symbol(load_symbol(train.tojson(), "train"), NmsSettings(0.45, 400, True), "train")
    used = {name: arg_params[name] for name in deploy.list_arguments() if name != "data"}
    deployed = deploy.bind(mx.cpu(), args={**used, "data": image}, aux_states=aux_params, grad_req="null")
    deployed.forward(is_train=False)
    detection = deployed.outputs[0].asnumpy()

    assert detection.shape == det_out.shape
    assert np.abs(detection - det_out).max() <= 1e-5
    # The comparison means something only if the detections are not degenerate.
    kept = detection[0][detection[0, :, 0] >= 0]
    assert len(kept) >= 20
    assert kept[:, 1].std() > 1e-3
    assert np.all(kept[:, 4] > kept[:, 2]) and np.all(kept[:, 5] > kept[:, 3])


def test_every_network_name_builds() -> None:
    for network in NETWORKS:
        assert get_symbol(network, 1, 300).list_outputs() == ["detection_output"]
