"""The device's ONNX Runtime path on its own: no MXNet, no cloud_training (this file also runs in the numpy-2 edge env).

The demo model's detections on the real AWS frames are compared with ``demo-detections.json``, which MXNet wrote
(``test_onnx_equality.py`` checks MXNet still writes exactly that file), so an environment with numpy 2 and the
newest onnxruntime proves it detects what the reference engine detects. Then MultiBoxDetection's numpy version on
literal arrays, and every way a model or a backend choice can be wrong: one line naming the file or key, exit 2.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_runtime.cli import main
from edge_runtime.config import ModelConfig
from edge_runtime.detectors import create_detector, read_image, resolve_backend
from edge_runtime.detectors.multibox import NMS_BLOCK, decode_boxes, greedy_nms, multibox_detection
from edge_runtime.model import read_model_info
from tests.support.shared import aws_sample

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"
GOLDEN = Path(__file__).with_name("demo-detections.json")
TOLERANCE = 1e-4


def demo_detections(backend: str) -> list[dict[str, Any]]:
    """What ``edge-runtime detect`` reports for the AWS frames at a low threshold (many boxes to compare)."""
    config = ModelConfig.model_validate({"path": str(DEMO), "backend": backend, "score_threshold": 0.05,
                                         "top_k": 100, "warmup_runs": 0})  # fmt: skip
    detector = create_detector(config)
    results = []
    for path in sorted((aws_sample() / "images").glob("*.jpg")):
        found = detector.detect(read_image(path)).detections
        results.append({"image": path.name, "detections": [item.to_dict() for item in found]})
    return results


def test_onnx_runtime_detects_what_mxnet_wrote() -> None:
    golden = json.loads(GOLDEN.read_text())
    got = demo_detections("onnxruntime")
    assert [item["image"] for item in got] == [item["image"] for item in golden]
    total = 0
    for want, have in zip(golden, got):
        assert [d["class_id"] for d in have["detections"]] == [d["class_id"] for d in want["detections"]]
        for a, b in zip(want["detections"], have["detections"]):
            assert abs(a["score"] - b["score"]) <= TOLERANCE
            assert np.abs(np.subtract(a["box_normalized"], b["box_normalized"])).max() <= TOLERANCE
        total += len(want["detections"])
    assert total >= 10  # enough boxes that agreement means something


def test_auto_takes_onnx_runtime_for_the_demo_model() -> None:
    info = read_model_info(DEMO)
    assert info.onnx_path == DEMO / "model.onnx" and resolve_backend("auto", info) == "onnxruntime"


# ---- MultiBoxDetection in numpy, on literal arrays ----------------------------------------------------------


def one_image(probs: list[list[float]], boxes: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cls_prob (classes+1, A) and anchors equal to ``boxes`` with zero offsets (so the decoded box is the anchor)."""
    anchors = np.asarray(boxes, dtype=np.float32)
    return np.asarray(probs, dtype=np.float32).T.copy(), np.zeros(anchors.size, np.float32), anchors


def test_zero_offsets_decode_to_the_anchor_and_clip() -> None:
    anchors = np.array([[0.1, 0.2, 0.5, 0.6], [-0.2, 0.5, 0.4, 1.3]], dtype=np.float32)
    assert np.allclose(decode_boxes(np.zeros(8), anchors, (0.1, 0.1, 0.2, 0.2)), [[0.1, 0.2, 0.5, 0.6],
                                                                                  [0.0, 0.5, 0.4, 1.0]])  # fmt: skip
    # offsets scale by the variances and the anchor size: +1 in x moves the centre by 0.1 x width
    moved = decode_boxes(np.array([1, 0, 0, 0], np.float32), anchors[:1], (0.1, 0.1, 0.2, 0.2), clip=False)
    assert np.allclose(moved, [[0.14, 0.2, 0.54, 0.6]])


def test_best_class_threshold_sort_and_nms_within_a_class() -> None:
    # anchors 0 and 1 overlap (IoU 0.81) and are class 0; anchor 2 overlaps 0 but is class 1; 3 is below threshold
    probs = [[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.2, 0.1, 0.7], [0.995, 0.004, 0.001]]
    boxes = [[0.1, 0.1, 0.5, 0.5], [0.12, 0.12, 0.5, 0.5], [0.1, 0.1, 0.5, 0.52], [0.6, 0.6, 0.9, 0.9]]
    rows = multibox_detection(*one_image(probs, boxes), threshold=0.01, nms_threshold=0.5, force_suppress=False)
    assert rows.shape == (4, 6)
    # sorted by score, ties in anchor order: 0.8 (anchor 0), 0.7 (anchor 1, suppressed by 0), 0.7 (anchor 2, class 1)
    assert rows[:, 0].tolist() == [0, -1, 1, -1]
    assert np.allclose(rows[:3, 1], [0.8, 0.7, 0.7])  # a suppressed row keeps its score, as in MXNet
    assert np.allclose(rows[2, 2:], boxes[2])
    assert np.all(rows[3] == -1)  # below the threshold: not a row at all
    forced = multibox_detection(*one_image(probs, boxes), threshold=0.01, nms_threshold=0.5, force_suppress=True)
    assert forced[:, 0].tolist() == [0, -1, -1, -1]  # across classes too: anchor 2 overlaps anchor 0


def test_topk_cut_and_an_nms_threshold_outside_0_1_leaves_rows_unsorted() -> None:
    probs = [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.0, 0.05, 0.95]]
    boxes = [[0.0, 0.0, 0.2, 0.2], [0.3, 0.3, 0.5, 0.5], [0.6, 0.6, 0.8, 0.8]]
    top2 = multibox_detection(*one_image(probs, boxes), nms_threshold=0.5, nms_topk=2)
    assert top2[:, 0].tolist() == [1, 0, -1] and np.allclose(top2[:2, 1], [0.95, 0.6])
    unsorted = multibox_detection(*one_image(probs, boxes), nms_threshold=0.0, nms_topk=2)
    assert unsorted[:, 0].tolist() == [0, 0, 1]  # MXNet skips sort, top-k and NMS: anchor order


def test_min_score_changes_nothing_a_caller_can_see() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4, 500)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=0)
    centres = rng.uniform(0.1, 0.9, (500, 2))
    anchors = np.concatenate([centres - 0.08, centres + 0.08], axis=1).astype(np.float32)
    offsets = rng.normal(0, 0.5, 2000).astype(np.float32)
    options: dict[str, Any] = {"threshold": 0.01, "nms_threshold": 0.45, "force_suppress": False, "nms_topk": 400}
    full = multibox_detection(probs, offsets, anchors, **options)
    fast = multibox_detection(probs, offsets, anchors, min_score=0.3, **options)
    visible = (full[:, 0] >= 0) & (full[:, 1] >= 0.3)
    assert visible.sum() >= 20
    assert np.array_equal(full[visible], fast[(fast[:, 0] >= 0) & (fast[:, 1] >= 0.3)])


def iou_with(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """The reference: one box against many, as MXNet's CalculateOverlap (0 where the union is not positive)."""
    width = np.maximum(np.float32(0), np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]))
    height = np.maximum(np.float32(0), np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]))
    inter = width * height
    union = (box[2] - box[0]) * (box[3] - box[1]) + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = union - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union <= 0, np.float32(0), inter / union)


@pytest.mark.parametrize("force_suppress", [True, False])
def test_blocked_nms_keeps_exactly_what_the_row_by_row_loop_keeps(force_suppress: bool) -> None:
    # a busy scene: more rows than one block, many overlapping, two classes; the reference is the plain greedy loop
    rng = np.random.default_rng(7)
    count = NMS_BLOCK * 2 + 37
    centres = rng.uniform(0.2, 0.8, (count, 2))
    sizes = rng.uniform(0.05, 0.3, (count, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)
    classes = rng.integers(0, 2, count).astype(np.float32)
    expected = np.ones(count, dtype=bool)
    for row in range(count):
        if expected[row]:
            later = np.arange(row + 1, count)
            if not force_suppress:
                later = later[classes[later] == classes[row]]
            expected[later[iou_with(boxes[row], boxes[later]) >= np.float32(0.45)]] = False
    kept = greedy_nms(boxes, classes, np.float32(0.45), force_suppress)
    assert 10 < kept.sum() < count  # the scene suppresses some rows and keeps others
    assert np.array_equal(kept, expected)


# ---- one line, exit 2, for every bad model or backend --------------------------------------------------------


def copy_of_demo(tmp_path: Path) -> Path:
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    return folder


def detect_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    image = str(next((aws_sample() / "images").glob("*.jpg")))
    assert main(["detect", *args, image]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing half-written
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def rewrite_digest(folder: Path, name: str) -> None:
    import hashlib

    manifest = json.loads((folder / "model.json").read_text())
    data = (folder / name).read_bytes()
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (folder / "model.json").write_text(json.dumps(manifest))


def test_a_corrupt_onnx_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_of_demo(tmp_path)
    (folder / "model.onnx").write_bytes(b"not a protobuf" * 100)
    rewrite_digest(folder, "model.onnx")  # digests agree: the file itself is bad
    line = detect_error(capsys, "--model", str(folder), "--backend", "onnxruntime")
    assert f"{folder / 'model.onnx'}: cannot load as an ONNX model" in line


def test_an_onnx_file_that_does_not_match_model_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_of_demo(tmp_path)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    line = detect_error(capsys, "--model", str(folder))
    assert f"{folder / 'model.onnx'}: SHA-256 digest mismatch" in line


def test_an_onnx_graph_of_another_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_of_demo(tmp_path)
    manifest = json.loads((folder / "model.json").read_text())
    manifest["num_classes"], manifest["class_names"] = 3, ["a", "b", "c"]
    (folder / "model.json").write_text(json.dumps(manifest))
    line = detect_error(capsys, "--model", str(folder), "--backend", "onnxruntime")
    assert "the graph predicts 2 class(es) but model.json says num_classes 3" in line


def test_an_unknown_backend_names_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    line = detect_error(capsys, "--model", str(DEMO), "--set", "model.backend=tensorflow")
    assert line.startswith("edge-runtime: error: model.backend") and "tensorflow" in line


def test_a_backend_that_is_not_installed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mxnet" else real(name, *a))
    line = detect_error(capsys, "--model", str(DEMO), "--backend", "mxnet")
    assert "model.backend: mxnet is not installed here" in line and "ssd-greengrass[mxnet]" in line


def test_no_onnx_and_no_mxnet_says_how_to_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import importlib.util

    folder = copy_of_demo(tmp_path)
    manifest = json.loads((folder / "model.json").read_text())
    del manifest["files"]["model.onnx"]
    (folder / "model.json").write_text(json.dumps(manifest))
    (folder / "model.onnx").unlink()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mxnet" else real(name, *a))
    line = detect_error(capsys, "--model", str(folder))
    assert "has no model.onnx" in line and "cloud-training export" in line


def test_int8_without_its_file_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    line = detect_error(capsys, "--model", str(DEMO), "--precision", "int8")
    assert "model.int8.onnx" in line


def test_the_edge_path_never_imports_mxnet(tmp_path: Path) -> None:
    """In a fresh interpreter, the daemon's modules and an ONNX detection leave MXNet unimported."""
    import subprocess

    code = (
        "import sys; from edge_runtime import cli, daemon; from edge_runtime.detectors import create_detector;"
        "from edge_runtime.config import ModelConfig; import numpy as np;"
        f"d = create_detector(ModelConfig(path={str(DEMO)!r})); d.detect(np.zeros((120, 160, 3), np.uint8));"
        "print(d.backend, 'mxnet' in sys.modules, 'cloud_training' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["onnxruntime", "False", "False"]


def test_a_missing_video_creates_no_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jsonl"
    code = main(["run", "--model", str(DEMO), "--source", str(tmp_path / "missing.mp4"), "--publish", "file",
                 "--set", f"publish.file.path={json.dumps(str(out))}"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.strip() == f"edge-runtime: error: {tmp_path / 'missing.mp4'}: video file not found"
    assert not out.exists()  # nothing created on bad input


def test_a_folder_without_one_readable_image_exits_2_naming_it(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["run", "--model", str(DEMO), "--source", str(folder)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"edge-runtime: error: {folder}: none of its 1 image file(s) could be read"


def test_an_output_path_under_a_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Was: 'cannot open for writing (File exists)'."""
    (tmp_path / "notes").write_text("a file, not a folder")
    out = tmp_path / "notes" / "out.jsonl"
    image_folder = aws_sample() / "images"
    code = main(["run", "--model", str(DEMO), "--source", str(image_folder), "--publish", "file",
                 "--set", f"publish.file.path={json.dumps(str(out))}"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"edge-runtime: error: {out}: cannot open for writing ({tmp_path / 'notes'} is a file, not a folder)")

    from edge_runtime.errors import PublishError
    from edge_runtime.publishers.outbox import Outbox

    with pytest.raises(PublishError, match=r"cannot use as the outbox \(.*notes is a file, not a folder\)"):
        Outbox(tmp_path / "notes" / "sub" / "outbox.sqlite3", 10, 1000)
