"""``edge-runtime detect --annotate``: boxes drawn where the detections are, in their class's colour, with labels."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.annotate import annotate, annotated_path, class_color, line_width
from edge_runtime.cli import main
from edge_runtime.detectors.base import Detection
from tests.support.shared import REPO_ROOT, aws_sample


def detection(class_id: int, score: float, box: tuple[float, float, float, float], size: tuple[int, int]) -> Detection:
    width, height = size
    normalised = (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
    return Detection(["blue box", "yellow box"][class_id], class_id, score, box, normalised)


def test_the_box_is_drawn_on_its_edges_in_its_class_colour_and_nowhere_else() -> None:
    image = np.full((120, 160, 3), 90, dtype=np.uint8)
    drawn = annotate(image, [detection(0, 0.9, (40, 50, 120, 100), (160, 120)),
                             detection(1, 0.6, (5, 60, 30, 110), (160, 120))])
    assert np.array_equal(image, np.full((120, 160, 3), 90, dtype=np.uint8)), "the input is left as it was"
    blue, yellow = class_color(0), class_color(1)
    assert blue != yellow
    for y, x in ((75, 40), (75, 120), (100, 80)):  # left, right and bottom edges of the first box
        assert tuple(int(v) for v in drawn[y, x]) == blue
    assert tuple(int(v) for v in drawn[100, 5]) == yellow  # the second box's left edge
    assert tuple(int(v) for v in drawn[75, 80]) == (90, 90, 90)  # inside the box: the image
    assert tuple(int(v) for v in drawn[20, 150]) == (90, 90, 90)  # far from any box: the image
    band = drawn[40:49, 42:60].reshape(-1, 3)  # the label band above the first box: its colour and the text's ink
    assert (band == np.array(blue)).all(axis=1).mean() > 0.3
    assert not (band == 90).all(axis=1).any()
    changed = np.any(drawn != image, axis=2)
    assert not changed[:, 140:].any() and not changed[112:, :].any()  # right of the label, below the boxes


def test_a_name_shared_by_two_inputs_gets_a_suffix(tmp_path: Path) -> None:
    taken: set[str] = set()
    assert annotated_path(tmp_path, "a/frame.png", taken).name == "frame.png"
    assert annotated_path(tmp_path, "b/frame.png", taken).name == "frame-2.png"
    assert annotated_path(tmp_path, "c/frame.webp", taken).name == "frame.jpg"


def test_detect_annotates_a_real_aws_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = aws_sample() / "images" / "blue_box_1_000133.jpg"
    out = tmp_path / "annotated"
    code = main(["detect", "--model", str(REPO_ROOT / "models" / "demo"), "--score-threshold", "0.3",
                 "--annotate", str(out), str(frame)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["annotated"] == str(out / frame.name)
    original, drawn = cv2.imread(str(frame)), cv2.imread(result["annotated"])
    assert drawn.shape == original.shape and result["detections"]
    thickness = line_width(result["width"], result["height"])
    for item in result["detections"]:
        x0, y0, x1, y1 = (round(value) for value in item["box"])
        colour = np.array(class_color(item["class_id"]), dtype=np.int16)
        middle = (y0 + y1) // 2
        for x in (x0, x1):  # the left and right edges, at mid height, are the class's colour (JPEG: roughly)
            pixel = drawn[middle, x].astype(np.int16)
            assert np.abs(pixel - colour).max() < 40, (item["label"], x, pixel)
            assert np.abs(original[middle, x].astype(np.int16) - colour).max() > np.abs(pixel - colour).max()
        inside = drawn[middle, (x0 + x1) // 2].astype(np.int16) - original[middle, (x0 + x1) // 2]
        assert np.abs(inside).max() < 25, "inside the box the frame is unchanged (up to JPEG)"
        assert thickness >= 2


def test_an_annotate_target_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = aws_sample() / "images" / "yellow_box_1_000086.jpg"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["detect", "--model", str(REPO_ROOT / "models" / "demo"), "--annotate", str(blocker), str(frame)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("edge-runtime: error: --annotate") and len(err.strip().splitlines()) == 1
