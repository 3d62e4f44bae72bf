"""``model.backend auto``: the accuracy gate, the measured choice and its cache in state_dir.

The gate on literal rows first; then the demo model (trained, with its samples.npz) on the engines installed here:
a deliberately damaged int8 model is rejected while an undamaged one passes, a changed model re-measures, a corrupt
cache is measured again after one warning. Budgets are a couple of seconds: these prove behaviour, not speed
(``benchmarks/engines.py`` measures speed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_runtime.config import ModelConfig
from edge_runtime.detectors import create_detector
from edge_runtime.detectors.choice import CACHE_FILE, gate
from edge_runtime.messages import status_message, validate_message
from tests.support.onnx_damage import scale_initializers

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"
ROW = [1, 0.9, 0.1, 0.2, 0.5, 0.6]


# ------------------------------------------------------------------------------------------------ the gate


def test_equal_rows_pass_and_background_rows_are_ignored() -> None:
    reference = np.array([ROW, [0, 0.7, 0.5, 0.5, 0.9, 0.9], [-1, -1, -1, -1, -1, -1]])
    assert gate(reference, reference[::-1], 0.3, 0.02, 0.01) is None


def test_within_tolerance_passes_beyond_it_fails() -> None:
    reference = np.array([ROW])
    assert gate(reference, np.array([[1, 0.915, 0.105, 0.2, 0.5, 0.6]]), 0.3, 0.02, 0.01) is None
    off_score = np.array([[1, 0.95, 0.1, 0.2, 0.5, 0.6]])
    assert "misses class 1 score 0.900" in str(gate(reference, off_score, 0.3, 0.02, 0.01))
    assert "misses" in str(gate(reference, np.array([[1, 0.9, 0.13, 0.2, 0.5, 0.6]]), 0.3, 0.02, 0.01))
    assert "misses" in str(gate(reference, np.array([[0, 0.9, 0.1, 0.2, 0.5, 0.6]]), 0.3, 0.02, 0.01))  # class


def test_an_added_detection_fails_one_at_the_floor_may_come_and_go() -> None:
    reference = np.array([ROW])
    added = np.array([ROW, [0, 0.6, 0, 0, 0.2, 0.2]])
    assert "adds class 0 score 0.600" in str(gate(reference, added, 0.3, 0.02, 0.01))
    assert gate(reference, np.array([ROW, [0, 0.31, 0, 0, 0.2, 0.2]]), 0.3, 0.02, 0.01) is None
    assert gate(np.array([ROW, [0, 0.305, 0, 0, 0.2, 0.2]]), np.array([ROW]), 0.3, 0.02, 0.01) is None


# ------------------------------------------------------------------------------------------------ the choice


def _with_int8(folder: Path, data: bytes, evaluations: bool = True) -> None:
    (folder / "model.int8.onnx").write_bytes(data)
    manifest = json.loads((folder / "model.json").read_text())
    manifest["files"]["model.int8.onnx"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    if evaluations:  # a recorded held-out mAP that passes: only the sample frames can reject the model
        manifest["evaluation"] = {"mAP": 0.977}
        manifest["evaluations"] = {"int8": {"mAP": 0.975}}
    (folder / "model.json").write_text(json.dumps(manifest))


def _demo(tmp_path: Path) -> Path:
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    assert (folder / "samples.npz").is_file()
    return folder


def _auto(folder: Path, state: Path, **auto: Any) -> Any:
    config = ModelConfig.model_validate({"path": str(folder), "warmup_runs": 0,
                                         "auto": {"budget_s": 6.0, **auto}})  # fmt: skip
    return create_detector(config, state_dir=state)


def _table(detector: Any) -> dict[str, str]:
    return {f"{row['engine']} {row['precision']}": row["gate"] for row in detector.choice["table"]}


def test_a_damaged_int8_model_is_rejected_by_the_gate(tmp_path: Path) -> None:
    folder = _demo(tmp_path)
    damaged, names = scale_initializers((folder / "model.onnx").read_bytes(), "cls_pred", 1.5)
    assert names  # the class heads' weights, scaled: it loads and runs, and its scores are off
    _with_int8(folder, damaged)
    detector = _auto(folder, tmp_path / "state", precisions=["fp32", "int8"])
    table = _table(detector)
    assert table["onnxruntime int8"].startswith("fail: sample frame")
    assert detector.precision == "fp32" and table["onnxruntime fp32"] == "pass"


def test_an_undamaged_int8_model_passes_and_the_mAP_gate_applies(tmp_path: Path) -> None:
    folder = _demo(tmp_path)
    _with_int8(folder, (folder / "model.onnx").read_bytes(), evaluations=False)  # the fp32 graph under the name
    table = _table(_auto(folder, tmp_path / "state", precisions=["fp32", "int8"]))
    assert table["onnxruntime int8"].startswith("fail: no recorded held-out mAP for fp32 and int8")
    _with_int8(folder, (folder / "model.onnx").read_bytes())
    table = _table(_auto(folder, tmp_path / "state2", precisions=["fp32", "int8"]))
    assert table["onnxruntime int8"] == "pass"


def test_the_choice_is_cached_and_a_changed_model_is_measured_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, state = _demo(tmp_path), tmp_path / "state"
    with caplog.at_level(logging.INFO):
        first = _auto(folder, state, precisions=["fp32"])
    assert any("auto: measuring" in r.getMessage() and "at most 6 s" in r.getMessage() for r in caplog.records)
    assert (state / CACHE_FILE).is_file() and first.choice["source"] == "measured now"
    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = _auto(folder, state, precisions=["fp32"])
    assert second.choice["source"].startswith("cached in") and not any("measuring" in r.getMessage()
                                                                      for r in caplog.records)  # fmt: skip
    assert (second.backend, second.precision) == (first.backend, first.precision)
    manifest = json.loads((folder / "model.json").read_text())
    manifest["version"] = "1.0.1"  # a new model version: its digest changes
    (folder / "model.json").write_text(json.dumps(manifest))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        third = _auto(folder, state, precisions=["fp32"])
    messages = [r.getMessage() for r in caplog.records]
    assert "auto: the model changed since the last measurement: measuring again" in messages
    assert third.choice["source"] == "measured now"


def test_a_corrupt_cache_is_measured_again_after_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder, state = _demo(tmp_path), tmp_path / "state"
    state.mkdir()
    (state / CACHE_FILE).write_text('{"format": "engine-choice/1", "key": {"model": ')  # cut off mid-write
    with caplog.at_level(logging.INFO):
        detector = _auto(folder, state, precisions=["fp32"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is unreadable" in warnings[0] and "measuring again" in warnings[0]
    assert detector.choice["source"] == "measured now"
    assert json.loads((state / CACHE_FILE).read_text())["choice"]["engine"] == detector.backend


def test_without_samples_a_reduced_precision_is_never_chosen(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _demo(tmp_path)
    manifest = json.loads((folder / "model.json").read_text())
    del manifest["files"]["samples.npz"]
    (folder / "model.json").write_text(json.dumps(manifest))
    (folder / "samples.npz").unlink()
    _with_int8(folder, (folder / "model.onnx").read_bytes())
    with caplog.at_level(logging.WARNING):
        detector = _auto(folder, tmp_path / "state")
    assert detector.precision == "fp32"
    assert all(gate_text.startswith(("fail: no samples.npz", "unavailable", "skipped"))
               for name, gate_text in _table(detector).items() if not name.endswith("fp32"))  # fmt: skip
    assert any("reduced precisions cannot be checked" in r.getMessage() for r in caplog.records)


def test_a_reduced_precision_choice_is_a_warning_and_in_the_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _demo(tmp_path)
    _with_int8(folder, (folder / "model.onnx").read_bytes())  # passes both gates; with int8 only, auto must take it
    with caplog.at_level(logging.INFO):
        detector = _auto(folder, tmp_path / "state", precisions=["int8"])
    assert detector.precision == "int8"
    chosen = [r for r in caplog.records if "auto: chose" in r.getMessage()]
    assert len(chosen) == 1 and chosen[0].levelno == logging.WARNING and "REDUCED PRECISION" in chosen[0].getMessage()
    status = status_message(device="d", session="s", state="running", at=0.0, engine=detector.engine_status())
    validate_message(status)
    assert status["engine"]["chosen_by"] == "auto" and status["engine"]["table"]
