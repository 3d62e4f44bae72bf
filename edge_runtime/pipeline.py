"""One Pipeline per source: capture -> newest-wins queue -> (the shared detector) -> :meth:`Pipeline.handle`.

The daemon (:mod:`edge_runtime.daemon`) owns the session, the publishers (behind one
:class:`~edge_runtime.outlet.Outlet`) and one detector shared by every source
(:class:`~edge_runtime.scheduler.SharedDetector`); it builds one Pipeline per source. A Pipeline owns what is
per source: the capture thread (:mod:`edge_runtime.sources.capture`), its frame queue, its frame order, its
publish-on-change filter and snapshots. Data flows one way: capture puts frames in the queue, the shared detector
takes them (round-robin over the sources) and hands each frame with its detections to :meth:`Pipeline.handle`,
which builds the messages and passes them forward to the outlet.

:meth:`Pipeline.handle` is THE place where one processed frame's result (source id, frame, detections) reaches the
publishing step: a tracker or a frame sampler hooks in there.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from edge_runtime.config import RuntimeConfig, SourceConfig
from edge_runtime.detectors.base import DetectionResult
from edge_runtime.events.builder import EventStream
from edge_runtime.events.config import EventsConfig
from edge_runtime.frames import Doorbell, Frame, LatestQueue
from edge_runtime.messages import detection_message
from edge_runtime.outlet import Outlet
from edge_runtime.publishers.base import Problem
from edge_runtime.samples import Sampler
from edge_runtime.snapshots import SnapshotConfig, Snapshotter
from edge_runtime.sources.base import FrameSource
from edge_runtime.sources.capture import Capture

log = logging.getLogger(__name__)

POLL_S = 0.1


@dataclass(frozen=True)
class Session:
    """Who publishes with what: the device (thing name), this run's session id (minted once by the daemon) and the
    shared detector's model."""

    device: str
    id: str
    model_name: str = ""
    model_version: str = ""


@dataclass(frozen=True)
class PipelineSettings:
    """Everything one Pipeline is configured by: its source section (id, uri, pacing, stall, reconnect) and how
    its results are published."""

    source: SourceConfig
    key: str = "source"  # where the section is in the config, for errors: source, sources.1
    publish_mode: str = "frame"
    heartbeat_s: float = 10.0
    snapshots: Optional[SnapshotConfig] = None
    events: Optional[EventsConfig] = None  # publish.mode events: the tracker's and event messages' settings

    @property
    def source_id(self) -> str:
        return self.source.id or str(self.source.uri)

    @classmethod
    def from_config(cls, config: RuntimeConfig, key: str, source: SourceConfig) -> PipelineSettings:
        return cls(source, key, config.publish.mode, config.publish.heartbeat_s, config.snapshots, config.events)


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
    """Publishing turns within one source: ticket ``n``'s publishing step runs once tickets ``0..n-1``'s have run.

    Several inference threads may detect frames of one source side by side; each hands its frame's publishing step
    over (:meth:`deliver`) and goes back to inference. The step runs in ticket order, one at a time: in the thread
    that completes the run of ready tickets, while the others are already detecting their next frame. Waiting for
    one's turn instead (as this class once did) left a worker idle behind every slower frame: 14% of the workers'
    time on a 16-core device (py-spy, OpenVINO bf16 at 110 fps). At most ``max_pending`` finished frames wait for
    their turn (each holds its image), and every taken ticket is delivered, even when detection fails.
    """

    def __init__(self) -> None:
        self._turns = threading.Condition()
        self._next = 0
        self._pending: dict[int, Optional[Callable[[], None]]] = {}
        self._draining = False

    def deliver(
        self, ticket: int, step: Optional[Callable[[], None]], give_up: Callable[[], bool], max_pending: int = 1
    ) -> None:
        """Queue ``ticket``'s publishing ``step`` (None: nothing to publish) and run every step whose turn has come
        unless another thread is running them. Waits (polling ``give_up``) only while ``max_pending`` steps of
        later tickets already wait. A step that raises ends its turn and propagates in the thread that ran it."""
        with self._turns:
            while ticket != self._next and len(self._pending) >= max_pending and not give_up():
                self._turns.wait(POLL_S)
            self._pending[ticket] = step
            if self._draining:
                return  # the thread running steps now will run this one in its turn
            self._draining = True
            try:
                while self._next in self._pending:
                    ready = self._pending.pop(self._next)
                    self._turns.release()
                    try:
                        if ready is not None:
                            ready()
                    finally:
                        self._turns.acquire()
                        self._next += 1
                        self._turns.notify_all()
            finally:
                self._draining = False


class Pipeline:
    """One source's capture, queue, order and publishing; the detector that serves it is shared and outside."""

    def __init__(
        self,
        settings: PipelineSettings,
        source: FrameSource,
        session: Session,
        outlet: Outlet,
        stop: threading.Event,
        doorbell: Doorbell | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        self.settings = settings
        self.id = settings.source_id
        self.session = session
        self.outlet = outlet
        section = settings.source
        self.frames: LatestQueue[Frame] = LatestQueue(section.queue_size, doorbell)
        self.capture = Capture(
            source, self.frames, stop, section.loop, section.max_fps, section.reconnect_initial_s,
            section.reconnect_max_s, source_id=self.id,
        )  # fmt: skip
        self.order = InOrder()
        self.processed = 0
        self._tickets = 0  # frames taken so far: the next frame's ticket
        self._take_lock = threading.Lock()
        self.change_filter = ChangeFilter(settings.heartbeat_s) if settings.publish_mode == "change" else None
        snapshots = settings.snapshots
        self.snapshots = Snapshotter(snapshots) if snapshots is not None and snapshots.enabled else None
        self._problem_since: float | None = None
        self.sampler = sampler  # samples for labeling (edge_runtime/samples), shared by the daemon's sources
        self.events = (  # publish.mode events: this source's tracker; its messages replace the frames'
            EventStream(settings.events or EventsConfig(), device=session.device, session=session.id, source=self.id,
                        snapshots=snapshots)
            if settings.publish_mode == "events"
            else None
        )  # fmt: skip

    @property
    def uri(self) -> str:
        return str(self.settings.source.uri)

    def start(self) -> None:
        """Open a file source now (a missing file is fatal), then start the capture thread."""
        if not self.capture.source.live:
            self.capture.open_now()
        self.capture.start(f"capture-{self.id}"[:64])

    def take(self) -> tuple[int, Frame] | None:
        """The oldest waiting frame with its publishing ticket, or None when none waits (never blocks)."""
        with self._take_lock:  # tickets in queue order
            frame = self.frames.get_nowait()
            if frame is None:
                return None
            self._tickets += 1
            return self._tickets - 1, frame

    @property
    def exhausted(self) -> bool:
        """A file source has ended and every frame it gave was taken: nothing more will come."""
        return self.capture.ended.is_set() and len(self.frames) == 0

    def handle(self, frame: Frame, result: DetectionResult) -> None:
        """One processed frame of this source -> the publishing step. Runs in frame order, one thread at a time.

        The hook point for what works on each frame's result (an object tracker, a frame sampler): it has the
        source id (``self.id``, also ``frame.source``), the frame and its detections.
        """
        self.processed += 1
        self.outlet.stats.frame_done(result.timings_ms.get("inference", 0.0), (d.label for d in result.detections))
        if self.sampler is not None:  # every processed frame, not only the published ones
            self.sampler.offer(frame, result, self.id)
        if self.events is not None:  # publish.mode events: what the tracker makes of this frame, instead of the frame
            for event in self.events.frame(frame, result, self.session.model_name, self.session.model_version,
                                           time.time()):  # fmt: skip
                self.outlet.publish("detection", event)
            return
        if self.change_filter and not self.change_filter.should_publish([d.label for d in result.detections]):
            return
        message = detection_message(
            device=self.session.device,
            session=self.session.id,
            source=self.id,
            frame=frame,
            result=result,
            model_name=self.session.model_name,
            model_version=self.session.model_version,
            published_at=time.time(),
        )
        self.outlet.publish("detection", message)
        snapshot = self.snapshots.take(frame.image, message) if self.snapshots is not None else None
        if snapshot is not None:
            self.outlet.publish("snapshot", snapshot)

    def finish_events(self) -> None:
        """The stop: every open event of this source ends (called once the frames in flight are done, before the
        publishers flush, so the ends reach the outbox)."""
        if self.events is not None:
            for event in self.events.finish(time.time()):
                self.outlet.publish("detection", event)

    def problem(self) -> Problem | None:
        """Why this source gives no frames now, if it does not: reconnecting, failed, or connecting for longer than
        its stall timeout (a camera unreachable from the start); the uri is named."""
        state = self.capture.state
        waited = self.capture.clock() - self.capture.state_since
        stuck = state in ("starting", "connecting") and waited > self.settings.source.stall_timeout_s
        if state in ("reconnecting", "failed") or stuck:
            if self._problem_since is None:
                self._problem_since = time.time()
            name = self.uri if self.id == self.uri else f"{self.id} ({self.uri})"
            if stuck:
                limit = self.settings.source.stall_timeout_s
                reason = f"source {name}: no connection after {waited:.1f} s (stall_timeout_s {limit:g})"
            else:
                reason = f"source {name}: {state} ({self.capture.reconnects} reconnects so far)"
            if self.capture.last_error:
                reason += f": {self.capture.last_error}"
            return Problem("source", reason, self._problem_since)
        self._problem_since = None
        return None

    def status(self) -> dict[str, Any]:
        """This source's entry in the status message (status.schema.json ``sources``)."""
        return {
            "id": self.id,
            "uri": self.uri,
            "state": self.capture.state,
            "reconnects": self.capture.reconnects,
            "captured": self.capture.captured,
            "processed": self.processed,
            "dropped": self.frames.dropped,
            "skipped": self.capture.skipped,
        }

