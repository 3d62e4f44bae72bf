"""``cloud-training manifest prepare`` end to end on local files: the real AWS sample jobs and crafted bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud_training.cli import main
from tests.support.groundtruth import gt_line, write_manifest
from tests.support.shared import aws_sample


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_four_real_jobs_give_the_sample_counts(tmp_path, capsys):
    manifests = aws_sample() / "manifests"
    jobs = sorted(str(p) for p in manifests.glob("*.output.manifest"))
    assert len(jobs) == 4
    out = tmp_path / "prepared"
    code = main(
        [
            "manifest",
            "prepare",
            *jobs,
            "--out",
            str(out),
            "--discard",
            str(manifests / "discard.txt"),
            "--class-from",
            "color,object",
            "--class-map",
            "blue box=0,yellow box=1",
            "--validation-fraction",
            "0.1",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert (report["read"], report["discarded"], report["kept"], report["invalid"]) == (1310, 6, 1304, 0)
    train, validation = read_lines(out / "train.manifest"), read_lines(out / "validation.manifest")
    assert len(train) + len(validation) == 1304
    assert abs(len(validation) - 130) <= 2
    assert report["splits"]["train"]["images"] == len(train)
    discarded = {line.strip() for line in (manifests / "discard.txt").read_text().splitlines() if line.strip()}
    for line in train + validation:
        stem = Path(line["source-ref"]).stem
        assert stem not in discarded
        expected = 0 if line["color"] == "blue" else 1
        assert all(a["class_id"] == expected for a in line["bb"]["annotations"])
        assert line["bb-metadata"]["class-map"] == {"0": "blue box", "1": "yellow box"}
    for side in ("train", "validation"):
        assert set(report["splits"][side]["classes"]) == {"blue box", "yellow box"}
    printed = capsys.readouterr().out
    assert "1174" in printed and "1304" in printed


def test_output_lines_differ_from_input_only_where_relabelled(tmp_path):
    source = aws_sample() / "manifests" / "yellow-box-small-job-public-yellow-box-small-job-public.output.manifest"
    out = tmp_path / "out"
    assert (
        main(
            [
                "manifest",
                "prepare",
                str(source),
                "--out",
                str(out),
                "--class-from",
                "color,object",
                "--class-map",
                "blue box=0,yellow box=1",
                "--validation-fraction",
                "0.2",
            ]
        )
        == 0
    )
    originals = {json.loads(line)["source-ref"]: line for line in source.read_text().splitlines()}
    written = (out / "train.manifest").read_text().splitlines() + (out / "validation.manifest").read_text().splitlines()
    assert len(written) == len(originals)
    for line in written:
        data = json.loads(line)
        expected = json.loads(originals[data["source-ref"]])
        for annotation in expected["bb"]["annotations"]:
            annotation["class_id"] = 1
        expected["bb-metadata"]["class-map"] = {"0": "blue box", "1": "yellow box"}
        # same keys, same order, same compact separators as Ground Truth wrote
        assert line == json.dumps(expected, separators=(",", ":"))


def jobs(tmp_path: Path, lines_a: list, lines_b: list | None = None) -> list[str]:
    paths = [write_manifest(tmp_path / "in" / "job-a.manifest", lines_a)]
    if lines_b is not None:
        paths.append(write_manifest(tmp_path / "in" / "job-b.manifest", lines_b))
    return [str(p) for p in paths]


def many(color: str, count: int, start: int = 0) -> list[dict]:
    return [gt_line(f"s3://b/{color}_{i}.jpg", [(10, 10, 100, 80)], color=color) for i in range(start, start + count)]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ('{"source-ref": "s3://b/x.jpg"', "not valid JSON"),
        (json.dumps({"bb": {}, "bb-metadata": {}}), "missing 'source-ref'"),
        (gt_line("s3://b/x.jpg", [(10, 10, -4, 5)]), "non-positive size"),
        (gt_line("s3://b/x.jpg", [(600, 10, 100, 5)]), "lies outside the 640x480 image"),
        (gt_line("s3://b/x.jpg", [(1, 1, 5, 5)], color="green"), "unknown class 'green box'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, bad, problem):
    lines = [*many("blue", 5), bad, *many("yellow", 5)]
    paths = jobs(tmp_path, lines)
    out = tmp_path / "out"
    code = main(
        [
            "manifest",
            "prepare",
            *paths,
            "--out",
            str(out),
            "--class-from",
            "color,object",
            "--class-map",
            "blue box=0,yellow box=1",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"cloud-training: error: {paths[0]}:6: ")
    assert problem in err[0]
    assert not out.exists()


def test_missing_image_size_and_label_attribute_name_the_line(tmp_path, capsys):
    no_size = gt_line("s3://b/x.jpg")
    del no_size["bb"]["image_size"]
    no_label = gt_line("s3://b/y.jpg")
    del no_label["bb"]
    for bad, problem in ((no_size, "'bb.image_size' is missing"), (no_label, "missing label attribute 'bb'")):
        paths = jobs(tmp_path, [*many("blue", 3), bad])
        assert main(["manifest", "prepare", *paths, "--out", str(tmp_path / "o"), "--label-attribute", "bb"]) == 2
        err = capsys.readouterr().err
        assert f"{paths[0]}:4: {problem}" in err


def test_skip_invalid_skips_and_counts_bad_lines(tmp_path):
    lines = [
        *many("blue", 6),
        "not json",
        gt_line("s3://b/z.jpg", [(1, 1, 5, 5)], color="green"),
        *many("yellow", 6),
    ]
    out = tmp_path / "out"
    assert (
        main(
            [
                "manifest",
                "prepare",
                *jobs(tmp_path, lines),
                "--out",
                str(out),
                "--class-from",
                "color,object",
                "--class-map",
                "blue box=0,yellow box=1",
                "--skip-invalid",
                "--validation-fraction",
                "0.25",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert (report["read"], report["invalid"], report["kept"]) == (14, 2, 12)
    assert [item["where"].rsplit(":", 1)[1] for item in report["invalid_lines"]] == ["7", "8"]
    assert report["splits"]["validation"]["images"] == 3


def test_later_job_wins_and_empty_images_are_kept_unless_dropped(tmp_path):
    first = [*many("blue", 4), *many("yellow", 4), gt_line("s3://b/empty.jpg", [], color="blue")]
    relabelled = [gt_line("s3://b/blue_0.jpg", [(20, 20, 200, 100), (300, 300, 50, 50)], color="blue")]
    paths = jobs(tmp_path, first, relabelled)
    out = tmp_path / "kept"
    assert (
        main(
            [
                "manifest",
                "prepare",
                *paths,
                "--out",
                str(out),
                "--class-from",
                "color,object",
                "--validation-fraction",
                "0.3",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert (report["read"], report["replaced"], report["kept"], report["empty"]) == (10, 1, 9, 1)
    assert report["replaced_lines"][0]["dropped"] == f"{paths[0]}:1"
    assert report["replaced_lines"][0]["kept"] == f"{paths[1]}:1"
    lines = read_lines(out / "train.manifest") + read_lines(out / "validation.manifest")
    blue_0 = next(line for line in lines if line["source-ref"] == "s3://b/blue_0.jpg")
    assert len(blue_0["bb"]["annotations"]) == 2
    dropped = tmp_path / "dropped"
    assert (
        main(
            [
                "manifest",
                "prepare",
                *paths,
                "--out",
                str(dropped),
                "--class-from",
                "color,object",
                "--validation-fraction",
                "0.3",
                "--drop-empty",
            ]
        )
        == 0
    )
    report = json.loads((dropped / "report.json").read_text())
    assert (report["kept"], report["dropped_empty"]) == (8, 1)


def test_existing_outputs_need_force(tmp_path, capsys):
    paths = jobs(tmp_path, [*many("blue", 4), *many("yellow", 4)])
    out = tmp_path / "out"
    args = [
        "manifest",
        "prepare",
        *paths,
        "--out",
        str(out),
        "--class-from",
        "color,object",
        "--validation-fraction",
        "0.25",
    ]
    assert main(args) == 0
    assert main(args) == 2
    assert "already exists (pass --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_relative_refs_still_point_at_the_images_from_the_output(tmp_path):
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    lines = []
    for index, color in enumerate(["blue"] * 3 + ["yellow"] * 3):
        cv2.imwrite(str(images / f"{color}_{index}.jpg"), np.full((48, 64, 3), 128, np.uint8))
        lines.append(gt_line(f"images/{color}_{index}.jpg", [(1, 1, 10, 10)], color=color, size=(64, 48)))
    manifest = write_manifest(tmp_path / "data" / "job.manifest", lines)
    out = tmp_path / "elsewhere" / "prepared"
    assert (
        main(
            [
                "manifest",
                "prepare",
                str(manifest),
                "--out",
                str(out),
                "--class-from",
                "color,object",
                "--validation-fraction",
                "0.34",
                "--check-images",
            ]
        )
        == 0
    )
    for line in read_lines(out / "train.manifest") + read_lines(out / "validation.manifest"):
        assert not Path(line["source-ref"]).is_absolute()
        assert (out / line["source-ref"]).resolve().is_file()


def test_check_images_reports_an_unreadable_or_mis_sized_image(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    lines = []
    for index, color in enumerate(["blue"] * 3 + ["yellow"] * 3):
        cv2.imwrite(str(images / f"{index}.jpg"), np.zeros((48, 64, 3), np.uint8))
        lines.append(gt_line(str(images / f"{index}.jpg"), [(1, 1, 10, 10)], color=color, size=(64, 48)))
    (images / "4.jpg").write_bytes(b"not a jpeg")
    lines[2]["bb"]["image_size"][0]["width"] = 100
    manifest = str(write_manifest(tmp_path / "job.manifest", lines))
    base = ["manifest", "prepare", manifest, "--class-from", "color,object", "--check-images"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    assert f"{manifest}:3: " in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--skip-invalid", "--validation-fraction", "0.5"]) == 0
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    problems = {item["where"]: item["problem"] for item in report["invalid_lines"]}
    assert "is 64x48 but image_size says 100x48" in problems[f"{manifest}:3"]
    assert "is not a readable image" in problems[f"{manifest}:5"]


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["manifest", "prepare", "--help"])
    assert exited.value.code == 0
    assert "example" in capsys.readouterr().out


def test_replacements_and_unmatched_discard_entries_are_warned_about(tmp_path, caplog, capsys):
    first = [*many("blue", 4), *many("yellow", 4)]
    paths = jobs(tmp_path, first, [gt_line("s3://b/yellow_1.jpg", [(5, 5, 50, 50)], color="yellow")])
    discard = tmp_path / "discard.txt"
    discard.write_text("blue_2\nblue_99\n")
    out = tmp_path / "out"
    assert main(["manifest", "prepare", *paths, "--out", str(out), "--class-from", "color,object",
                 "--discard", str(discard), "--validation-fraction", "0.3"]) == 0  # fmt: skip
    # The CLI's own handler writes to stderr when it configured logging (this test alone); caplog sees the records
    # when an earlier test left logging to pytest (the whole suite): read both, so the order of tests cannot matter.
    messages = " ".join(record.getMessage() for record in caplog.records) + capsys.readouterr().err
    expected = (f"1 image(s) are in more than one job; the newer label wins (e.g. {paths[1]}:1 replaced "
                f"{paths[0]}:6: later in the order given)")
    assert expected in messages
    assert "match no image (typos?): blue_99" in messages
    report = json.loads((out / "report.json").read_text())
    assert report["discard_unmatched"] == ["blue_99"] and report["discarded"] == 1
