"""manifest prepare over several Ground Truth jobs keeps every label somebody meant: the newest label of an image
wins whatever the job files are called, class merges and out-of-map class ids are refused, jobs with different label
attributes join, verification verdicts and adjustments are used, and a test split is stratified like the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_training.cli import main
from tests.support.groundtruth import gt_line, write_manifest
from tests.support.shared import aws_sample

OLD = "2019-05-21T21:45:58.350877"
NEWER = "2019-05-23T09:12:00.000000"  # two days later


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def all_lines(out: Path) -> dict[str, dict]:
    lines = [line for name in ("train", "validation", "test") if (out / f"{name}.manifest").exists()
             for line in read_lines(out / f"{name}.manifest")]
    return {line["source-ref"]: line for line in lines}


def boxes(color: str, count: int, **kwargs) -> list[dict]:
    return [gt_line(f"s3://b/{color}_{i}.jpg", [(10, 10, 100, 80)], color=color, **kwargs) for i in range(count)]


def prepare(*words: str) -> int:
    return main(["manifest", "prepare", *words])


def refused(capsys, out: Path, *words: str) -> str:
    assert prepare(*words, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert not out.exists()  # nothing written
    return err


def test_a_relabel_job_whose_name_sorts_first_still_wins_by_creation_date(tmp_path):
    """README's directory form orders jobs by file name; the relabel job's labels are two days newer."""
    folder = tmp_path / "manifests"
    original = boxes("blue", 5) + boxes("yellow", 5)
    corrected = [gt_line(f"s3://b/blue_{i}.jpg", [(200, 100, 40, 40), (300, 300, 20, 20)], color="blue",
                         created=NEWER, job="labeling-job/relabel") for i in range(3)]
    write_manifest(folder / "a-relabel.manifest", corrected)  # sorts before ...
    write_manifest(folder / "b-original.manifest", original)  # ... the job it corrects
    out = tmp_path / "out"
    assert prepare(str(folder), "--out", str(out), "--class-from", "color,object", "--validation-fraction",
                   "0.3") == 0
    lines = all_lines(out)
    for i in range(3):
        assert [a["left"] for a in lines[f"s3://b/blue_{i}.jpg"]["bb"]["annotations"]] == [200, 300]
    report = json.loads((out / "report.json").read_text())
    assert report["replaced"] == 3
    assert {item["kept"].rsplit(":", 1)[0] for item in report["replaced_lines"]} == {str(folder / "a-relabel.manifest")}
    assert {item["rule"] for item in report["replaced_lines"]} == {"newer creation-date"}
    assert [job["manifest"] for job in report["jobs"]] == [str(folder / "b-original.manifest"),
                                                           str(folder / "a-relabel.manifest")]


def test_an_older_line_given_later_does_not_replace_a_newer_one(tmp_path):
    newer = [gt_line("s3://b/blue_0.jpg", [(1, 1, 9, 9)], created=NEWER)]
    paths = [write_manifest(tmp_path / "new.manifest", newer + boxes("blue", 4)[1:] + boxes("yellow", 4)),
             write_manifest(tmp_path / "old.manifest", boxes("blue", 1, created=OLD))]
    out = tmp_path / "out"
    assert prepare(*map(str, paths), "--out", str(out), "--class-from", "color,object",
                   "--validation-fraction", "0.3") == 0
    assert all_lines(out)["s3://b/blue_0.jpg"]["bb"]["annotations"][0]["width"] == 9
    replaced = json.loads((out / "report.json").read_text())["replaced_lines"]
    assert replaced == [{"source-ref": "s3://b/blue_0.jpg", "dropped": f"{paths[1]}:1", "kept": f"{paths[0]}:1",
                         "rule": "newer creation-date"}]


def test_class_from_that_would_merge_two_labelled_classes_is_refused(tmp_path, capsys):
    lines = [*boxes("blue", 3), *boxes("yellow", 3),
             gt_line("s3://b/pallet.jpg", [(5, 5, 20, 20)], color="blue", class_name="pallet")]
    path = write_manifest(tmp_path / "multi.manifest", lines)
    err = refused(capsys, tmp_path / "out", str(path), "--class-from", "color,object")
    assert f"{path}:7: --class-from color,object names class 'pallet' 'blue box', as it names 'storage box' at " \
           f"{path}:1: two labelled classes would merge" in err


def test_a_class_id_outside_the_line_class_map_is_refused_with_class_from(tmp_path, capsys):
    bad = gt_line("s3://b/odd.jpg", [(5, 5, 20, 20)], color="blue")
    bad["bb"]["annotations"][0]["class_id"] = 3
    path = write_manifest(tmp_path / "job.manifest", [*boxes("blue", 3), bad, *boxes("yellow", 3)])
    err = refused(capsys, tmp_path / "out", str(path), "--class-from", "color,object")
    assert f"{path}:4: box 1 has class_id 3, not in the line's class-map" in err


def test_jobs_with_different_label_attributes_join_under_one(tmp_path):
    first = write_manifest(tmp_path / "boxes-a.manifest", boxes("blue", 4))
    second = write_manifest(tmp_path / "boxes-b.manifest",
                            [gt_line(f"s3://b/yellow_{i}.jpg", [(10, 10, 100, 80)], color="yellow",
                                     attribute="labels") for i in range(4)])
    detected, named = tmp_path / "detected", tmp_path / "named"
    assert prepare(str(first), str(second), "--out", str(detected), "--class-from", "color,object") == 0
    assert prepare(str(first), str(second), "--out", str(named), "--class-from", "color,object",
                   "--label-attribute", "boxes", "--label-attribute", "boxes-a=bb",
                   "--label-attribute", "boxes-b.manifest=labels") == 0
    for out, name in ((detected, "bb"), (named, "boxes")):
        lines = all_lines(out)
        assert len(lines) == 8
        for line in lines.values():
            assert name in line and f"{name}-metadata" in line and "labels" not in line
            assert len(line[name]["annotations"]) == 1
        assert json.loads((out / "report.json").read_text())["label_attribute"] == name


def test_an_unknown_job_in_label_attribute_is_refused(tmp_path, capsys):
    path = write_manifest(tmp_path / "a.manifest", boxes("blue", 4))
    assert "--label-attribute nope=bb: no input manifest is 'nope'" in refused(
        capsys, tmp_path / "out", str(path), "--label-attribute", "nope=bb")


def verified(line: dict, verdict: str) -> dict:
    line = dict(line)
    line["verify-bb"] = 1 if verdict == "bad" else 0
    line["verify-bb-metadata"] = {"class-name": verdict, "confidence": 0.9, "type": "groundtruth/label-verification",
                                  "job-name": "labeling-job/verify", "human-annotated": "yes",
                                  "creation-date": NEWER}
    return line


def test_verification_verdicts_drop_rejected_images_and_are_counted(tmp_path, capsys):
    labels = write_manifest(tmp_path / "labels.manifest", boxes("blue", 5) + boxes("yellow", 5))
    checks = write_manifest(tmp_path / "verify.manifest",
                            [verified(line, "bad" if i in (1, 2) else "good") for i, line in
                             enumerate(boxes("blue", 5))])
    err = refused(capsys, tmp_path / "unsaid", str(labels), str(checks), "--class-from", "color,object")
    assert "Ground Truth verification verdicts in the input (bad, good); name those that reject an image with " \
           "--reject-verdict" in err
    out = tmp_path / "out"
    assert prepare(str(labels), str(checks), "--out", str(out), "--class-from", "color,object",
                   "--reject-verdict", "bad", "--validation-fraction", "0.3") == 0
    lines = all_lines(out)
    assert "s3://b/blue_1.jpg" not in lines and "s3://b/blue_2.jpg" not in lines and len(lines) == 8
    report = json.loads((out / "report.json").read_text())
    assert (report["read"], report["replaced"], report["rejected"], report["kept"]) == (15, 5, 2, 8)
    assert report["read"] == report["replaced"] + report["discarded"] + report["rejected"] + report["kept"]
    assert {item["verdict"] for item in report["rejected_lines"]} == {"bad"}


def test_an_adjustment_job_s_boxes_are_used_and_removed_boxes_counted(tmp_path):
    labels = write_manifest(tmp_path / "labels.manifest", boxes("blue", 4) + boxes("yellow", 4))
    adjusted = []
    for i in range(2):
        line = gt_line(f"s3://b/blue_{i}.jpg", [(10, 10, 100, 80), (300, 200, 30, 30)], color="blue")
        fix = gt_line(f"s3://b/blue_{i}.jpg", [(12, 11, 90, 70)], attribute="bb-adjusted", created=NEWER)
        line["bb-adjusted"] = fix["bb-adjusted"]
        line["bb-adjusted-metadata"] = {**fix["bb-adjusted-metadata"], "adjustment-status": "adjusted"}
        adjusted.append(line)
    job = write_manifest(tmp_path / "adjust.manifest", adjusted)
    out = tmp_path / "out"
    assert prepare(str(job), str(labels), "--out", str(out), "--class-from", "color,object",
                   "--validation-fraction", "0.3") == 0
    lines = all_lines(out)
    for i in range(2):
        line = lines[f"s3://b/blue_{i}.jpg"]
        assert [a["width"] for a in line["bb"]["annotations"]] == [90]
        assert "bb-adjusted" not in line and line["bb-metadata"]["adjustment-status"] == "adjusted"
    assert json.loads((out / "report.json").read_text())["adjusted"] == {"lines": 2, "boxes_removed": 2}


def test_the_real_jobs_get_a_stratified_test_split(tmp_path, capsys):
    manifests = aws_sample() / "manifests"
    jobs = sorted(str(p) for p in manifests.glob("*.output.manifest"))
    out = tmp_path / "prepared"
    assert prepare(*jobs, "--out", str(out), "--discard", str(manifests / "discard.txt"), "--class-from",
                   "color,object", "--validation-fraction", "0.1", "--test-fraction", "0.1") == 0
    assert "test" in capsys.readouterr().out.splitlines()[1]  # the summary table has a test column
    sides = {name: read_lines(out / f"{name}.manifest") for name in ("train", "validation", "test")}
    refs = {name: {line["source-ref"] for line in lines} for name, lines in sides.items()}
    assert sum(len(r) for r in refs.values()) == 1304 == len(set().union(*refs.values()))  # every image, once
    assert abs(len(refs["test"]) - 130) <= 2 and abs(len(refs["validation"]) - 130) <= 2
    report = json.loads((out / "report.json").read_text())
    for name in sides:
        assert set(report["splits"][name]["classes"]) == {"blue box", "yellow box"}
        assert report["splits"][name]["images"] == len(sides[name])


@pytest.mark.parametrize(("fractions", "message"), [
    (["--validation-fraction", "0.5", "--test-fraction", "0.5"], "leave nothing to train on"),
])
def test_fractions_that_leave_no_training_data_are_refused(tmp_path, capsys, fractions, message):
    path = write_manifest(tmp_path / "a.manifest", boxes("blue", 4) + boxes("yellow", 4))
    assert message in refused(capsys, tmp_path / "out", str(path), "--class-from", "color,object", *fractions)
