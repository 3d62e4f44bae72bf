"""``cloud-training augment`` on local files: 5× lines, images beside the originals or elsewhere, boxes on target."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud_training.cli import main
from tests.support.groundtruth import gt_line, write_manifest

W, H = 80, 60


def make_images(folder: Path, boxes_by_name: dict[str, list[tuple[int, int, int, int]]]) -> list[dict]:
    """PNG images (lossless, so pixels can be compared) with a solid white rectangle per box on black."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, boxes in boxes_by_name.items():
        image = np.zeros((H, W, 3), np.uint8)
        for left, top, width, height in boxes:
            image[top : top + height, left : left + width] = 255
        cv2.imwrite(str(folder / f"{name}.png"), image)
        lines.append(gt_line(f"images/{name}.png", boxes, size=(W, H)))
    return lines


def test_augment_writes_five_times_the_lines_with_boxes_on_the_moved_pixels(tmp_path, capsys):
    data = tmp_path / "data"
    lines = make_images(data / "images", {"a": [(5, 10, 20, 15)], "b": [(50, 2, 30, 8), (0, 40, 10, 20)], "c": []})
    manifest = write_manifest(data / "train.manifest", lines)
    out = tmp_path / "aug" / "train-augmented.manifest"
    assert main(["augment", str(manifest), "--out", str(out)]) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) == 15
    assert [Path(line["source-ref"]).name for line in written[:5]] == [
        "a.png", "a_xflip.png", "a_yflip.png", "a_cw.png", "a_ccw.png"
    ]  # fmt: skip
    for line in written:
        path = (out.parent / line["source-ref"]).resolve()
        image = cv2.imread(str(path))
        assert image is not None, path
        size = line["bb"]["image_size"][0]
        assert image.shape[:2] == (size["height"], size["width"])
        white = image[:, :, 0] > 127
        drawn = np.zeros_like(white)
        for a in line["bb"]["annotations"]:
            assert isinstance(a["left"], int) and list(a) == ["class_id", "width", "top", "height", "left"]
            drawn[a["top"] : a["top"] + a["height"], a["left"] : a["left"] + a["width"]] = True
        assert np.array_equal(white, drawn)
        assert line["color"] == "blue" and line["bb-metadata"]["job-name"] == "labeling-job/test-job"
    rotated = written[3]["bb"]["image_size"][0]
    assert (rotated["width"], rotated["height"]) == (H, W)
    assert (data / "images" / "b_ccw.png").is_file()  # default: beside the originals
    report = json.loads((out.parent / "train-augmented.report.json").read_text())
    assert (report["read"], report["augmented"], report["images_written"], report["lines_written"]) == (3, 3, 12, 15)
    captured = capsys.readouterr()
    assert "images written" in captured.out
    assert "augmenting: 3/3 img (100%)" in captured.err  # a progress line in a log, where no bar can be drawn


def test_images_out_and_a_subset_of_transforms(tmp_path):
    lines = make_images(tmp_path / "images", {"a": [(5, 10, 20, 15)]})
    manifest = write_manifest(tmp_path / "train.manifest", lines)
    out = tmp_path / "aug.manifest"
    elsewhere = tmp_path / "augmented-images"
    assert (
        main(["augment", str(manifest), "--out", str(out), "--images-out", str(elsewhere), "--transforms", "cw"]) == 0
    )
    assert sorted(p.name for p in elsewhere.iterdir()) == ["a_cw.png"]
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["source-ref"] for line in written] == ["images/a.png", "augmented-images/a_cw.png"]
    assert written[1]["bb"]["annotations"][0] | {"class_id": 0} == {
        "class_id": 0, "left": H - 25, "top": 5, "width": 15, "height": 20
    }  # fmt: skip


def test_validation_is_never_augmented(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "validation.manifest", make_images(tmp_path / "images", {"a": []}))
    assert main(["augment", str(manifest), "--out", str(tmp_path / "o.manifest")]) == 2
    assert "validation manifest" in capsys.readouterr().err
    assert not (tmp_path / "o.manifest").exists()


def test_an_unreadable_image_stops_before_anything_is_written(tmp_path, capsys):
    lines = make_images(tmp_path / "images", {"a": [(1, 1, 5, 5)], "b": [(1, 1, 5, 5)], "c": []})
    (tmp_path / "images" / "b.png").write_bytes(b"\x89PNG broken")
    manifest = write_manifest(tmp_path / "train.manifest", lines)
    out = tmp_path / "aug.manifest"
    assert main(["augment", str(manifest), "--out", str(out), "--images-out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{manifest}:2: " in err[0] and "not a readable image" in err[0]
    assert not out.exists() and not (tmp_path / "new").exists()
    assert (
        main(["augment", str(manifest), "--out", str(out), "--images-out", str(tmp_path / "new"), "--skip-invalid"])
        == 0
    )
    report = json.loads((tmp_path / "aug.report.json").read_text())
    assert (report["invalid"], report["augmented"], report["lines_written"]) == (1, 2, 10)


def test_bad_transform_name_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["augment", "x.manifest", "--out", "y.manifest", "--transforms", "spin"])
    assert exited.value.code == 2
    assert "unknown transform spin" in capsys.readouterr().err
