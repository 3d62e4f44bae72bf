"""``manifest from-samples`` on literal sidecars in a real folder (the layout the devices upload): the Ground Truth
line an adjustment job reads, each filter, and what is skipped and why."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from cloud_training.cli import main
from cloud_training.errors import ManifestError
from cloud_training.manifest.samples import Filters, Sample, from_samples, manifest_line, select

CLASSES = ["blue box", "yellow box"]


def sidecar(device: str = "cam-1", day: str = "2026-12-04", dets: list[tuple[str, float]] | None = None,
            classes: list[str] | None = None, stem: str = "a") -> dict:
    return {"schema": "edge-runtime/sample/1", "device": device, "source": "rtsp://cam", "seq": 7,
            "captured_at": f"{day}T10:00:00.000Z", "reasons": ["uncertain"],
            "model": {"name": "demo", "version": "1", "digest": "ab", "classes": classes or CLASSES},
            "image": {"file": f"{stem}.jpg", "width": 640, "height": 480},
            "detections": [{"label": label, "class_id": CLASSES.index(label), "score": score,
                            "box": [-3.2, 10.4, 120.6, 700.0]} for label, score in (dets or [("yellow box", 0.58)])]}


def write(root: Path, data: dict, stem: str, with_image: bool = True) -> None:
    folder = root / data["device"] / data["captured_at"][:10]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps({**data, "image": {**data["image"], "file": f"{stem}.jpg"}}))
    if with_image:
        (folder / f"{stem}.jpg").write_bytes(b"\xff\xd8jpeg")


def test_a_sample_becomes_an_object_detection_line_with_clipped_pixel_boxes() -> None:
    line = manifest_line(Sample("s.json", "s3://b/s.jpg", sidecar()), "bb", dict(enumerate(CLASSES)), "2026-12-05")
    assert line["source-ref"] == "s3://b/s.jpg"
    assert line["bb"] == {"annotations": [{"class_id": 1, "left": 0, "top": 10, "width": 121, "height": 470}],
                          "image_size": [{"width": 640, "height": 480, "depth": 3}]}
    meta = line["bb-metadata"]
    assert meta["type"] == "groundtruth/object-detection" and meta["human-annotated"] == "no"
    assert meta["class-map"] == {"1": "yellow box"} and meta["objects"] == [{"confidence": 0.58}]
    assert line["device"] == "cam-1" and line["frame"] == 7 and "classes" not in line["model"]


def test_filters_each_say_why_a_sample_was_left() -> None:
    samples = [Sample(f"{i}.json", f"{i}.jpg", data) for i, data in enumerate([
        sidecar(device="cam-2"),
        sidecar(day="2026-11-01"),
        sidecar(dets=[("blue box", 0.58)]),
        sidecar(dets=[("yellow box", 0.95)]),
        sidecar(dets=[("yellow box", 0.95), ("yellow box", 0.4)]),
    ])]
    filters = Filters(devices=("cam-1",), since=dt.date(2026, 12, 1), classes=("yellow box",), min_score=0.3,
                      max_score=0.7)
    lines, summary = select(samples, filters, "bb", "2026-12-05")
    assert len(lines) == 1 and summary.taken == 1 and summary.found == 5
    assert dict(summary.skipped) == {"device": 1, "date": 1, "class": 1, "score": 1}
    assert summary.boxes == {"yellow box": 2} and summary.class_map == {0: "blue box", 1: "yellow box"}


def test_samples_of_models_with_different_classes_are_refused() -> None:
    samples = [Sample("a.json", "a.jpg", sidecar()), Sample("b.json", "b.jpg", sidecar(classes=["cat", "dog"]))]
    with pytest.raises(ManifestError, match="different classes"):
        select(samples, Filters(), "bb", "now")


def test_reading_a_folder_skips_half_uploaded_and_foreign_files(tmp_path: Path) -> None:
    write(tmp_path, sidecar(), "one")
    write(tmp_path, sidecar(device="cam-2"), "two", with_image=False)  # the JPEG never arrived
    (tmp_path / "notes.json").write_text('{"schema": "something-else"}')
    (tmp_path / "broken.json").write_text("{")
    lines, summary = from_samples(str(tmp_path), Filters())
    assert len(lines) == 1 and summary.found == 4 and summary.taken == 1
    assert dict(summary.skipped) == {"image missing": 1, "not a sample": 1, "unreadable sidecar": 1}
    assert json.loads(lines[0])["source-ref"] == str(tmp_path / "cam-1" / "2026-12-04" / "one.jpg")


def test_the_command_writes_manifest_categories_and_summary_and_refuses_nothing_taken(tmp_path: Path, capsys) -> None:
    write(tmp_path / "in", sidecar(), "one")
    assert main(["manifest", "from-samples", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    assert "found 1, taken 1" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "label-categories.json").read_text())["labels"][0] == {"label": "blue box"}
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["devices"] == {"cam-1": 1}
    assert main(["manifest", "from-samples", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["manifest", "from-samples", str(tmp_path / "in"), "--out", str(tmp_path / "o2"),
                 "--device", "nobody"]) == 2
    assert "no sample passes the filters" in capsys.readouterr().err
