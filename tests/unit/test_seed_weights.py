"""benchmarks.seed_weights: a model folder stripped to statistics and regrown runs, with its small tensors exact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from benchmarks.seed_weights import KEEP_EXACT, regrow, strip
from edge_runtime.config import ModelConfig
from edge_runtime.detectors import create_detector
from edge_runtime.model import read_model_info

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"


def tensors(path: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_strip_then_regrow_gives_a_runnable_folder_of_the_same_graph(tmp_path: Path) -> None:
    source = tmp_path / "demo"
    shutil.copytree(DEMO, source)
    stripped = tmp_path / "stripped"
    strip(source, stripped)
    assert (stripped / "model.onnx").stat().st_size < (source / "model.onnx").stat().st_size / 4
    regrow(stripped)
    before, after = tensors(source / "model.onnx"), tensors(stripped / "model.onnx")
    assert before.keys() == after.keys()
    for name, values in before.items():
        assert after[name].shape == values.shape and after[name].dtype == values.dtype
        if values.size <= KEEP_EXACT:
            assert np.array_equal(after[name], values), name
        else:
            assert not np.array_equal(after[name], values)  # drawn again, with the same statistics
            assert abs(float(after[name].std()) - float(values.std())) <= 0.05 * float(values.std()) + 1e-6
    files = json.loads((stripped / "model.json").read_text())["files"]
    assert "model.onnx" in files and all((stripped / name).exists() for name in files)  # the MXNet pair dropped
    info = read_model_info(stripped)  # the rewritten digests verify
    detector = create_detector(ModelConfig.model_validate({"path": str(stripped), "backend": "onnxruntime",
                                                           "warmup_runs": 0}))  # fmt: skip
    result = detector.detect(np.zeros((240, 320, 3), dtype=np.uint8))
    assert result.width == 320 and info.onnx_path is not None
