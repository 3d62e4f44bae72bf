"""``cloud-training export``: model.onnx for existing deploy folders and the AWS sample's plain pair; INT8; refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import mxnet as mx
import pytest

from cloud_training.cli import main
from edge_runtime.config import ModelConfig
from edge_runtime.detectors import create_detector
from edge_runtime.detectors.base import preprocess
from edge_runtime.model_format import MEAN_RGB
from tests.support.datasets import write_boxes_dataset
from tests.support.models import calibrate_heads, params_bytes, random_params
from tests.support.shared import aws_sample
from tests.unit.edge_model_helpers import build_deploy_model
from tests.unit.test_edge_onnx import rewrite_digest
from tests.unit.test_onnx_equality import assert_same_detections, frames


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_export_adds_model_onnx_in_place_and_refuses_to_repeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = build_deploy_model(tmp_path / "model")
    before = json.loads((folder / "model.json").read_text())
    assert main(["export", str(folder)]) == 0
    assert "exported" in capsys.readouterr().out
    after = json.loads((folder / "model.json").read_text())
    assert set(after["files"]) == {*before["files"], "model.onnx", "samples.npz"}
    assert after["onnx"]["opset"] == 13 and after["onnx"]["checked_against_mxnet"]["loc_pred"] < 1e-3
    assert {key: after[key] for key in before if key != "files"} == {k: v for k, v in before.items() if k != "files"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left beside it
    line = one_line_error(capsys, "export", str(folder))
    assert "model.onnx exists (use --force" in line


def test_a_graph_with_an_operator_that_has_no_translation_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = build_deploy_model(tmp_path / "model")
    graph = json.loads((folder / "deploy_model_algo_1-symbol.json").read_text())
    relu = next(node for node in graph["nodes"] if node["op"] == "Activation")
    relu["op"], relu["attrs"] = "LeakyReLU", {"act_type": "elu", "slope": "0.25"}  # real MXNet, not in our graphs
    (folder / "deploy_model_algo_1-symbol.json").write_text(json.dumps(graph))
    rewrite_digest(folder, "deploy_model_algo_1-symbol.json")  # else the digest check would refuse it first
    snapshot = {path.name: path.read_bytes() for path in folder.iterdir()}
    line = one_line_error(capsys, "export", str(folder))
    assert "LeakyReLU act_type elu is not exported" in line
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == snapshot


def test_quantize_needs_calibration_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = build_deploy_model(tmp_path / "model")
    assert "needs --calibration MANIFEST" in one_line_error(capsys, "export", str(folder), "--quantize", "int8")
    assert "only used with --quantize" in one_line_error(capsys, "export", str(folder), "--calibration", "x.manifest")


def test_int8_export_runs_on_onnx_runtime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = build_deploy_model(tmp_path / "model", image_size=128)
    manifest = write_boxes_dataset(tmp_path / "data", count=12)
    assert main(["export", str(folder), "--quantize", "int8", "--calibration", str(manifest),
                 "--calibration-images", "8"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "model.int8.onnx, calibrated on 8 image(s)" in out
    meta = json.loads((folder / "model.json").read_text())
    assert "model.int8.onnx" in meta["files"] and meta["onnx"]["int8"]["calibration"]["images"] == 8
    int8 = create_detector(ModelConfig.model_validate({"path": str(folder), "precision": "int8", "warmup_runs": 0}))
    assert int8.backend == "onnxruntime" and int8.describe()["file"] == "model.int8.onnx"
    assert int8.detect(frames()[0][1]).width == 1920
    assert main(["inspect", str(folder)]) == 0
    assert "model.int8.onnx" in capsys.readouterr().out


@pytest.mark.slow
def test_the_aws_sample_plain_pair_exports_and_detects_as_mxnet(tmp_path: Path) -> None:
    """The real SageMaker deploy graph AWS shipped (with weights of ours: it ships none), as a plain pair."""
    pair = tmp_path / "pair"
    pair.mkdir()
    shutil.copy(aws_sample() / "model" / "deploy_model_algo_1-symbol.json", pair)
    hyper = json.loads((aws_sample() / "model" / "hyperparams.json").read_text())
    hyper["num_classes"] = "2"  # the graph's class head predicts 2; the sample's hyperparams.json says 4
    (pair / "hyperparams.json").write_text(json.dumps(hyper))
    symbol = mx.sym.load(str(pair / "deploy_model_algo_1-symbol.json"))
    arg_params, aux_params = random_params(symbol, 512, seed=3)
    real = cv2.imread(str(next((aws_sample() / "images").glob("yellow_box*.jpg"))))
    calibrate_heads(symbol, arg_params, aux_params, mx.nd.array(preprocess(real, 512, MEAN_RGB)))
    (pair / "deploy_model_algo_1-0000.params").write_bytes(params_bytes(arg_params, aux_params))

    assert main(["export", str(pair)]) == 2  # no model.json to record it in: --out is required
    out = tmp_path / "deploy"
    assert main(["export", str(pair), "--out", str(out)]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["network"] == "resnet-50" and meta["nms"]["force_suppress"] is True and meta["num_classes"] == 2

    def detector(backend: str):
        return create_detector(ModelConfig.model_validate(
            {"path": str(out), "backend": backend, "score_threshold": 0.05, "top_k": 200, "warmup_runs": 0}))

    reference, candidate = detector("mxnet"), detector("onnxruntime")
    counts = [assert_same_detections(reference, candidate, image, name) for name, image in frames()]
    assert sum(counts) >= 10
