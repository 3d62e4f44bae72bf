"""``cloud-training evaluate`` on a real converted model (random weights) and a real manifest with images on disk.

With random weights the mAP is near 0; these tests check the plumbing (counts, JSON, table, PDF pages, errors). The
number itself is checked by ``test_voc_metric.py``, and here by a detector that returns the ground truth, run through
the same loop the command uses: it must score exactly 1.0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud_training.cli import main
from cloud_training.evaluation.loop import evaluate
from cloud_training.manifest import io
from cloud_training.manifest.records import Record
from edge_runtime.detectors.base import Detection
from edge_runtime.detectors.fake import FakeDetector
from edge_runtime.model import read_model_info
from tests.support.groundtruth import gt_line, write_manifest
from tests.support.models import training_artifact_files, write_folder

NAMES = ("blue box", "yellow box")
SIZE = (96, 64)
# (image name, class id, boxes as left, top, width, height)
IMAGES = [
    ("a.jpg", 0, [(10, 8, 30, 20)]),
    ("b.jpg", 1, [(40, 20, 40, 30), (5, 5, 20, 20)]),
    ("c.jpg", 0, [(50, 30, 30, 25)]),
]


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model")
    artifact = write_folder(root / "artifact", training_artifact_files("tiny-cnn", num_classes=2, data_shape=128))
    out = root / "deploy"
    assert main(["convert", str(artifact), "--out", str(out), "--class-names", ",".join(NAMES)]) == 0
    return out


def write_data(folder: Path, class_names: tuple[str, ...] = NAMES) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for name, class_id, boxes in IMAGES:
        image = rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
        for left, top, width, height in boxes:
            cv2.rectangle(image, (left, top), (left + width, top + height), (255, 0, 0), -1)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "images" / name), image)
        lines.append(
            gt_line(f"images/{name}", boxes, size=SIZE, class_id=class_id, class_name=class_names[class_id])
        )
    return write_manifest(folder / "validation.manifest", lines)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


def test_json_counts_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str], deploy: Path) -> None:
    manifest = write_data(tmp_path)
    report = tmp_path / "out" / "report.pdf"
    code, out, err = run_cli(capsys, "evaluate", str(deploy), str(manifest), "--json", "--report", str(report))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["images"] == 3 and summary["manifest"] == str(manifest)
    assert summary["model"]["name"] == "deploy" and summary["model"]["version"] == "1.0.0"
    assert [(c["class_id"], c["name"], c["ground_truth"]) for c in summary["classes"]] == [
        (0, "blue box", 2),
        (1, "yellow box", 2),
    ]
    for item in summary["classes"]:
        assert item["true_positives"] + item["false_positives"] <= item["detections"]
        assert item["ap"] is not None and 0.0 <= item["ap"] <= 1.0
    assert 0.0 <= summary["mAP"] <= 1.0
    assert summary["mAP"] == pytest.approx(np.mean([c["ap"] for c in summary["classes"]]))
    assert pdf_pages(report) == 3
    assert [p.name for p in report.parent.iterdir()] == ["report.pdf"]  # no temp file left beside it


def test_table_names_each_class_and_the_map(tmp_path: Path, capsys: pytest.CaptureFixture[str], deploy: Path) -> None:
    code, out, _ = run_cli(capsys, "evaluate", str(deploy), str(write_data(tmp_path)))
    assert code == 0
    lines = out.splitlines()
    assert "3 images" in lines[0] and "VOC07 11-point" in lines[0]
    assert lines[1].split() == ["class", "true", "boxes", "detections", "TP", "FP", "AP"]
    assert lines[3].startswith("blue box") and lines[4].startswith("yellow box")
    assert re.match(r"mAP\s+\d\.\d{4}$", lines[5])


def ground_truth_detector(records: list[Record], names: tuple[str, ...]) -> FakeDetector:
    """Answers each image (in manifest order) with its own true boxes, score 0.9."""

    def script(call: int) -> list[Detection]:
        record = records[call]
        result = []
        for box in record.boxes:
            corners = (box.left, box.top, box.left + box.width, box.top + box.height)
            normalised = (corners[0] / record.width, corners[1] / record.height,
                          corners[2] / record.width, corners[3] / record.height)
            result.append(Detection(names[box.class_id], box.class_id, 0.9, corners, normalised))
        return result

    return FakeDetector(script=script)


def test_a_detector_returning_the_ground_truth_scores_one(tmp_path: Path, deploy: Path) -> None:
    records, _, _ = io.read_records([str(write_data(tmp_path))], None, skip_invalid=False)
    detector = ground_truth_detector(records, NAMES)
    detector.info = read_model_info(deploy)
    result = evaluate(records, detector)
    assert result.mean_ap == pytest.approx(1.0)
    assert [(c.ground_truth, c.true_positives, c.false_positives) for c in result.classes.values()] == [
        (2, 2, 0),
        (2, 2, 0),
    ]


def assert_one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cloud-training: error: "), err
    return lines[0]


def test_class_names_that_disagree_with_the_model_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], deploy: Path
) -> None:
    manifest = write_data(tmp_path, class_names=("yellow box", "blue box"))
    message = assert_one_line_error(capsys, "evaluate", str(deploy), str(manifest))
    assert "class-map says class 0 is 'yellow box' but model deploy calls it 'blue box'" in message


def test_a_missing_model_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = assert_one_line_error(capsys, "evaluate", str(tmp_path / "nope"), str(write_data(tmp_path)))
    assert "model folder not found" in message


def test_an_existing_report_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str], deploy: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"old")
    manifest = str(write_data(tmp_path))
    assert "already exists" in assert_one_line_error(capsys, "evaluate", str(deploy), manifest, "--report", str(report))
    assert report.read_bytes() == b"old"
    code, _, _ = run_cli(capsys, "evaluate", str(deploy), manifest, "--report", str(report), "--force")
    assert code == 0 and pdf_pages(report) == 3
