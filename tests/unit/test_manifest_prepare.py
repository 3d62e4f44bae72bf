"""The pure steps of manifest prepare: join, discard, relabel and the stratified split, on literal records."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cloud_training.errors import ManifestError
from cloud_training.manifest.prepare import (
    Labelled,
    discard,
    image_id,
    join,
    parse_class_map,
    parse_discard,
    relabel,
    split,
    split_three,
)
from cloud_training.manifest.records import Record, parse_line
from tests.support.groundtruth import gt_line


def record(ref: str, boxes=((10, 10, 50, 50),), where: str = "m:1", **kwargs) -> Record:
    return parse_line(json.dumps(gt_line(ref, boxes, **kwargs)), where, "/data/m.manifest", 1, None)


def test_image_id_is_the_file_name_without_extension():
    assert image_id("s3://b/frames/blue_box_1/blue_box_1_000023.jpg") == "blue_box_1_000023"
    assert image_id("/x/y/noext") == "noext"


def test_join_keeps_the_later_job_and_reports_the_replacement():
    first = record("s3://b/a.jpg", ((1, 1, 5, 5),), where="job1:3")
    other = record("s3://b/b.jpg", where="job1:4")
    later = record("s3://b/a.jpg", ((2, 2, 6, 6),), where="job2:1")
    joined, replaced = join([first, other, later])
    assert [r.where for r in joined] == ["job1:4", "job2:1"]
    assert [(r.source_ref, r.dropped, r.kept) for r in replaced] == [("s3://b/a.jpg", "job1:3", "job2:1")]


def test_discard_matches_ids_file_names_and_full_refs_and_lists_unmatched():
    records = [record(f"s3://b/f/img_{i}.jpg") for i in range(5)]
    entries = parse_discard("img_0\n# a comment\n\nimg_1.jpg\ns3://b/f/img_2.jpg  # trailing\nimg_9\n")
    kept, dropped, unmatched = discard(records, entries)
    assert [image_id(r.source_ref) for r in dropped] == ["img_0", "img_1", "img_2"]
    assert [image_id(r.source_ref) for r in kept] == ["img_3", "img_4"]
    assert unmatched == ["img_9"]


def test_parse_class_map_accepts_pairs_and_rejects_gaps_and_junk():
    assert parse_class_map("blue box=0, yellow box=1") == {"blue box": 0, "yellow box": 1}
    for bad in ("blue box=0,yellow box=2", "blue box", "a=0,a=1", "a=x", "a=-1"):
        with pytest.raises(ValueError):
            parse_class_map(bad)


def test_relabel_from_metadata_rewrites_ids_and_class_map():
    blue = record("s3://b/blue.jpg", ((1, 1, 5, 5), (9, 9, 5, 5)), color="blue")
    yellow = record("s3://b/yellow.jpg", color="yellow")
    labelled, by_id, invalid = relabel([blue, yellow], ("color", "object"), {"blue box": 1, "yellow box": 0}, False)
    assert by_id == {0: "yellow box", 1: "blue box"}
    assert invalid == []
    blue_out, yellow_out = (item.record.data for item in labelled)
    assert [a["class_id"] for a in blue_out["bb"]["annotations"]] == [1, 1]
    assert [a["class_id"] for a in yellow_out["bb"]["annotations"]] == [0]
    assert blue_out["bb-metadata"]["class-map"] == {"0": "yellow box", "1": "blue box"}
    assert [b.class_id for b in labelled[0].record.boxes] == [1, 1]
    # the input record is untouched: relabel is pure
    assert blue.data["bb"]["annotations"][0]["class_id"] == 0
    assert blue.data["bb-metadata"]["class-map"] == {"0": "storage box"}


def test_relabel_without_a_map_numbers_sorted_names():
    items = [record("s3://b/y.jpg", color="yellow"), record("s3://b/b.jpg", color="blue")]
    labelled, by_id, _ = relabel(items, ("color", "object"), None, False)
    assert by_id == {0: "blue box", 1: "yellow box"}
    assert [item.record.boxes[0].class_id for item in labelled] == [1, 0]


def test_relabel_without_class_from_uses_each_line_class_map():
    items = [record("s3://b/a.jpg", class_id=3, class_name="cat"), record("s3://b/b.jpg", class_name="dog")]
    labelled, by_id, _ = relabel(items, (), None, False)
    assert by_id == {0: "cat", 1: "dog"}
    assert [item.names for item in labelled] == [("cat",), ("dog",)]


def test_unknown_class_names_the_line_or_is_skipped_and_counted():
    items = [record("s3://b/a.jpg", color="green", where="jobs/g.manifest:12"), record("s3://b/b.jpg")]
    with pytest.raises(ManifestError, match=r"^jobs/g.manifest:12: box 1 has unknown class 'green box'"):
        relabel(items, ("color", "object"), {"blue box": 0}, False)
    labelled, _, invalid = relabel(items, ("color", "object"), {"blue box": 0}, True)
    assert [item.record.source_ref for item in labelled] == ["s3://b/b.jpg"]
    assert [(i.where, i.problem) for i in invalid] == [
        ("jobs/g.manifest:12", "box 1 has unknown class 'green box' (--class-map has: blue box)")
    ]


def test_a_class_id_missing_from_the_line_class_map_is_reported():
    line = gt_line("s3://b/a.jpg", [(1, 1, 5, 5)])
    line["bb"]["annotations"][0]["class_id"] = 4
    item = parse_line(json.dumps(line), "m:9", "/m", 9, None)
    with pytest.raises(ManifestError, match=r"^m:9: box 1 has class_id 4, not in the line's class-map"):
        relabel([item], (), None, False)


def dataset(counts: dict[str, int], empty: int = 0) -> list[Labelled]:
    items = []
    for color, number in counts.items():
        for index in range(number):
            items.append(record(f"s3://b/{color}_{index:04d}.jpg", color=color))
    for index in range(empty):
        items.append(record(f"s3://b/empty_{index:04d}.jpg", boxes=(), color="blue"))
    labelled, _, _ = relabel(items, ("color", "object"), None, False)
    return labelled


def classes(items: list[Labelled]) -> Counter[str]:
    return Counter(name for item in items for name in set(item.names))


def test_split_is_stratified_and_sized_by_the_fraction():
    items = dataset({"blue": 300, "yellow": 100}, empty=50)
    train, validation = split(items, 0.2, seed=1)
    assert len(train) + len(validation) == 450
    assert len(validation) == 90
    assert classes(validation) == {"blue box": 60, "yellow box": 20}
    assert sum(1 for item in validation if not item.names) == 10
    assert {i.record.source_ref for i in train}.isdisjoint(i.record.source_ref for i in validation)


def test_split_is_deterministic_whatever_the_input_order_and_changes_with_the_seed():
    items = dataset({"blue": 50, "yellow": 50})
    _, first = split(items, 0.1, seed=7)
    _, again = split(list(reversed(items)), 0.1, seed=7)
    _, other = split(items, 0.1, seed=8)
    refs = sorted(i.record.source_ref for i in first)
    assert refs == sorted(i.record.source_ref for i in again)
    assert refs != sorted(i.record.source_ref for i in other)


def test_split_puts_every_class_in_both_splits_even_when_rare():
    items = dataset({"blue": 200, "yellow": 2, "red": 3})
    train, validation = split(items, 0.05, seed=0)
    assert set(classes(train)) == set(classes(validation)) == {"blue box", "yellow box", "red box"}


def test_split_keeps_input_order_within_each_side():
    items = dataset({"blue": 30, "yellow": 30})
    train, validation = split(items, 0.3, seed=3)
    position = {item.record.source_ref: index for index, item in enumerate(items)}
    for side in (train, validation):
        indexes = [position[item.record.source_ref] for item in side]
        assert indexes == sorted(indexes)


def test_a_class_on_a_single_image_cannot_be_split():
    with pytest.raises(ManifestError, match="class 'yellow box' is on only one image"):
        split(dataset({"blue": 10, "yellow": 1}), 0.2, seed=0)


def test_join_keeps_the_newest_label_whatever_the_order():
    old = record("s3://b/x.jpg", where="a:1", created="2019-05-21T10:00:00")
    new = record("s3://b/x.jpg", boxes=((1, 1, 5, 5),), where="b:1", created="2019-05-23T10:00:00.5")
    for given in ([old, new], [new, old]):
        kept, replaced = join(given)
        assert [item.where for item in kept] == ["b:1"]
        assert (replaced[0].kept, replaced[0].dropped, replaced[0].rule) == ("b:1", "a:1", "newer creation-date")
    undated = record("s3://b/x.jpg", where="c:1", created="")
    kept, replaced = join([new, undated])
    assert [item.where for item in kept] == ["c:1"] and replaced[0].rule == "later in the order given"


def test_a_test_split_is_stratified_and_disjoint():
    items = dataset({"blue": 30, "yellow": 20})
    train, validation, test = split_three(items, 0.2, 0.2, seed=3)
    refs = [{item.record.resolved_ref for item in side} for side in (train, validation, test)]
    assert sum(map(len, refs)) == 50 == len(set().union(*refs))
    assert (len(validation), len(test)) == (10, 10)
    for side in (train, validation, test):
        assert set(classes(side)) == {"blue box", "yellow box"}
    assert split_three(items, 0.2, 0.0, seed=3)[2] == []
