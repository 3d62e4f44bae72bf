"""The pipeline: capture -> newest-wins queue -> detector -> publishers, plus periodic status, under one stop event.

It knows only the seams (:class:`FrameSource`, :class:`Detector`, :class:`Publisher`), so unit tests run it with
the fakes. Threads: ``capture`` (see :mod:`edge_runtime.sources.capture`), ``workers`` inference threads (detect, build
the message, publish) and ``status``. With more than one inference thread, frames are detected side by side but
published in the order they left the queue (:class:`InOrder`), so subscribers still see ``seq`` ascending. Every
loop waits on ``get(timeout=...)`` or ``stop.wait(...)``, so setting the event ends them within a poll.
:meth:`stop` is ordered: capture first (no new frames), then the frames in flight finish, then status, then
publishers are closed (flushing an outbox) within what remains of the time bound.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from typing import Any, Callable

from edge_runtime.detectors.base import DetectionResult, Detector
from edge_runtime.errors import PublishError, PublishRefusedError
from edge_runtime.frames import Frame, LatestQueue
from edge_runtime.health import Stats, rss_bytes
from edge_runtime.messages import detection_message, status_message
from edge_runtime.publishers.base import Problem, Publisher
from edge_runtime.snapshots import SnapshotConfig, Snapshotter
from edge_runtime.sources.base import FrameSource
from edge_runtime.sources.capture import Capture

log = logging.getLogger(__name__)

POLL_S = 0.1


class ChangeFilter:
    """Publish-on-change: True when the labels seen differ from the last published frame, or every heartbeat."""

    def __init__(self, heartbeat_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self._last_labels: tuple[str, ...] | None = None
        self._last_at = float("-inf")

    def should_publish(self, labels: list[str]) -> bool:
        key = tuple(sorted(labels))  # a multiset: one more box of a kind is a change too
        now = self.clock()
        if key != self._last_labels or now - self._last_at >= self.heartbeat_s:
            self._last_labels = key
            self._last_at = now
            return True
        return False


class InOrder:
    """Publishing turns: the holder of ticket ``n`` (the ``n``-th frame taken) goes once tickets ``0..n-1`` are done.

    Each inference thread takes a frame with its ticket (:meth:`Pipeline._take`), detects at its own pace, then
    waits for its turn (:meth:`wait_turn`) to update the stats and publish. A turn always ends (:meth:`done`), even
    when detection fails, so one failed frame cannot hold back the others; waits poll so a stuck turn never blocks
    the stop event.
    """

    def __init__(self) -> None:
        self._turns = threading.Condition()
        self._next = 0

    def wait_turn(self, ticket: int, give_up: Callable[[], bool]) -> bool:
        """Block until ``ticket`` is next (True), or ``give_up()`` says the pipeline failed (False)."""
        with self._turns:
            while self._next != ticket:
                if give_up():
                    return False
                self._turns.wait(POLL_S)
            return True

    def done(self, ticket: int) -> None:
        """``ticket`` has published (or given up): the next one may go."""
        with self._turns:
            self._next = max(self._next, ticket + 1)
            self._turns.notify_all()


class Pipeline:
    def __init__(
        self,
        source: FrameSource,
        detector: Detector,
        publishers: list[Publisher],
        stop: threading.Event,
        *,
        device: str = "edge-device",
        source_uri: str | None = None,
        queue_size: int = 2,
        loop: bool = False,
        max_fps: float | None = None,
        inference_interval_s: float = 0.0,
        workers: int = 1,
        publish_mode: str = "frame",
        heartbeat_s: float = 10.0,
        status_interval_s: float = 30.0,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        snapshots: SnapshotConfig | None = None,
    ) -> None:
        self.detector = detector
        self.publishers = publishers
        self.stop_event = stop
        self.device = device
        self.session = uuid.uuid4().hex[:12]
        self.source_uri = source_uri or source.name
        self.frames: LatestQueue[Frame] = LatestQueue(queue_size)
        self.capture = Capture(source, self.frames, stop, loop, max_fps, reconnect_initial_s, reconnect_max_s)
        self.inference_interval_s = inference_interval_s
        self.workers = workers
        self.order = InOrder()
        self._last_take = float("-inf")  # monotonic time a frame was last taken, for the inference interval
        self._tickets = 0  # frames taken so far: the next frame's ticket
        self._take_lock = threading.Lock()
        self._running_workers = workers
        self._workers_lock = threading.Lock()
        self.change_filter = ChangeFilter(heartbeat_s) if publish_mode == "change" else None
        self.status_interval_s = status_interval_s
        self.stats = Stats()
        self.finished = threading.Event()  # the inference loop has ended (drained, stopped or failed)
        self.failed = False
        self.fatal_error: PublishRefusedError | None = None  # a publisher refused for good: the daemon exits with it
        self.started = False
        self._threads: list[threading.Thread] = []
        self._source_problem_since: float | None = None
        self.snapshots = Snapshotter(snapshots) if snapshots is not None and snapshots.enabled else None

    def set_inference_interval(self, seconds: float) -> None:
        """A live configuration update: the inference loop reads the interval afresh after each frame."""
        self.inference_interval_s = seconds

    def start(self) -> None:
        """Open a file source now (a missing file is fatal), then start the threads."""
        if not self.capture.source.live:
            self.capture.open_now()
        self.capture.start()
        self.started = True
        for index in range(self.workers):
            self._spawn(self._inference_loop, "inference" if self.workers == 1 else f"inference-{index + 1}")
        if self.status_interval_s > 0:
            self._spawn(self._status_loop, "status")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _inference_loop(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    ticket, frame = self._take()
                except queue.Empty:
                    if self.capture.ended.is_set() and len(self.frames) == 0:
                        break  # a file source has ended and everything it gave is processed
                    continue
                try:
                    result = self.detector.detect(frame.image)
                    if self.order.wait_turn(ticket, lambda: self.failed):
                        self._publish_result(frame, result)
                finally:
                    self.order.done(ticket)
        except Exception:
            log.exception("inference thread failed")
            self.failed = True
        finally:
            with self._workers_lock:
                self._running_workers -= 1
                last = self._running_workers == 0
            if last or self.failed:
                self.stop_event.set()
            if last:
                self.finished.set()

    def _take(self) -> tuple[int, Frame]:
        """The next frame and its ticket, no sooner than ``inference_interval_s`` after the previous take."""
        with self._take_lock:  # tickets in queue order, and one interval however many threads infer
            if self.inference_interval_s > 0:
                wait = self._last_take + self.inference_interval_s - time.monotonic()
                if wait > 0:
                    self.stop_event.wait(min(wait, POLL_S))
                    raise queue.Empty  # back to the loop, which notices a stop, then here again
            frame = self.frames.get(timeout=POLL_S)
            self._last_take = time.monotonic()
            self._tickets += 1
            return self._tickets - 1, frame

    def _publish_result(self, frame: Frame, result: DetectionResult) -> None:
        """Stats and the message for one detected frame; runs in ticket order, one thread at a time."""
        self.stats.frame_done(result.timings_ms.get("inference", 0.0), (d.label for d in result.detections))
        if self.change_filter and not self.change_filter.should_publish([d.label for d in result.detections]):
            return
        message = detection_message(
            device=self.device,
            session=self.session,
            source=self.source_uri,
            frame=frame,
            result=result,
            model_name=self.detector.info.name,
            model_version=self.detector.info.version,
            published_at=time.time(),
        )
        self._publish("detection", message)
        snapshot = self.snapshots.take(frame.image, message) if self.snapshots is not None else None
        if snapshot is not None:
            self._publish("snapshot", snapshot)

    def _publish(self, kind: str, message: dict[str, Any]) -> None:
        """Hand ``message`` to every publisher. Nothing a publisher raises ends the calling thread: a refusal for
        good (here or later, from a sender thread: :meth:`Publisher.fatal`) stops the pipeline with it, anything
        else is counted and logged at a bounded rate."""
        for publisher in self.publishers:
            try:
                publisher.publish(kind, message)
                self.stats.message_published(True)
            except PublishRefusedError as error:
                self.stats.message_published(False)
                self._stop_on_refusal(error)
            except Exception as error:  # PublishError, or a publisher's bug: never the inference thread's end
                self.stats.message_published(False)
                if self.stats.publish_errors % 100 == 1:  # the first, then every 100th: no log flood
                    text = str(error) if isinstance(error, PublishError) else f"{publisher.name}: {error!r}"
                    log.error("%s (%d publish errors so far)", text, self.stats.publish_errors)
            refusal = publisher.fatal()
            if refusal is not None:
                self._stop_on_refusal(refusal)

    def _stop_on_refusal(self, error: PublishRefusedError) -> None:
        if self.fatal_error is None:  # the first refusal stops the pipeline; later ones are the same news
            self.fatal_error = error
            log.error("%s; stopping: nothing can be delivered", error)
            self.failed = True
            self.stop_event.set()

    def problems(self) -> list[Problem]:
        """What keeps the device from doing its job now: every publisher's, and a live source that is away."""
        problems = [problem for publisher in self.publishers for problem in publisher.problems()]
        if self.capture.state in ("reconnecting", "failed"):
            if self._source_problem_since is None:
                self._source_problem_since = time.time()
            reason = f"source {self.capture.state} ({self.capture.reconnects} reconnects so far)"
            problems.append(Problem("source", reason, self._source_problem_since))
        else:
            self._source_problem_since = None
        return problems

    def status(self, state: str) -> dict[str, Any]:
        """The status message; ``running`` becomes ``degraded`` while :meth:`problems` has any."""
        problems = self.problems()
        if state == "running" and problems:
            state = "degraded"
        p50, p95 = self.stats.inference_percentiles()
        fps_in, fps_out = self.stats.rates(self.capture.captured)
        outbox: dict[str, int] | None = None
        for publisher in self.publishers:  # the sum over every publisher's outbox
            stats = publisher.outbox_stats()
            if stats is not None:
                outbox = {key: (outbox or {}).get(key, 0) + value for key, value in stats.items()}
        return status_message(
            device=self.device,
            session=self.session,
            state=state,
            at=time.time(),
            uptime_s=round(self.stats.uptime_s(), 3),
            engine=self.detector.engine_status(),
            fps_in=round(fps_in, 3),
            fps_out=round(fps_out, 3),
            inference_ms={"p50": _round(p50), "p95": _round(p95)},
            frames={
                "captured": self.capture.captured,
                "processed": self.stats.processed,
                "dropped": self.frames.dropped,
                "skipped": self.capture.skipped,
            },
            messages={"published": self.stats.published, "publish_errors": self.stats.publish_errors},
            source={"uri": self.source_uri, "state": self.capture.state, "reconnects": self.capture.reconnects},
            outbox=outbox,
            rss_bytes=rss_bytes(),
            **({"problems": [problem.to_dict() for problem in problems]} if problems else {}),
        )

    def _status_loop(self) -> None:
        while not self.stop_event.wait(self.status_interval_s):
            self._publish("status", self.status("running"))

    def wait(self, poll_s: float = 0.5) -> None:
        """Block (in the main thread, so signal handlers run) until the stop event is set."""
        while not self.stop_event.wait(poll_s):
            pass

    def stop(self, timeout_s: float) -> bool:
        """Ordered shutdown within ``timeout_s``; True when every thread ended and publishers closed in time."""
        deadline = time.monotonic() + timeout_s
        self.stop_event.set()
        clean = self.capture.join(max(0.0, deadline - time.monotonic()) * 0.5)
        for thread in self._threads:  # inference finishes the frame in flight; status wakes from its wait
            thread.join(max(0.0, deadline - time.monotonic()) * 0.5)
            clean = clean and not thread.is_alive()
        waiting = self.frames.clear()
        if waiting:
            log.info("stopping: %d captured frames not processed", waiting)
        if self.started and self.status_interval_s > 0:
            final = self.status("stopped")
            if self.fatal_error is not None:
                final["error"] = str(self.fatal_error)
            self._publish("status", final)
        for publisher in self.publishers:
            try:
                publisher.close(max(0.0, deadline - time.monotonic()))
            except PublishError as error:
                log.error("%s", error)
                clean = False
        return clean


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
