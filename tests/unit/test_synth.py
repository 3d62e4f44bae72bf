"""``synth``: deterministic photo-like frames whose labels match the pixels, Ground Truth manifests as a one-class
job writes them, a video that reads back, and a set that ``manifest prepare`` turns into two classes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud_training.cli import main
from cloud_training.synth.dataset import plan
from cloud_training.synth.scene import render
from cloud_training.synth.video import render_video


def test_plan_halves_colours_and_names_frames_like_the_sample():
    plans = plan(301, seed=4)
    assert [p.color for p in plans].count("blue") == 150
    assert plans[0].name == "blue_box_1_000001.jpg"
    assert plans[149].name == "blue_box_1_000150.jpg"
    assert plans[150].name == "yellow_box_1_000001.jpg"
    assert plan(301, seed=4) == plans
    assert plan(301, seed=5) != plans
    assert not any(p.discard and p.relabel for p in plans)
    assert all(p.boxes > 0 for p in plans if p.discard or p.relabel)


def test_render_is_deterministic_and_seed_dependent():
    first, boxes = render(np.random.default_rng([1, 2]), 160, 120, "blue", 2)
    again, boxes_again = render(np.random.default_rng([1, 2]), 160, 120, "blue", 2)
    other, _ = render(np.random.default_rng([1, 3]), 160, 120, "blue", 2)
    assert first.shape == (120, 160, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again) and boxes == boxes_again
    assert not np.array_equal(first, other)


HUE_BANDS = {"blue": (88, 132), "yellow": (12, 42)}


@pytest.mark.parametrize("color", ["blue", "yellow"])
def test_boxes_are_large_inside_the_frame_and_of_their_colour(color):
    width, height = 320, 240
    sizes = []
    for index in range(40):
        image, boxes = render(np.random.default_rng([7, index]), width, height, color, 2)
        assert 1 <= len(boxes) <= 2
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        for xmin, ymin, xmax, ymax in boxes:
            assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height
            sizes.append(max((xmax - xmin) / width, (ymax - ymin) / height))
            # the middle of the box's lower half is its front face: it must be clearly the labelled colour
            cx, cy = (xmin + xmax) // 2, ymin + 3 * (ymax - ymin) // 4
            patch = hsv[cy - 2 : cy + 3, cx - 2 : cx + 3].reshape(-1, 3)
            hue, saturation = np.median(patch[:, 0]), np.median(patch[:, 1])
            low, high = HUE_BANDS[color]
            assert low <= hue <= high, (index, hue)
            assert saturation >= 90, (index, saturation)
    assert min(sizes) >= 0.08 and max(sizes) <= 0.9
    assert np.median(sizes) > 0.2


def test_empty_frames_have_no_boxes():
    _, boxes = render(np.random.default_rng(0), 160, 120, "yellow", 0)
    assert boxes == []


def digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "synth.json"
    }


def test_synth_writes_a_labelling_project_that_prepare_turns_into_two_classes(tmp_path, capsys):
    out = tmp_path / "synth"
    assert (
        main(["synth", "--out", str(out), "--images", "60", "--seed", "11", "--size", "160x120", "--workers", "1"]) == 0
    )
    assert "blue" in capsys.readouterr().out
    images = sorted(p.name for p in (out / "images").iterdir())
    assert len(images) == 60 and images[0] == "blue_box_1_000001.jpg"
    manifests = out / "manifests"
    assert sorted(p.name for p in manifests.iterdir()) == [
        "blue-box-job.output.manifest", "discard.txt", "relabel-job.output.manifest", "yellow-box-job.output.manifest"
    ]  # fmt: skip
    blue = [json.loads(line) for line in (manifests / "blue-box-job.output.manifest").read_text().splitlines()]
    assert len(blue) == 30
    for line in blue:
        assert list(line) == ["source-ref", "color", "object", "bb", "bb-metadata"]
        assert (line["color"], line["object"]) == ("blue", "box")
        assert list(line["bb-metadata"]) == [
            "job-name",
            "class-map",
            "human-annotated",
            "objects",
            "creation-date",
            "type",
        ]
        assert line["bb-metadata"]["job-name"] == "labeling-job/blue-box-job"
        assert line["bb"]["image_size"] == [{"width": 160, "depth": 3, "height": 120}]
        annotations = line["bb"]["annotations"]
        assert all(
            a["class_id"] == 0 and list(a) == ["class_id", "width", "top", "height", "left"] for a in annotations
        )
        assert line["bb-metadata"]["class-map"] == ({"0": "storage box"} if annotations else {})
        assert len(line["bb-metadata"]["objects"]) == len(annotations)
        assert (manifests / line["source-ref"]).resolve().is_file()
    summary = json.loads((out / "synth.json").read_text())
    prepared = tmp_path / "prepared"
    discard = str(manifests / "discard.txt")
    assert main(["manifest", "prepare", str(manifests), "--out", str(prepared), "--discard", discard,
                 "--class-from", "color,object", "--class-map", "blue box=0,yellow box=1", "--check-images",
                 "--validation-fraction", "0.2"]) == 0  # fmt: skip
    report = json.loads((prepared / "report.json").read_text())
    assert report["read"] == 60 + summary["relabelled"]
    assert report["replaced"] == summary["relabelled"]
    assert report["discarded"] == summary["discarded"]
    assert report["kept"] == 60 - summary["discarded"]
    assert report["class_map"] == {"0": "blue box", "1": "yellow box"}
    assert set(report["splits"]["validation"]["classes"]) == {"blue box", "yellow box"}


def test_synth_is_deterministic_whatever_the_worker_count(tmp_path):
    base = ["synth", "--images", "20", "--seed", "5", "--size", "96x64"]
    assert main([*base, "--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    assert main([*base[:-4], "--seed", "6", "--size", "96x64", "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_synth_refuses_a_non_empty_out_without_force(tmp_path, capsys):
    out = tmp_path / "synth"
    out.mkdir()
    (out / "something").write_text("x")
    assert main(["synth", "--out", str(out), "--images", "2", "--size", "64x64", "--workers", "1"]) == 2
    assert "not empty (pass --force" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["something"]
    assert main(["synth", "--out", str(out), "--images", "2", "--size", "64x64", "--workers", "1", "--force"]) == 0
    assert (out / "synth.json").is_file() and (out / "something").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".synth-partial")]


def read_video(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    for _ in range(10_000):
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def test_video_reads_back_with_the_frames_written(tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    assert main(["synth", "--video", str(video), "--frames", "24", "--size", "128x96", "--seed", "2"]) == 0
    assert "24 frames" in capsys.readouterr().out
    frames = read_video(video)
    assert len(frames) == 24
    assert frames[0].shape == (96, 128, 3)


def test_video_boxes_move_through_the_scene(tmp_path):
    path = str(tmp_path / "clip.mp4")
    truth = render_video(path, seed=3, frames=40, width=160, height=120)
    frames = read_video(Path(path))
    with_boxes = [index for index, boxes in enumerate(truth) if boxes]
    assert len(with_boxes) >= 10
    positions = {tuple(truth[index][0]) for index in with_boxes}
    assert len(positions) >= 10  # the boxes are not standing still
    # where a box is, the picture differs from a frame where no box is there
    first = with_boxes[len(with_boxes) // 2]
    xmin, ymin, xmax, ymax = truth[first][0]
    empty = [i for i, boxes in enumerate(truth) if all(b[2] <= xmin or b[0] >= xmax for b in boxes)]
    assert empty, "with this seed some frame has no box over that spot"
    region = (slice(ymin, ymax), slice(xmin, xmax))
    difference = np.abs(frames[first][region].astype(int) - frames[empty[0]][region].astype(int)).mean()
    assert difference > 10


def test_bad_size_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--out", "x", "--size", "640by480"])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
