"""The engine registry as the one source of names, the OpenVINO engine on the demo model, and GPU provider choice.

Runs in the numpy-2 edge env too (``make edge-unit``), which installs OpenVINO: there the engines meet the newest
releases. OpenVINO missing skips its tests, except under CI=true, where it is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.bench import engine_names
from edge_runtime.bench_modes import ENGINES as BENCH_ENGINES
from edge_runtime.cli import build_parser, main
from edge_runtime.config import ModelConfig
from edge_runtime.detectors import create_detector, read_image
from edge_runtime.detectors.onnxruntime import providers_for, warn_if_fell_back
from edge_runtime.detectors.registry import ENGINES, EngineSpec, engine_choices
from tests.support.shared import aws_sample

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"


def require_openvino() -> None:
    if importlib.util.find_spec("openvino") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("openvino is not installed (the openvino extra; make edge-unit installs it)")
        pytest.skip("openvino is not installed (pip install '.[openvino]')")


def detect_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    image = str(next((aws_sample() / "images").glob("*.jpg")))
    assert main(["detect", *args, image]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


# ------------------------------------------------------------------------------------------------ the registry


def test_every_name_comes_from_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert engine_choices() == ("auto", *ENGINES)
    assert {"onnxruntime", "openvino", "mxnet"} <= set(ENGINES)
    schema = ModelConfig.model_json_schema()["properties"]["backend"]["description"]
    assert all(name in schema for name in ENGINES)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in ENGINES)
    assert set(engine_names()) == set(BENCH_ENGINES) and "openvino-bf16" in engine_names()


def test_a_new_engine_is_one_registration(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Registered but not installed: the config accepts the name, building it says what to install, in one line."""
    ghost = EngineSpec(name="ghost", package="no_such_engine_module_xyz", distribution="ghost", extra="ghost",
                       precisions=("fp32",), factory="no_such_engine_module_xyz:create", help="a test engine")
    monkeypatch.setitem(ENGINES, "ghost", ghost)
    assert ModelConfig(backend="ghost").backend == "ghost"
    assert "ghost" in engine_names()
    line = detect_error(capsys, "--model", str(DEMO), "--backend", "ghost")
    assert line == ('edge-runtime: error: model.backend: ghost is not installed here (no no_such_engine_module_xyz'
                    ' module; pip install "ssd-greengrass[ghost]")')  # fmt: skip


def test_an_unknown_engine_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = detect_error(capsys, "--model", str(DEMO), "--backend", "tflite")
    assert line == ("edge-runtime: error: model.backend: must be one of auto, onnxruntime, openvino, mxnet"
                    " (got 'tflite')")


def test_openvino_not_installed_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    line = detect_error(capsys, "--model", str(DEMO), "--backend", "openvino")
    assert "model.backend: openvino is not installed here" in line and "ssd-greengrass[openvino]" in line


def test_a_precision_an_engine_cannot_run_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = detect_error(capsys, "--model", str(DEMO), "--backend", "onnxruntime", "--precision", "bf16")
    assert "model.precision" in line and "bf16" in line


# ------------------------------------------------------------------------------------------------ OpenVINO


def _detections(backend: str, precision: str) -> list[list[tuple[int, float, tuple[float, float, float, float]]]]:
    config = ModelConfig.model_validate({"path": str(DEMO), "backend": backend, "precision": precision,
                                         "score_threshold": 0.3, "warmup_runs": 0})  # fmt: skip
    detector = create_detector(config)
    out = []
    for path in sorted((aws_sample() / "images").glob("*.jpg")):
        found = detector.detect(read_image(path)).detections
        out.append([(item.class_id, item.score, item.box_normalized) for item in found])
    return out


def test_openvino_fp32_detects_what_onnx_runtime_does() -> None:
    require_openvino()
    reference, openvino = _detections("onnxruntime", "fp32"), _detections("openvino", "fp32")
    assert sum(len(frame) for frame in reference) >= 2
    for want, have in zip(reference, openvino):
        assert [c for c, _, _ in have] == [c for c, _, _ in want]
        for (_, score_a, box_a), (_, score_b, box_b) in zip(want, have):
            assert abs(score_a - score_b) < 1e-3 and np.abs(np.subtract(box_a, box_b)).max() < 1e-3


def test_openvino_runs_as_many_threads_as_streams(tmp_path: Path) -> None:
    """Concurrent detect() calls share the infer-request pool; the compiled model is cached in state_dir."""
    require_openvino()
    from concurrent.futures import ThreadPoolExecutor

    config = ModelConfig.model_validate({"path": str(DEMO), "backend": "openvino", "warmup_runs": 0,
                                         "openvino": {"streams": 2}})  # fmt: skip
    detector = create_detector(config, state_dir=tmp_path)
    assert detector.concurrency >= 2 and detector.describe()["streams"] == "2"
    image = read_image(next((aws_sample() / "images").glob("*.jpg")))
    alone = detector.detect(image).detections
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: detector.detect(image).detections, range(8)))
    assert all(result == alone for result in results)
    assert any((tmp_path / "openvino-cache").iterdir())


def test_a_precision_the_cpu_lacks_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    require_openvino()
    from edge_runtime.detectors.openvino import cpu_capabilities

    missing = [p for p, cap in (("fp16", "FP16"), ("bf16", "BF16")) if cap not in cpu_capabilities()]
    if not missing:
        pytest.skip("this CPU has both BF16 and FP16")
    line = detect_error(capsys, "--model", str(DEMO), "--backend", "openvino", "--precision", missing[0])
    assert f"model.precision: {missing[0]} needs" in line and "OpenVINO does not find here" in line


def test_openvino_refuses_a_file_that_is_not_an_onnx_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_openvino()
    import hashlib

    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    (folder / "model.onnx").write_bytes(b"not a model")
    manifest = json.loads((folder / "model.json").read_text())
    manifest["files"]["model.onnx"] = {"sha256": hashlib.sha256(b"not a model").hexdigest(), "size": 11}
    (folder / "model.json").write_text(json.dumps(manifest))
    line = detect_error(capsys, "--model", str(folder), "--backend", "openvino")
    assert "model.onnx: OpenVINO cannot compile it" in line


# ------------------------------------------------------------------------------------------------ GPU providers


def test_gpu_takes_tensorrt_fp16_with_its_cache_then_cuda(tmp_path: Path) -> None:
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = providers_for("gpu", 1, available, tmp_path, find_library=lambda name: f"lib{name}.so.10")
    assert [item[0] if isinstance(item, tuple) else item for item in chosen] == available
    trt = chosen[0][1]
    assert trt["device_id"] == 1 and trt["trt_fp16_enable"] is True and trt["trt_engine_cache_enable"] is True
    cache = Path(trt["trt_engine_cache_path"])
    assert cache == tmp_path / "tensorrt-cache" and cache.is_dir()
    assert chosen[1] == ("CUDAExecutionProvider", {"device_id": 1})


def test_tensorrt_without_libnvinfer_is_left_out_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    # onnxruntime-gpu lists TensorRT without TensorRT installed; asked for, it printed a 15-line error block on an
    # H200 before falling back (benchmarks/gpu_check.py): left out beforehand, with our one line instead
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING):
        chosen = providers_for("gpu", 0, available, find_library=lambda name: None)
    assert chosen == [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    assert len(caplog.records) == 1 and "libnvinfer is not installed" in caplog.records[0].getMessage()


def test_gpu_with_cuda_only() -> None:
    chosen = providers_for("gpu", 0, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert chosen == [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]


def test_gpu_without_a_gpu_provider_falls_back_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        chosen = providers_for("gpu", 0, ["AzureExecutionProvider", "CPUExecutionProvider"])
    assert chosen == ["CPUExecutionProvider"]
    assert len(caplog.records) == 1 and "running on the CPU" in caplog.records[0].getMessage()
    assert providers_for("cpu", 0, ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_a_gpu_provider_that_cannot_start_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_if_fell_back([("CUDAExecutionProvider", {}), "CPUExecutionProvider"], ["CPUExecutionProvider"])
        warn_if_fell_back(["CPUExecutionProvider"], ["CPUExecutionProvider"])
    assert [r.getMessage() for r in caplog.records] == [
        "model.context gpu: CUDAExecutionProvider could not start here; running on CPUExecutionProvider"
    ]


def test_the_daemon_on_the_cpu_build_with_context_gpu_still_detects(caplog: pytest.LogCaptureFixture) -> None:
    config = ModelConfig.model_validate({"path": str(DEMO), "backend": "onnxruntime", "context": "gpu",
                                         "warmup_runs": 0})  # fmt: skip
    with caplog.at_level(logging.WARNING):
        detector = create_detector(config)
    assert detector.describe()["providers"].endswith("CPU")
    assert sum("model.context gpu" in r.getMessage() for r in caplog.records) == 1
