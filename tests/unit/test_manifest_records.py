"""Parsing and checking one Ground Truth line: every bad input is one message that starts with file:line."""

from __future__ import annotations

import json
import os

import pytest

from cloud_training.errors import ManifestError
from cloud_training.manifest.records import detect_label_attribute, dumps, iter_lines, parse_line
from tests.support.groundtruth import gt_line

WHERE = "jobs/a.manifest:7"


def parse(data: object, attribute: str | None = None, manifest: str = "/data/jobs/a.manifest"):
    text = data if isinstance(data, str) else json.dumps(data)
    return parse_line(text, WHERE, manifest, 7, attribute)


def test_a_valid_line_gives_boxes_size_and_attribute():
    record = parse(gt_line("s3://b/f/blue_box_1_000001.jpg", [(10, 20, 30, 40), (0, 0, 640, 480)]))
    assert record.label_attribute == "bb"
    assert (record.width, record.height, record.depth) == (640, 480, 3)
    assert [(b.left, b.top, b.width, b.height) for b in record.boxes] == [(10, 20, 30, 40), (0, 0, 640, 480)]
    assert record.resolved_ref == "s3://b/f/blue_box_1_000001.jpg"
    assert record.where == WHERE


def test_relative_refs_resolve_against_the_manifest_location():
    local = parse(gt_line("../images/x.jpg"), manifest="/data/jobs/a.manifest")
    assert local.resolved_ref == os.path.normpath("/data/images/x.jpg")
    remote = parse(gt_line("images/x.jpg"), manifest="s3://bucket/run/a.manifest")
    assert remote.resolved_ref == "s3://bucket/run/images/x.jpg"
    absolute = parse(gt_line("/abs/x.jpg"), manifest="s3://bucket/run/a.manifest")
    assert absolute.resolved_ref == "/abs/x.jpg"


def test_label_attribute_is_found_from_metadata_type():
    line = gt_line("s3://b/x.jpg", [(1, 1, 5, 5)], attribute="bounding-box")
    assert detect_label_attribute(line, WHERE) == "bounding-box"
    assert parse(line).label_attribute == "bounding-box"


def test_two_object_detection_attributes_are_ambiguous():
    line = gt_line("s3://b/x.jpg")
    other = gt_line("s3://b/x.jpg", attribute="bb2")
    line.update({"bb2": other["bb2"], "bb2-metadata": other["bb2-metadata"]})
    with pytest.raises(ManifestError, match=r"^jobs/a.manifest:7: several object-detection attributes \(bb, bb2\)"):
        parse(line)
    assert parse(line, attribute="bb2").label_attribute == "bb2"


def _without(line: dict, *path: str) -> dict:
    target = line
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return line


@pytest.mark.parametrize(
    ("data", "attribute", "problem"),
    [
        ('{"source-ref": "s3://b/x.jpg", ', None, "not valid JSON"),
        ("[1, 2]", None, "must be a JSON object"),
        (_without(gt_line("s3://b/x.jpg"), "source-ref"), None, "missing 'source-ref'"),
        (_without(gt_line("s3://b/x.jpg"), "bb"), "bb", "missing label attribute 'bb'"),
        (_without(gt_line("s3://b/x.jpg"), "bb-metadata"), None, "no attribute with '-metadata.type'"),
        (_without(gt_line("s3://b/x.jpg"), "bb", "image_size"), None, "'bb.image_size' is missing"),
        (
            gt_line("s3://b/x.jpg", [(10, 10, -5, 20)]),
            None,
            "box 1 has a non-positive size (width -5, height 20)",
        ),
        (gt_line("s3://b/x.jpg", [(10, 10, 5, 0)]), None, "box 1 has a non-positive size"),
        (
            gt_line("s3://b/x.jpg", [(1, 1, 2, 2), (600, 10, 50, 20)]),
            None,
            "box 2 (left 600, top 10, width 50, height 20) lies outside the 640x480 image",
        ),
        (gt_line("s3://b/x.jpg", [(-1, 10, 5, 5)]), None, "lies outside the 640x480 image"),
        (
            gt_line("s3://b/x.jpg", [(1, 1, 5, 5)], class_id=-1),
            None,
            "box 1 has no non-negative integer class_id",
        ),
    ],
)
def test_bad_lines_are_one_message_naming_file_and_line(data, attribute, problem):
    with pytest.raises(ManifestError) as caught:
        parse(data, attribute)
    message = str(caught.value)
    assert message.startswith(f"{WHERE}: ")
    assert problem in message
    assert "\n" not in message


def test_image_size_must_be_positive_integers():
    line = gt_line("s3://b/x.jpg")
    line["bb"]["image_size"] = [{"width": 0, "height": 480, "depth": 3}]
    with pytest.raises(ManifestError, match="positive integer width, height and depth"):
        parse(line)


def test_a_box_with_a_string_coordinate_is_reported():
    line = gt_line("s3://b/x.jpg", [(1, 1, 5, 5)])
    line["bb"]["annotations"][0]["left"] = "1"
    with pytest.raises(ManifestError, match=r"box 1 has no numeric 'left' \(got \"1\"\)"):
        parse(line)


def test_dumps_is_compact_and_keeps_key_order():
    text = '{"source-ref":"s3://b/é.jpg","z":1,"a":{"k":[1,2]}}'
    assert dumps(json.loads(text)) == text


def test_iter_lines_numbers_lines_and_skips_blank_ones():
    assert list(iter_lines('{"a":1}\n\n  \n{"b":2}\n', "m")) == [(1, "m:1", '{"a":1}'), (4, "m:4", '{"b":2}')]


@pytest.mark.parametrize("attribute", [None, "boxes-job"])
def test_a_failed_labeling_task_is_named_as_such(attribute):
    """Ground Truth writes a failed task as metadata with failure-reason and no labels: no --label-attribute helps."""
    line = {"source-ref": "s3://b/f/x.jpg",
            "boxes-job-metadata": {"failure-reason": "ClientError: annotation consolidation failed",
                                   "job-name": "labeling-job/boxes-job", "type": "groundtruth/object-detection"}}
    with pytest.raises(ManifestError) as raised:
        parse(line, attribute)
    assert str(raised.value) == (
        f"{WHERE}: Ground Truth did not label this image (job 'boxes-job', failure-reason: ClientError: annotation"
        " consolidation failed); relabel it, or drop such lines with manifest prepare --skip-invalid")
