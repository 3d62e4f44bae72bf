"""``evaluate --record`` per precision: fp32's result is model.json's ``evaluation`` (its thresholds are the device's
defaults), a reduced precision's goes under ``evaluations.<precision>`` beside it, where the device's ``auto`` reads
the int8 mAP drop (edge_runtime.detectors.choice.map_drop_problem)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from cloud_training.commands.evaluate import record_in_model_json
from edge_runtime.detectors.choice import map_drop_problem

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"


def summary(precision: str, mean_ap: float) -> dict[str, Any]:
    return {
        "dataset": {"manifest": "held-out.manifest", "sha256": "0" * 64}, "images": 297, "metric": "VOC07",
        "iou_threshold": 0.5, "mAP": mean_ap,
        "classes": [{"name": "blue box", "ap": mean_ap, "ground_truth": 40, "recommended_threshold": {"score": 0.6}}],
        "model": {"backend": "onnxruntime", "precision": precision},
    }  # fmt: skip


def test_a_reduced_precision_is_recorded_beside_fp32_and_gates_int8(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    assert "no recorded held-out mAP" in str(map_drop_problem(folder, "int8", 0.01))
    record_in_model_json(folder, summary("fp32", 0.977))
    record_in_model_json(folder, summary("int8", 0.960))
    record_in_model_json(folder, summary("bf16", 0.976))
    manifest = json.loads((folder / "model.json").read_text())
    assert manifest["evaluation"]["mAP"] == 0.977 and manifest["evaluation"]["precision"] == "fp32"
    assert manifest["evaluations"]["int8"]["mAP"] == 0.960 and manifest["evaluations"]["bf16"]["mAP"] == 0.976
    assert "held-out mAP drop 0.0170 > 0.01" in str(map_drop_problem(folder, "int8", 0.01))
    record_in_model_json(folder, summary("int8", 0.972))  # a better quantisation, recorded again
    assert map_drop_problem(folder, "int8", 0.01) is None
