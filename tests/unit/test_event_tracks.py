"""Events against ground truth: synthetic clips whose objects enter and leave at known frames (synth/tracks.py).

- a rendered clip, run through the demo model (ONNX Runtime) and the event stream: one ``new`` per object, first and
  last seen within 1 s of the truth, one id while it stays;
- ten minutes at 5 fps (3,000 frames) driven from the ground truth with perturbed detections (jittered boxes, misses,
  label flips, one-frame false positives: ``perturbed_detections``) instead of the detector, whose run with the
  rendering would take minutes here (``benchmarks/events.py --detector`` does it): every object and
  class reported, event messages at most 1/20 of frame mode's one per frame;
- the 150-frame demo video (as ``make demo`` makes it) through the real pipeline in events mode: every class
  reported, every ``new`` has its ``end``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import pytest

from cloud_training.synth.tracks import boxes_by_frame, perturbed_detections, plan_tracks, render_tracks, track_truth
from cloud_training.synth.video import render_video
from edge_runtime.config import ModelConfig, SourceConfig
from edge_runtime.detectors import create_detector
from edge_runtime.events.builder import EventStream
from edge_runtime.events.config import EventsConfig
from edge_runtime.events.tracker import Observation, iou
from edge_runtime.frames import Frame
from edge_runtime.messages import validate_message
from edge_runtime.publishers.base import RecordingPublisher
from edge_runtime.sources.registry import make_source
from tests.support.assembly import one_source_daemon
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "models" / "demo"
FPS = 5.0
EPOCH = 1_800_000_000.0  # capture times: seconds into the clip after this


def seconds(stamp: str) -> float:
    import datetime as dt

    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() - EPOCH


def match_events(truth: dict[str, Any], messages: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Each event's ``end`` joined to the truth object it overlaps most (best box IoU in the frame of its best)."""
    per_frame = boxes_by_frame(truth)
    width, height = truth["width"], truth["height"]
    joined: dict[int, list[dict[str, Any]]] = {item["id"]: [] for item in truth["objects"]}
    for end in (m for m in messages if m["event"] == "end"):
        frame = round(seconds(end["best"]["at"]) * truth["fps"])
        box = tuple(end["best"]["box_normalized"])
        overlaps = [
            (iou(box, (b[0] / width, b[1] / height, b[2] / width, b[3] / height)), object_id)
            for object_id, _, b in per_frame[frame]
        ]
        best = max(overlaps, default=(0.0, -1))
        assert best[0] >= 0.3, f"event {end['id']} ({end['label']}) matches no object: {overlaps}"
        joined[best[1]].append(end)
    return joined


def check_against_truth(truth: dict[str, Any], messages: list[dict[str, Any]], slack_s: float = 1.0) -> None:
    for message in messages:
        validate_message(message)
    news = [m["id"] for m in messages if m["event"] == "new"]
    ends = [m["id"] for m in messages if m["event"] == "end"]
    assert sorted(news) == sorted(ends) and len(set(news)) == len(news), "every new has exactly one end"
    joined = match_events(truth, messages)
    for item in truth["objects"]:
        events = joined[item["id"]]
        assert len(events) == 1, f"object {item['id']} ({item['label']}): {len(events)} events, expected one id"
        end = events[0]
        assert end["label"] == item["label"]
        assert abs(seconds(end["first_seen"]) - item["first_s"]) <= slack_s, (item, end["first_seen"])
        assert abs(seconds(end["last_seen"]) - item["last_s"]) <= slack_s, (item, end["last_seen"])
        assert item["last_s"] - seconds(end["at"]) <= 0  # ended after it left, not before


@pytest.fixture(scope="module")
def detector() -> Any:
    pytest.importorskip("onnxruntime")
    return create_detector(ModelConfig(path=str(DEMO_MODEL), backend="onnxruntime"))


def test_events_from_the_demo_model_match_a_clip_with_known_tracks(tmp_path: Path, detector: Any) -> None:
    video = tmp_path / "tracks.mp4"
    truth = render_tracks(str(video), seed=0, frames=250, width=320, height=240, fps=FPS)
    assert {item["label"] for item in truth["objects"]} == {"blue box", "yellow box"}
    assert {item["kind"] for item in truth["objects"]} == {"slide", "placed"}
    events = EventStream(EventsConfig(), device="dev", session="s", source=str(video))
    messages: list[dict[str, Any]] = []
    capture = cv2.VideoCapture(str(video))
    try:
        for index in range(truth["frames"]):
            ok, image = capture.read()
            assert ok, f"frame {index} unreadable"
            at = EPOCH + index / FPS
            messages += events.frame(Frame(image, index + 1, at), detector.detect(image), "demo", "1", at)
    finally:
        capture.release()
    messages += events.finish(EPOCH + truth["frames"] / FPS)
    assert all(m["reason"] == "left" for m in messages if m["event"] == "end")  # every object had left by the end
    check_against_truth(truth, messages)


def test_ten_minutes_at_5_fps_events_are_a_twentieth_of_frames_and_report_every_object() -> None:
    frames, width, height = 3000, 320, 240
    truth = track_truth(plan_tracks(1, frames, FPS, width, height), frames, FPS, width, height)
    assert len(truth["objects"]) >= 10 and {o["label"] for o in truth["objects"]} == {"blue box", "yellow box"}
    events = EventStream(EventsConfig(), device="dev", session="s", source="synthetic")
    messages: list[dict[str, Any]] = []
    for index, seen in enumerate(perturbed_detections(truth, seed=7)):
        observations = [Observation(*item) for item in seen]
        messages += events.observe(observations, EPOCH + index / FPS, width, height, seq=index + 1)
    messages += events.finish(EPOCH + frames / FPS)
    check_against_truth(truth, messages)
    frame_mode_messages = frames  # one per processed frame
    assert len(messages) * 20 <= frame_mode_messages, f"{len(messages)} event messages for {frames} frames"
    assert {m["label"] for m in messages} == {"blue box", "yellow box"}


@pytest.mark.slow  # rendering 150 frames at 640x480 is most of its ~30 s
def test_the_demo_video_through_the_pipeline_reports_every_class_and_ends_every_event(tmp_path: Path) -> None:
    video = tmp_path / "boxes.mp4"
    truth = render_video(str(video), seed=1, frames=150, width=640, height=480, fps=15.0)  # as `make demo` makes it
    assert sum(len(boxes) for boxes in truth) > 0
    recorder = RecordingPublisher()
    stop = threading.Event()
    source = make_source(SourceConfig(uri=str(video)), "source")
    detector = create_detector(ModelConfig(path=str(DEMO_MODEL)))
    daemon = one_source_daemon(
        source, detector, [recorder], stop, publish_mode="events", events=EventsConfig(), status_interval_s=0
    )
    daemon.start()
    assert wait_until(daemon.finished.is_set, 120.0)
    assert daemon.stop(5.0)
    messages = recorder.of_kind("detection")
    for message in messages:
        validate_message(message)
    news = sorted(m["id"] for m in messages if m["event"] == "new")
    assert news and news == sorted(m["id"] for m in messages if m["event"] == "end")
    assert {m["label"] for m in messages} == set(detector.info.class_names or ())
    assert daemon.stats.processed == 150 and len(messages) < 150
