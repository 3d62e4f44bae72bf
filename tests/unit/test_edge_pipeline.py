"""The pipeline with the in-repo fakes: queue policy, capture reconnects, messages per frame, ordered stop."""

from __future__ import annotations

import functools
import io
import json
import queue
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.daemon import Daemon
from edge_runtime.detectors.base import Detection, DetectionResult
from edge_runtime.detectors.fake import FakeDetector
from edge_runtime.errors import SourceError
from edge_runtime.frames import Frame, LatestQueue
from edge_runtime.health import percentile
from edge_runtime.messages import MAX_PAYLOAD_BYTES, detection_message, encode, fit_payload, validate_message
from edge_runtime.pipeline import ChangeFilter, InOrder
from edge_runtime.publishers.base import JsonlFilePublisher, RecordingPublisher, StdoutPublisher
from edge_runtime.sources.base import FakeSource, ImageFolderSource
from edge_runtime.sources.capture import Capture
from edge_runtime.sources.registry import guess_kind as source_kind
from tests.support.assembly import one_source_daemon
from tests.support.waiting import wait_until


def test_latest_queue_drops_oldest_and_counts() -> None:
    frames: LatestQueue[int] = LatestQueue(2)
    assert [frames.put(i) for i in range(4)] == [False, False, True, True]
    assert frames.dropped == 2
    assert [frames.get(timeout=0.01), frames.get(timeout=0.01)] == [2, 3]
    with pytest.raises(queue.Empty):
        frames.get(timeout=0.01)


def test_latest_queue_put_wait_gives_up_when_stopped() -> None:
    frames: LatestQueue[int] = LatestQueue(1)
    stop = threading.Event()
    frames.put(1)
    threading.Timer(0.05, stop.set).start()
    assert frames.put_wait(2, stop, poll_s=0.01) is False
    assert frames.dropped == 0 and len(frames) == 1


def one_box(call: int) -> list[Detection]:
    labels = ["thing"] if call % 3 else []
    return [Detection(label, 0, 0.9, (1.0, 2.0, 30.0, 40.0), (0.01, 0.04, 0.46, 0.83)) for label in labels]


def run_pipeline(source: FakeSource, **options) -> tuple[Daemon, RecordingPublisher]:
    recorder = RecordingPublisher()
    stop = threading.Event()
    pipeline = one_source_daemon(source, FakeDetector(script=one_box), [recorder], stop, device="dev-1", **options)
    pipeline.start()
    assert wait_until(pipeline.finished.is_set, 10.0)
    assert pipeline.stop(2.0)
    return pipeline, recorder


def test_file_source_every_frame_one_valid_message_then_drain() -> None:
    pipeline, recorder = run_pipeline(FakeSource(count=25), queue_size=2, status_interval_s=0)
    detections = recorder.of_kind("detection")
    assert [m["seq"] for m in detections] == list(range(1, 26))
    for message in detections:
        validate_message(message)
    assert detections[1]["detections"][0]["label"] == "thing" and detections[0]["detections"] == []
    assert pipeline.pipelines[0].capture.state == "ended" and pipeline.pipelines[0].frames.dropped == 0
    assert recorder.closed


def test_change_mode_publishes_on_label_change_only() -> None:
    _, recorder = run_pipeline(FakeSource(count=9), publish_mode="change", heartbeat_s=3600, status_interval_s=0)
    # calls 0..8 give labels [], [thing], [thing], [], [thing], [thing], [], ...: changes at 0, 1, 3, 4, 6, 7
    assert [m["seq"] for m in recorder.of_kind("detection")] == [1, 2, 4, 5, 7, 8]


def test_in_order_runs_steps_in_ticket_order_without_holding_back_a_finished_worker() -> None:
    order = InOrder()
    ran: list[int] = []
    order.deliver(1, lambda: ran.append(1), lambda: False, max_pending=2)  # returns at once: ticket 0 is not done
    order.deliver(2, None, lambda: False, max_pending=2)  # a failed detection: nothing to publish, its turn still ends
    assert ran == []
    order.deliver(0, lambda: ran.append(0), lambda: False, max_pending=2)  # runs 0, then the waiting 1, then 2
    assert ran == [0, 1]

    def broken() -> None:
        raise RuntimeError("publisher exploded")

    with pytest.raises(RuntimeError):
        order.deliver(3, broken, lambda: False)
    order.deliver(4, lambda: ran.append(4), lambda: False)  # the raising step ended its turn
    assert ran == [0, 1, 4]


def test_in_order_from_many_threads_keeps_order_and_bounds_what_waits() -> None:
    order = InOrder()
    ran: list[int] = []
    waiting: list[int] = []
    lock = threading.Lock()
    tickets = list(range(200))
    np.random.default_rng(3).shuffle(tickets)

    def worker(mine: list[int]) -> None:
        for ticket in mine:
            time.sleep(0.0005 * (ticket % 3))
            order.deliver(ticket, functools.partial(ran.append, ticket), lambda: False, max_pending=4)
            with lock:
                waiting.append(len(order._pending))

    threads = [threading.Thread(target=worker, args=(sorted(tickets[i::4]),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert ran == list(range(200))
    assert max(waiting) <= 4 + 4  # max_pending, plus at most one deposit per thread past the wait


def test_change_filter_heartbeat() -> None:
    now = [0.0]
    change = ChangeFilter(heartbeat_s=10, clock=lambda: now[0])
    assert change.should_publish(["a"]) and not change.should_publish(["a"])
    now[0] = 10.0
    assert change.should_publish(["a"])
    assert change.should_publish(["a", "a"])


def test_status_messages_validate_and_count() -> None:
    source = FakeSource(count=None, live=True)
    recorder = RecordingPublisher()
    stop = threading.Event()
    pipeline = one_source_daemon(source, FakeDetector(delay_s=0.005), [recorder], stop, status_interval_s=0.05)
    pipeline.start()
    assert wait_until(lambda: len(recorder.of_kind("status")) >= 2)
    assert pipeline.stop(2.0)
    statuses = recorder.of_kind("status")
    for message in statuses:
        validate_message(message)
    last = statuses[-1]
    assert last["state"] == "stopped"
    assert last["frames"]["processed"] == len(recorder.of_kind("detection")) > 0
    assert last["frames"]["captured"] >= last["frames"]["processed"] + last["frames"]["dropped"] - 2
    assert last["inference_ms"]["p50"] == pytest.approx(5.0)
    assert last["rss_bytes"] > 10_000_000


def test_live_source_reconnects_after_failures() -> None:
    source = FakeSource(count=None, live=True, fail_at=frozenset({3, 4, 9}))
    frames: LatestQueue[Frame] = LatestQueue(100)
    stop = threading.Event()
    capture = Capture(source, frames, stop, reconnect_initial_s=0.01, reconnect_max_s=0.02)
    capture.start()
    assert wait_until(lambda: capture.captured >= 20)
    stop.set()
    assert capture.join(2.0)
    assert capture.reconnects == 3 and source.opens == 4
    assert capture.state == "stopped" and not source.is_open


def test_live_max_fps_skips_early_frames() -> None:
    now = [0.0]

    def tick(_read: int) -> None:
        now[0] += 0.1  # a frame every 100 ms, cap at 4 fps: two frames of every five are accepted

    source = FakeSource(count=None, live=True, on_read=tick)
    frames: LatestQueue[Frame] = LatestQueue(1000)
    stop = threading.Event()
    capture = Capture(source, frames, stop, max_fps=4.0, clock=lambda: now[0])
    capture.start()
    assert wait_until(lambda: source.reads >= 30)
    stop.set()
    capture.join(2.0)
    assert capture.skipped > 0
    assert capture.captured == pytest.approx(source.reads * 0.4, abs=2)


def test_file_source_loop_restarts() -> None:
    source = FakeSource(count=3)
    frames: LatestQueue[Frame] = LatestQueue(1000)
    stop = threading.Event()
    capture = Capture(source, frames, stop, loop=True)
    capture.start()
    assert wait_until(lambda: capture.captured >= 10)
    stop.set()
    capture.join(2.0)
    assert source.opens >= 3 and not capture.ended.is_set()
    assert capture.state == "stopped"


def test_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="image folder not found"):
        ImageFolderSource(tmp_path / "nope").open()
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(tmp_path).open()


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("0", "camera"),
        ("rtsp://cam/1", "stream"),
        ("http://cam/mjpg", "stream"),
        ("x.mp4", "file"),
        ("v4l2src ! videoconvert ! appsink", "gstreamer"),
        ("gst:nvarguscamerasrc", "gstreamer"),
    ],
)
def test_source_kind_guesses(uri: str, kind: str) -> None:
    assert source_kind(uri) == kind


def test_payload_is_trimmed_to_fit() -> None:
    many = [Detection("x" * 50, 0, 1 - i / 1e5, (1.0, 2.0, 3.0, 4.0), (0.1, 0.2, 0.3, 0.4)) for i in range(3000)]
    message = detection_message(
        device="d",
        session="s",
        source="src",
        frame=Frame(np.zeros((2, 2, 3), np.uint8), 1, 0.0),
        result=DetectionResult(2, 2, many, {"preprocess": 0.0, "inference": 1.0, "postprocess": 0.0}),
        model_name="m",
        model_version="1",
        published_at=0.0,
    )
    assert len(encode(message)) <= MAX_PAYLOAD_BYTES
    assert message["truncated"] is True and message["detections_total"] == 3000
    assert 0 < len(message["detections"]) < 3000
    assert message["detections"][0]["score"] == 1.0
    validate_message(message)
    small = {"detections": [], "truncated": False}
    assert fit_payload(small) is small


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0


def test_file_publisher_rotates(tmp_path: Path) -> None:
    path = tmp_path / "out" / "d.jsonl"
    publisher = JsonlFilePublisher(path, max_bytes=1024, backups=2)
    for index in range(60):
        publisher.publish("detection", {"seq": index, "pad": "x" * 40})
    publisher.close(1.0)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["d.jsonl", "d.jsonl.1", "d.jsonl.2"]
    assert all(p.stat().st_size <= 1024 for p in path.parent.iterdir())
    seqs = [json.loads(line)["seq"] for name in ("d.jsonl.1", "d.jsonl") for line in (path.parent / name).open()]
    assert seqs == list(range(seqs[0], 60))


def test_stdout_publisher_writes_one_line_per_message() -> None:
    stream = io.StringIO()
    publisher = StdoutPublisher(stream)
    publisher.publish("detection", {"a": 1})
    publisher.publish("status", {"b": "é"})
    assert [json.loads(line) for line in stream.getvalue().splitlines()] == [{"a": 1}, {"b": "é"}]


def test_image_folder_reads_images_in_name_order_and_skips_bad_files(tmp_path: Path) -> None:
    fixtures = Path("/work/shared/fixtures/aws-sample/images")
    (tmp_path / "b.jpg").write_bytes((fixtures / "blue_box_1_000133.jpg").read_bytes())
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "c.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored")
    source = ImageFolderSource(tmp_path)
    source.open()
    image = source.read()
    assert image is not None and image.shape == (1080, 1920, 3)
    assert source.read() is None


def test_two_workers_overlap_but_publish_in_frame_order() -> None:
    """Even frames take longer than odd ones, so with two threads later frames finish first; seq stays ascending."""
    recorder = RecordingPublisher()
    stop = threading.Event()
    detector = FakeDetector(script=one_box, delay_s=lambda call: 0.03 if call % 2 == 0 else 0.001)
    pipeline = one_source_daemon(FakeSource(count=30), detector, [recorder], stop, workers=2, queue_size=4,
                                 status_interval_s=0)
    pipeline.start()
    assert wait_until(pipeline.finished.is_set, 10.0)
    assert pipeline.stop(2.0)
    assert [m["seq"] for m in recorder.of_kind("detection")] == list(range(1, 31))
    assert detector.max_concurrent == 2 and pipeline.stats.processed == 30
    assert pipeline.pipelines[0].capture.state == "ended" and pipeline.pipelines[0].frames.dropped == 0


def test_a_failed_frame_stops_the_pipeline_without_blocking_the_other_worker() -> None:
    def script(call: int) -> list[Detection]:
        if call == 5:
            raise RuntimeError("boom")
        return []

    recorder = RecordingPublisher()
    stop = threading.Event()
    detector = FakeDetector(script=script, delay_s=0.002)
    pipeline = one_source_daemon(FakeSource(count=None, live=True), detector, [recorder], stop, workers=2,
                                 status_interval_s=0)
    pipeline.start()
    assert wait_until(pipeline.finished.is_set, 5.0)
    assert pipeline.failed and stop.is_set()
    assert pipeline.stop(2.0)  # every thread ended
    seqs = [m["seq"] for m in recorder.of_kind("detection")]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


def test_inference_interval_spaces_takes_across_workers() -> None:
    recorder = RecordingPublisher()
    stop = threading.Event()
    pipeline = one_source_daemon(
        FakeSource(count=None, live=True), FakeDetector(), [recorder], stop,
        workers=2, inference_interval_s=0.1, status_interval_s=0,
    )  # fmt: skip
    pipeline.start()
    time.sleep(0.55)
    assert pipeline.stop(2.0)
    times = [m["published_at"] for m in recorder.of_kind("detection")]
    assert 4 <= len(times) <= 7  # one every 0.1 s over ~0.55 s, not two (one per worker)


class TroubledPublisher(RecordingPublisher):
    """Has a problem to report, and raises what no publisher should (a bug) on every detection."""

    name = "troubled"

    def publish(self, kind: str, message: dict) -> None:
        super().publish(kind, message)
        if kind == "detection":
            raise RuntimeError("a bug in a publisher")

    def problems(self) -> list:
        from edge_runtime.publishers.base import Problem

        return [Problem("mqtt", "mqtt: cannot resolve host 'x.invalid' (publish.mqtt.host)", time.time() - 5)]


def test_degraded_status_and_a_failing_publisher_never_ends_inference() -> None:
    troubled = TroubledPublisher()
    healthy = RecordingPublisher()
    stop = threading.Event()
    pipeline = one_source_daemon(FakeSource(count=12), FakeDetector(script=one_box), [troubled, healthy], stop,
                        status_interval_s=0.05)  # fmt: skip
    pipeline.start()
    assert wait_until(pipeline.finished.is_set, 10.0)
    assert pipeline.stop(2.0) and not pipeline.failed
    assert len(healthy.of_kind("detection")) == 12  # every frame, although the other publisher raised each time
    assert pipeline.stats.publish_errors == 12
    running = [m for m in healthy.of_kind("status") if m["state"] != "stopped"]
    assert running and all(m["state"] == "degraded" for m in running)
    for message in running:
        validate_message(message)
        (problem,) = message["problems"]
        assert problem["part"] == "mqtt" and "cannot resolve host" in problem["reason"]
