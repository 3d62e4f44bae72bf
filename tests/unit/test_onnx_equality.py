"""ONNX Runtime gives the same detections as the MXNet deploy graph, through the edge runtime's own Detector API.

For each network the product builds, a training artifact with calibrated heads (realistic score spread, so NMS and
the thresholds have real work to do) goes through ``cloud-training convert``, which writes both the MXNet deploy
graph and ``model.onnx``. The two backends the registry builds from that one folder then see the real AWS sample
frames and synthetic frames: equal class ids in equal order, scores and normalised boxes within 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from cloud_training.cli import main as cloud_main
from cloud_training.ssd import get_symbol_train
from cloud_training.synth.dataset import plan, render_frame
from edge_runtime.config import ModelConfig
from edge_runtime.detectors import create_detector
from edge_runtime.detectors.base import Detector, preprocess
from edge_runtime.model_format import MEAN_RGB
from tests.support.models import BASE_HYPERPARAMETERS, calibrate_heads, params_bytes, random_params, write_tarball
from tests.support.shared import aws_sample

TOLERANCE = 1e-4
NETWORKS = [
    ("tiny-cnn", 192),
    ("tiny-cnn", 320),
    pytest.param("vgg-16", 300, marks=pytest.mark.slow),
    pytest.param("resnet-50", 512, marks=pytest.mark.slow),
]


def frames() -> list[tuple[str, np.ndarray]]:
    """The two real AWS sample frames (1920x1080 JPEGs nobody here made) and three synthetic scenes."""
    images = [(path.name, cv2.imread(str(path))) for path in sorted((aws_sample() / "images").glob("*.jpg"))]
    for frame_plan in plan(3, seed=5):
        frame = render_frame((frame_plan, 640, 480, 5))
        images.append((f"synthetic-{frame_plan.index}", cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), 1)))
    assert len(images) == 5 and all(image is not None for _, image in images)
    return images


def converted_model(folder: Path, network: str, image_shape: int) -> Path:
    """A training artifact of ``network`` with heads calibrated on a real frame, converted by the product's CLI."""
    train = get_symbol_train(network, num_classes=2, data_shape=image_shape)
    arg_params, aux_params = random_params(train, image_shape, seed=11)
    real = cv2.imread(str(next((aws_sample() / "images").glob("blue_box*.jpg"))))
    calibrate_heads(train, arg_params, aux_params, mx.nd.array(preprocess(real, image_shape, MEAN_RGB)))
    hyper = {**BASE_HYPERPARAMETERS, "base_network": network, "num_classes": "2", "image_shape": str(image_shape)}
    files = {
        "model_algo_1-symbol.json": train.tojson().encode(),
        "model_algo_1-0000.params": params_bytes(arg_params, aux_params),
        "hyperparams.json": json.dumps(hyper).encode(),
    }
    tarball = write_tarball(folder / "model.tar.gz", files)
    out = folder / "deploy"
    assert cloud_main(["convert", str(tarball), "--out", str(out), "--class-names", "blue box,yellow box"]) == 0
    assert (out / "model.onnx").is_file()
    return out


def detector(model: Path, backend: str) -> Detector:
    config = ModelConfig.model_validate(
        {"path": str(model), "backend": backend, "score_threshold": 0.05, "top_k": 200, "warmup_runs": 0}
    )
    built = create_detector(config)
    assert built.backend == backend
    return built


def assert_same_detections(reference: Detector, candidate: Detector, image: np.ndarray, where: str) -> int:
    expected = reference.detect(image).detections
    got = candidate.detect(image).detections
    assert [d.class_id for d in got] == [d.class_id for d in expected], where
    for want, have in zip(expected, got):
        assert abs(want.score - have.score) <= TOLERANCE, where
        assert np.abs(np.subtract(want.box_normalized, have.box_normalized)).max() <= TOLERANCE, where
        assert want.label == have.label
    return len(expected)


@pytest.mark.parametrize(("network", "image_shape"), NETWORKS)
def test_onnx_runtime_detects_what_mxnet_detects(tmp_path: Path, network: str, image_shape: int) -> None:
    model = converted_model(tmp_path, network, image_shape)
    mxnet_detector, onnx_detector = detector(model, "mxnet"), detector(model, "onnxruntime")
    counts = [assert_same_detections(mxnet_detector, onnx_detector, image, f"{network}/{image_shape} {name}")
              for name, image in frames()]  # fmt: skip
    # The comparison means something only if there is something to compare: many boxes, both classes.
    assert sum(counts) >= 25 and min(counts) >= 1, counts
    classes = {d.class_id for _, image in frames() for d in mxnet_detector.detect(image).detections}
    assert classes == {0, 1}


def test_demo_model_detects_the_same_with_either_backend() -> None:
    """The committed demo model: what devices run (model.onnx) is what was trained and evaluated (MXNet)."""
    demo = Path(__file__).resolve().parents[2] / "models" / "demo"
    mxnet_detector, onnx_detector = detector(demo, "mxnet"), detector(demo, "onnxruntime")
    counts = [assert_same_detections(mxnet_detector, onnx_detector, image, name) for name, image in frames()]
    assert sum(counts) >= 5


def test_the_golden_demo_detections_are_what_mxnet_detects() -> None:
    """``demo-detections.json`` (what the numpy-2 edge environment compares ONNX Runtime with) is MXNet's output."""
    from tests.unit.test_edge_onnx import GOLDEN, demo_detections

    golden = json.loads(GOLDEN.read_text())
    got = demo_detections("mxnet")
    assert [item["image"] for item in got] == [item["image"] for item in golden]
    for want, have in zip(golden, got):
        assert [d["class_id"] for d in have["detections"]] == [d["class_id"] for d in want["detections"]]
        for a, b in zip(want["detections"], have["detections"]):
            assert abs(a["score"] - b["score"]) <= TOLERANCE
            assert np.abs(np.subtract(a["box_normalized"], b["box_normalized"])).max() <= TOLERANCE


@pytest.mark.parametrize(
    ("nms_threshold", "force_suppress", "nms_topk", "threshold"),
    [(0.45, True, 400, 0.01), (0.45, False, 400, 0.01), (0.5, False, 25, 0.2), (0.3, True, -1, 0.05),
     (0.0, False, 400, 0.01)],
)
def test_numpy_multibox_detection_is_mxnets_row_for_row(
    nms_threshold: float, force_suppress: bool, nms_topk: int, threshold: float
) -> None:
    """Every row MXNet's operator keeps (class >= 0) is the numpy version's, in the same position."""
    from edge_runtime.detectors.multibox import multibox_detection

    rng = np.random.default_rng(int(nms_threshold * 100) + nms_topk)
    anchors_count, classes = 2000, 4
    logits = rng.normal(0, 2, (1, classes + 1, anchors_count)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    centres = rng.uniform(0.0, 1.0, (anchors_count, 2))
    sizes = rng.uniform(0.05, 0.4, (anchors_count, 2))
    anchors = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)[np.newaxis]
    offsets = rng.normal(0, 1.0, (1, anchors_count * 4)).astype(np.float32)
    expected = mx.nd.contrib.MultiBoxDetection(
        mx.nd.array(probs), mx.nd.array(offsets), mx.nd.array(anchors), threshold=threshold,
        nms_threshold=nms_threshold, force_suppress=force_suppress, nms_topk=nms_topk, variances=(0.1, 0.1, 0.2, 0.2),
    ).asnumpy()[0]  # fmt: skip
    got = multibox_detection(probs[0], offsets[0], anchors[0], threshold=threshold, nms_threshold=nms_threshold,
                             force_suppress=force_suppress, nms_topk=nms_topk)  # fmt: skip
    kept = expected[:, 0] >= 0
    assert kept.sum() >= 10
    assert np.array_equal(got[:, 0] >= 0, kept)
    assert np.abs(got[kept] - expected[kept]).max() <= 1e-6


@pytest.mark.slow
def test_evaluate_gives_the_same_map_with_either_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo model's held-out set (models/demo/reproduce.sh: 300 fresh frames of seed 2027, prepared as there)."""
    held_out = tmp_path / "heldout"
    assert cloud_main(["synth", "--out", str(held_out), "--images", "300", "--seed", "2027"]) == 0
    prepared = tmp_path / "prepared"
    assert cloud_main(["manifest", "prepare", str(held_out / "manifests"), "--discard",
                       str(held_out / "manifests" / "discard.txt"), "--class-from", "color,object", "--class-map",
                       "blue box=0,yellow box=1", "--validation-fraction", "0.5", "--seed", "0",
                       "--out", str(prepared)]) == 0  # fmt: skip
    every = prepared / "all.manifest"
    every.write_text((prepared / "train.manifest").read_text() + (prepared / "validation.manifest").read_text())
    capsys.readouterr()
    demo = Path(__file__).resolve().parents[2] / "models" / "demo"
    results = {}
    for backend in ("mxnet", "onnxruntime"):
        assert cloud_main(["evaluate", str(demo), str(every), "--backend", backend, "--json"]) == 0
        results[backend] = json.loads(capsys.readouterr().out)
        assert results[backend]["model"]["backend"] == backend
    assert results["mxnet"]["images"] == results["onnxruntime"]["images"] >= 290
    assert round(results["mxnet"]["mAP"], 3) == round(results["onnxruntime"]["mAP"], 3)
    assert results["mxnet"]["mAP"] > 0.8  # the demo model, measured: a comparison of two real scores
