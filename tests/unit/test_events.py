"""The tracker and the event messages, with literal boxes; and publish.mode events in the pipeline with the fakes."""

from __future__ import annotations

import threading
import zlib
from typing import Any

import numpy as np
import pytest

from edge_runtime.config import load_config
from edge_runtime.daemon import Daemon
from edge_runtime.detectors.base import Detection
from edge_runtime.detectors.fake import FakeDetector
from edge_runtime.errors import ConfigError
from edge_runtime.events.builder import EventStream
from edge_runtime.events.config import EventsConfig
from edge_runtime.events.tracker import Observation, Tracker, greedy_match, iou
from edge_runtime.messages import encode, validate_message
from edge_runtime.publishers.base import RecordingPublisher
from edge_runtime.snapshots import SnapshotConfig
from edge_runtime.sources.base import FakeSource
from tests.support.assembly import one_source_daemon
from tests.support.waiting import wait_until

FPS = 5.0


def seen(label: str, box: tuple[float, float, float, float], score: float = 0.9) -> Observation:
    return Observation(label, 0 if label == "blue" else 1, score, box)


def shifted(box: tuple[float, float, float, float], dx: float) -> tuple[float, float, float, float]:
    return (box[0] + dx, box[1], box[2] + dx, box[3])


def test_iou_of_literal_boxes() -> None:
    assert iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 1, 1), (1, 0, 2, 1)) == 0.0  # touching is not overlapping
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_greedy_match_takes_the_best_overlap_first() -> None:
    tracks = [(0.0, 0.0, 0.2, 0.2), (0.1, 0.0, 0.3, 0.2)]
    boxes = [(0.1, 0.0, 0.3, 0.2), (0.8, 0.8, 0.9, 0.9)]
    matches, free_tracks, free_boxes = greedy_match(tracks, boxes, 0.2)
    assert matches == [(1, 0)] and free_tracks == [0] and free_boxes == [1]


def test_track_is_confirmed_after_min_hits_and_ends_after_max_age() -> None:
    tracker = Tracker(EventsConfig(min_hits=3, max_age_s=1.0))
    box = (0.1, 0.4, 0.3, 0.6)
    outcomes = [tracker.step([seen("blue", shifted(box, 0.01 * i))], i / FPS) for i in range(5)]
    assert [len(o.confirmed) for o in outcomes] == [0, 0, 1, 0, 0]
    assert [len(o.seen) for o in outcomes] == [0, 0, 0, 1, 1]
    track = outcomes[2].confirmed[0]
    assert track.track_id == 1 and track.first_seen == 0.0 and track.hits == 5  # the same track, two frames on
    assert track.velocity[0] == pytest.approx(0.05)  # 0.01 a frame at 5 fps
    # unseen: it ends at the first frame more than max_age_s after it was last seen (0.8 s)
    ended = [(i, tracker.step([], i / FPS).ended) for i in range(5, 15)]
    assert [i for i, tracks in ended if tracks] == [10]
    assert ended[5][1][0].last_seen == pytest.approx(0.8) and tracker.tracks == []


def test_a_detection_that_never_repeats_makes_no_track() -> None:
    tracker = Tracker(EventsConfig(min_hits=2, max_age_s=0.5))
    assert not tracker.step([seen("blue", (0.1, 0.1, 0.2, 0.2))], 0.0).confirmed
    outcomes = [tracker.step([], t) for t in (0.2, 0.4, 0.6, 0.8)]
    assert not any(o.ended or o.confirmed for o in outcomes) and tracker.tracks == []


def test_crossing_objects_keep_their_ids_by_their_motion() -> None:
    """Two boxes pass each other; the velocity carries each through the frames where they overlap."""
    tracker = Tracker(EventsConfig(min_hits=1, iou_threshold=0.3))
    ids: dict[str, set[int]] = {"right": set(), "left": set()}
    for i in range(20):
        a = (0.05 + 0.04 * i, 0.4, 0.25 + 0.04 * i, 0.6)  # moving right
        b = (0.80 - 0.04 * i, 0.42, 1.00 - 0.04 * i, 0.62)  # moving left, a little lower
        tracker.step([seen("blue", a), seen("blue", b)], i / FPS)
        for track in tracker.tracks:
            ids["right" if track.velocity[0] > 0 or (i == 0 and track.box == a) else "left"].add(track.track_id)
    assert ids == {"right": {1}, "left": {2}}


def test_weak_detections_extend_tracks_but_never_start_one() -> None:
    tracker = Tracker(EventsConfig(min_hits=2, high_score=0.6))
    box = (0.2, 0.2, 0.4, 0.4)
    assert tracker.step([seen("blue", box, 0.3)], 0.0).confirmed == [] and tracker.tracks == []
    tracker.step([seen("blue", box, 0.9)], 0.2)
    outcome = tracker.step([seen("blue", box, 0.3)], 0.4)  # the weak one is the second hit
    assert [t.track_id for t in outcome.confirmed] == [1]


def test_the_label_is_the_score_weighted_vote() -> None:
    tracker = Tracker(EventsConfig(min_hits=1))
    box = (0.2, 0.2, 0.4, 0.4)
    tracker.step([seen("blue", box, 0.9)], 0.0)
    tracker.step([seen("yellow", box, 0.7)], 0.2)  # one odd frame does not flip it
    assert tracker.tracks[0].label == "blue"
    tracker.step([seen("yellow", box, 0.7)], 0.4)
    assert tracker.tracks[0].label == "yellow" and tracker.tracks[0].class_id == 1


def stream(**settings: Any) -> EventStream:
    return EventStream(EventsConfig(**settings), device="dev-1", session="s1", source="cam")


def check(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for message in messages:
        validate_message(message)
    return messages


def test_one_object_gives_new_then_end_with_its_summary() -> None:
    events = stream(min_hits=3, max_age_s=1.0)
    out: list[dict[str, Any]] = []
    box = (0.1, 0.4, 0.3, 0.6)
    scores = [0.7, 0.8, 0.95, 0.8, 0.75]
    for i, score in enumerate(scores):
        out += events.observe([seen("blue", box, score)], 100.0 + i / FPS, 640, 480, seq=i + 1)
    for i in range(5, 12):
        out += events.observe([], 100.0 + i / FPS, 640, 480, seq=i + 1)
    check(out)
    assert [m["event"] for m in out] == ["new", "end"]
    new, end = out
    assert new["id"] == end["id"] == f"s1-{zlib.crc32(b'cam'):08x}-1"  # session, source digest, track
    assert new["label"] == "blue" and new["first_seen"].endswith(":40.000Z")
    assert end["reason"] == "left" and end["duration_s"] == pytest.approx(0.8) and end["hits"] == 5
    assert end["best"]["score"] == 0.95 and end["best"]["box"] == [64.0, 192.0, 192.0, 288.0]
    assert end["last_seen"].endswith(":40.800Z")


def test_updates_are_rate_bounded_and_say_why() -> None:
    events = stream(min_hits=1, min_update_interval_s=2.0, score_band=0.1, move_threshold=0.1)
    out: list[dict[str, Any]] = []
    for i in range(30):  # moves 0.01 a frame (~0.0075 of the diagonal): moved beyond 0.1 after ~14 frames
        score = 0.62 if i < 5 else 0.91  # the best score jumps three bands at frame 5
        box = shifted((0.1, 0.4, 0.3, 0.6), 0.01 * i)
        out += events.observe([seen("blue", box, score)], i / FPS, 640, 480)
    check(out)
    kinds = [(m["event"], m.get("changes")) for m in out]
    assert kinds[0] == ("new", None)
    updates = [m for m in out if m["event"] == "update"]
    assert updates[0]["changes"] == ["score"] and updates[0]["at"].endswith(":02.000Z")  # waited for the interval
    assert any("moved" in m["changes"] for m in updates)
    times = [float(m["at"][-7:-1]) for m in out]
    assert all(b - a >= 2.0 - 1e-6 for a, b in zip(times, times[1:]))
    assert [m["updates"] for m in updates] == list(range(1, len(updates) + 1))


def test_a_label_change_is_an_update() -> None:
    events = stream(min_hits=1, min_update_interval_s=0.0)
    box = (0.2, 0.2, 0.4, 0.4)
    out = events.observe([seen("blue", box, 0.6)], 0.0, 100, 100)
    out += events.observe([seen("yellow", box, 0.61)], 0.2, 100, 100)
    out += events.observe([seen("yellow", box, 0.61)], 0.4, 100, 100)
    check(out)
    assert [(m["event"], m["label"], m.get("changes")) for m in out] == [
        ("new", "blue", None),
        ("update", "yellow", ["label"]),
    ]


def test_finish_ends_every_open_event_and_then_nothing_reopens() -> None:
    events = stream(min_hits=2)
    boxes = [(0.1, 0.1, 0.2, 0.2), (0.6, 0.6, 0.8, 0.8), (0.4, 0.0, 0.5, 0.1)]
    out = events.observe([seen("blue", b) for b in boxes], 0.0, 100, 100)
    out += events.observe([seen("blue", b) for b in boxes[:2]], 0.2, 100, 100)  # the third stays tentative
    ends = events.finish(5.0)
    check(out + ends)
    ids = [f"s1-{zlib.crc32(b'cam'):08x}-{n}" for n in (1, 2)]
    assert sorted(m["id"] for m in out if m["event"] == "new") == sorted(m["id"] for m in ends) == ids
    assert {m["reason"] for m in ends} == {"stopped"} and events.open_events == 0
    assert events.observe([seen("blue", boxes[0])], 6.0, 100, 100) == [] and events.finish(7.0) == []


def test_the_best_snapshot_rides_on_the_end_within_its_budget() -> None:
    from edge_runtime.detectors.base import DetectionResult
    from edge_runtime.frames import Frame

    config = SnapshotConfig(enabled=True, max_bytes=30_000)
    events = EventStream(EventsConfig(min_hits=1), device="d", session="s", source="cam", snapshots=config)
    rng = np.random.default_rng(3)
    out: list[dict[str, Any]] = []
    for i, score in enumerate([0.6, 0.9, 0.7]):
        image = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)  # noise: a JPEG that must be squeezed
        detection = Detection("blue", 0, score, (64.0, 192.0, 192.0, 288.0), (0.1, 0.4, 0.3, 0.6))
        frame = Frame(image, i + 1, 100.0 + i / FPS)
        out += events.frame(frame, DetectionResult(640, 480, [detection]), "demo", "1", 100.0 + i / FPS)
    out += events.finish(200.0)
    check(out)
    assert [m["event"] for m in out] == ["new", "end"] and "snapshot" not in out[0]
    snapshot = out[1]["snapshot"]
    assert snapshot["score"] == 0.9 and snapshot["at"].endswith(":40.200Z")
    assert len(encode(out[1])) <= 30_000 and snapshot["width"] < 640  # downscaled to fit


def run_events_pipeline(count: int, stop_after: int | None = None) -> tuple[Daemon, RecordingPublisher]:
    def script(call: int) -> list[Detection]:  # one box that stays, one that comes and goes every 20 frames
        boxes = [Detection("thing", 0, 0.9, (6.0, 5.0, 30.0, 40.0), (0.1, 0.1, 0.47, 0.83))]
        if (call // 20) % 2 == 0:
            boxes.append(Detection("thing", 0, 0.8, (40.0, 2.0, 60.0, 20.0), (0.63, 0.04, 0.94, 0.42)))
        return boxes

    recorder = RecordingPublisher()
    stop = threading.Event()
    source = FakeSource(count=count, live=stop_after is not None)
    detector = FakeDetector(script=script)
    config = EventsConfig(min_hits=2, max_age_s=0.05)
    daemon = one_source_daemon(
        source, detector, [recorder], stop, publish_mode="events", events=config, status_interval_s=0, max_fps=100
    )
    daemon.start()
    if stop_after is None:
        assert wait_until(daemon.finished.is_set, 20.0)
    else:
        assert wait_until(lambda: len(detector.calls) >= stop_after, 20.0)
    assert daemon.stop(3.0)
    return daemon, recorder


def test_events_mode_in_the_pipeline_every_new_has_its_end_through_a_stop() -> None:
    _, recorder = run_events_pipeline(count=None, stop_after=50)  # type: ignore[arg-type]
    messages = check(recorder.of_kind("detection"))
    news = [m["id"] for m in messages if m["event"] == "new"]
    ends = [m["id"] for m in messages if m["event"] == "end"]
    assert len(news) >= 2 and sorted(news) == sorted(ends) and len(set(ends)) == len(ends)
    assert messages[-1]["event"] == "end" and recorder.closed
    assert all(m["schema"] == "edge-runtime/event/1" for m in messages)


def test_publish_mode_events_and_its_section_are_typed_config() -> None:
    config = load_config(environ={}, overrides={"publish": {"mode": "events"}, "events": {"min_hits": 2}})
    assert config.publish.mode == "events" and config.events.min_hits == 2
    with pytest.raises(ConfigError, match=r"events\.min_hits: .* \(got 0\)"):
        load_config(environ={}, overrides={"events": {"min_hits": 0}})
    with pytest.raises(ConfigError, match=r"events\.window: unknown key"):
        load_config(environ={}, overrides={"events": {"window": 3}})


def test_cost_estimate_counts_messages_and_meters_in_5_kb_units() -> None:
    from edge_runtime.events.cost import billed_units, estimate

    assert [billed_units(n) for n in (1, 5120, 5121, 100_000)] == [1, 1, 2, 20]
    base = {"source": {"max_fps": 5}, "status": {"interval_s": 30}}
    frame = estimate(load_config(environ={}, overrides=base))
    assert frame.lines[0].per_day == 432_000 and frame.messages_per_day == 432_000 + 2_880
    assert frame.usd_per_month == pytest.approx((432_000 + 2_880) * 30 / 1e6)  # every message under 5 KB
    events = estimate(
        load_config(environ={}, overrides={**base, "publish": {"mode": "events"}}), objects_per_hour=10, dwell_s=60
    )
    assert [line.per_day for line in events.lines] == [240, 240 * 7, 2_880]  # new; end + at most 6 updates; status
    snapshots = {**base, "publish": {"mode": "events"}, "snapshots": {"enabled": True}}
    with_snapshots = estimate(load_config(environ={}, overrides=snapshots), objects_per_hour=10, dwell_s=60)
    assert with_snapshots.lines[1].units_per_day == 240 * 7 * 20  # 100 KB messages bill as 20 each


def test_check_config_prints_messages_per_day_and_the_price_it_assumes(tmp_path: Any, capsys: Any) -> None:
    from edge_runtime.cli import main

    path = tmp_path / "config.json"
    path.write_text('{"publish": {"mode": "events", "targets": ["greengrass"]}, "source": {"max_fps": 5}}')
    assert main(["check-config", str(path), "--objects-per-hour", "4"]) == 0
    out = capsys.readouterr().out
    assert "publish.mode events at 5 fps:" in out and "96/day" in out  # 4 an hour: the new messages
    assert "$1.00 per million messages, metered in 5 KB increments" in out and "via greengrass" in out
