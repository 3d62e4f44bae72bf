"""prepare, augment and synth with s3:// inputs and outputs, against moto's S3 server through real boto3 calls."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from cloud_training import storage
from cloud_training.cli import main
from cloud_training.errors import StorageError
from tests.support.groundtruth import gt_line
from tests.support.shared import aws_sample


def jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


def manifest_text(lines: list) -> str:
    return "".join(
        (line if isinstance(line, str) else json.dumps(line, separators=(",", ":"))) + "\n" for line in lines
    )


def test_storage_reads_writes_lists_and_reports_missing_objects(s3_bucket):
    target = s3_bucket.uri("a/b/file.txt")
    storage.write_text(target, "hello")
    assert storage.read_text(target) == "hello"
    assert storage.exists(target) and not storage.exists(s3_bucket.uri("a/b/nope.txt"))
    s3_bucket.put("a/b/other.manifest", "{}")
    s3_bucket.put("a/b/deeper/x.manifest", "{}")
    assert storage.list_files(s3_bucket.uri("a/b/"), ".manifest") == [s3_bucket.uri("a/b/other.manifest")]
    with pytest.raises(StorageError, match=r"nope.txt: no such object"):
        storage.read_bytes(s3_bucket.uri("a/b/nope.txt"))
    with pytest.raises(StorageError, match="no such bucket"):
        storage.read_bytes("s3://no-such-bucket-here/x")


def test_prepare_reads_the_real_jobs_from_s3_and_writes_outputs_there(s3_bucket, capsys):
    manifests = aws_sample() / "manifests"
    for path in sorted(manifests.iterdir()):
        s3_bucket.put(f"groundtruth/{path.name}", path.read_bytes())
    code = main(
        ["manifest", "prepare", s3_bucket.uri("groundtruth/"), "--out", s3_bucket.uri("prepared"),
         "--discard", s3_bucket.uri("groundtruth/discard.txt"), "--class-from", "color,object",
         "--class-map", "blue box=0,yellow box=1", "--validation-fraction", "0.1"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert s3_bucket.keys("prepared/") == [
        "prepared/report.json",
        "prepared/train.manifest",
        "prepared/validation.manifest",
    ]
    report = json.loads(s3_bucket.get("prepared/report.json"))
    assert (report["read"], report["discarded"], report["kept"]) == (1310, 6, 1304)
    train, validation = (
        jsonl(s3_bucket.get("prepared/train.manifest")),
        jsonl(s3_bucket.get("prepared/validation.manifest")),
    )
    assert len(train) + len(validation) == 1304 and abs(len(validation) - 130) <= 2
    assert all(line["source-ref"].startswith("s3://gg-sagemaker-object-detection-blog/") for line in train)


def test_prepare_with_a_bad_line_on_s3_writes_nothing(s3_bucket, capsys):
    lines = [gt_line(f"s3://b/{i}.jpg", [(1, 1, 5, 5)], color=c) for i, c in enumerate(["blue", "yellow"] * 3)]
    lines.insert(3, gt_line("s3://b/bad.jpg", [(630, 1, 50, 5)]))
    source = s3_bucket.put("jobs/job.manifest", manifest_text(lines))
    assert main(["manifest", "prepare", source, "--out", s3_bucket.uri("out/"), "--class-from", "color,object"]) == 2
    assert f"{source}:4: box 1" in capsys.readouterr().err
    assert s3_bucket.keys("out/") == []


def png(width: int, height: int, boxes: list[tuple[int, int, int, int]]) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    for left, top, w, h in boxes:
        image[top : top + h, left : left + w] = 255
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


def test_augment_reads_and_writes_images_and_manifests_on_s3(s3_bucket, capsys):
    specs = {"a": [(5, 10, 20, 15)], "b": [(40, 2, 30, 8)], "c": []}
    lines = []
    for name, boxes in specs.items():
        s3_bucket.put(f"data/images/{name}.png", png(80, 60, boxes))
        lines.append(gt_line(f"images/{name}.png", boxes, size=(80, 60)))  # relative to the manifest on S3
    source = s3_bucket.put("data/train.manifest", manifest_text(lines))
    out = s3_bucket.uri("aug/train-augmented.manifest")
    assert main(["augment", source, "--out", out, "--images-out", s3_bucket.uri("aug/images/")]) == 0, (
        capsys.readouterr()
    )
    assert len(s3_bucket.keys("aug/images/")) == 12
    written = jsonl(s3_bucket.get("aug/train-augmented.manifest"))
    assert len(written) == 15
    assert written[0]["source-ref"] == s3_bucket.uri("data/images/a.png")
    for line in written:
        assert line["source-ref"].startswith(f"s3://{s3_bucket.name}/")
        key = line["source-ref"].split("/", 3)[3]
        image = cv2.imdecode(np.frombuffer(s3_bucket.get(key), np.uint8), cv2.IMREAD_COLOR)
        size = line["bb"]["image_size"][0]
        assert image.shape[:2] == (size["height"], size["width"])
        drawn = np.zeros(image.shape[:2], bool)
        for a in line["bb"]["annotations"]:
            drawn[a["top"] : a["top"] + a["height"], a["left"] : a["left"] + a["width"]] = True
        assert np.array_equal(image[:, :, 0] > 127, drawn)
    assert json.loads(s3_bucket.get("aug/train-augmented.report.json"))["images_written"] == 12
    # without --images-out the new images go beside the originals, on S3 too
    assert main(["augment", source, "--out", s3_bucket.uri("aug2.manifest"), "--transforms", "x-flip"]) == 0
    assert s3_bucket.uri("data/images/b_xflip.png") in {s3_bucket.uri(k) for k in s3_bucket.keys("data/images/")}


def test_augment_with_an_unreadable_s3_image_uploads_nothing(s3_bucket, capsys):
    s3_bucket.put("data/a.png", png(32, 32, [(1, 1, 4, 4)]))
    lines = [gt_line("a.png", [(1, 1, 4, 4)], size=(32, 32)), gt_line("missing.png", [], size=(32, 32))]
    source = s3_bucket.put("data/train.manifest", manifest_text(lines))
    code = main(["augment", source, "--out", s3_bucket.uri("aug/t.manifest"), "--images-out", s3_bucket.uri("aug/")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{source}:2: cannot read image" in err and "no such object" in err
    assert s3_bucket.keys("aug/") == []


def test_synth_to_s3_then_prepare_from_s3_with_image_checks(s3_bucket, capsys):
    out = s3_bucket.uri("synth")
    video = s3_bucket.uri("video/clip.mp4")
    assert main(["synth", "--out", out, "--images", "16", "--seed", "3", "--size", "96x64", "--workers", "1",
                 "--video", video, "--frames", "8"]) == 0  # fmt: skip
    assert len(s3_bucket.keys("synth/images/")) == 16
    assert "synth/manifests/discard.txt" in s3_bucket.keys("synth/manifests/")
    assert s3_bucket.keys("video/") == ["video/clip.mp4"]
    first = jsonl(s3_bucket.get("synth/manifests/blue-box-job.output.manifest"))[0]
    assert first["source-ref"] == s3_bucket.uri("synth/images/blue_box_1_000001.jpg")
    capsys.readouterr()
    assert main(["manifest", "prepare", s3_bucket.uri("synth/manifests/"), "--out", s3_bucket.uri("prepared/"),
                 "--discard", s3_bucket.uri("synth/manifests/discard.txt"), "--class-from", "color,object",
                 "--check-images", "--validation-fraction", "0.25"]) == 0, capsys.readouterr().err  # fmt: skip
    report = json.loads(s3_bucket.get("prepared/report.json"))
    assert report["read"] >= 16 and report["invalid"] == 0
    # a second synth into the same prefix needs --force
    assert main(["synth", "--out", out, "--images", "2", "--size", "64x64", "--workers", "1"]) == 2
    assert "--force" in capsys.readouterr().err
