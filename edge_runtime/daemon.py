"""``edge-runtime run``: the daemon assembles its parts forward, runs until SIGTERM/SIGINT or every file's end, exits.

Assembly, in order (:func:`build_daemon`): the detector (one, shared by every source), each source's adapter
(from :mod:`edge_runtime.sources.registry`; a file that does not exist or a camera that cannot be there fails
here), the session id, the publishers behind one :class:`~edge_runtime.outlet.Outlet`, one
:class:`~edge_runtime.pipeline.Pipeline` per source, and the :class:`~edge_runtime.scheduler.SharedDetector` that
serves them all. Fatal problems found while building raise :class:`EdgeRuntimeError`, which the CLI prints as one
line with exit code 2, before any thread starts. SIGTERM and SIGINT only set the stop event; the main thread then
runs the ordered stop, bounded by ``shutdown_timeout_s`` (default 4 s, inside the 5 s Greengrass and systemd allow
before SIGKILL).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from edge_runtime.config import RuntimeConfig
from edge_runtime.detectors import create_detector
from edge_runtime.detectors.base import Detector
from edge_runtime.errors import EdgeRuntimeError, PublishError, PublishRefusedError, SourceError
from edge_runtime.frames import Doorbell
from edge_runtime.health import Stats, rss_bytes
from edge_runtime.messages import status_message
from edge_runtime.outlet import Outlet
from edge_runtime.pipeline import Pipeline, PipelineSettings, Session
from edge_runtime.publishers.base import Problem, Publisher
from edge_runtime.publishers.registry import PublisherContext, build_publishers, state_dir
from edge_runtime.samples import Sampler, build_sampler
from edge_runtime.scheduler import SharedDetector
from edge_runtime.sources.base import FrameSource
from edge_runtime.sources.registry import make_source
from edge_runtime.stop_signals import stop_on_signals

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1


FRAME_COUNTS = ("captured", "processed", "dropped", "skipped")
FAIL_FAST_WAIT_S = 10.0  # --fail-fast: how long the first connection attempt may take


@dataclass(frozen=True)
class DaemonSettings:
    """What the daemon itself is configured by (each Pipeline has its own :class:`PipelineSettings`)."""

    device: str = "edge-device"
    workers: int = 1
    inference_interval_s: float = 0.0
    status_interval_s: float = 30.0

    @classmethod
    def from_config(cls, config: RuntimeConfig, engine_concurrency: int = 1) -> DaemonSettings:
        """``engine_concurrency``: the requests the engine runs side by side (an OpenVINO stream each); the daemon
        runs at least as many inference threads, so none of them idles."""
        workers = max(config.model.workers, engine_concurrency)
        return cls(config.thing_name, workers, config.inference.interval_s, config.status.interval_s)


def log_recommended_thresholds(detector: Any, config: RuntimeConfig) -> None:
    """Say when model.json's recommended per-class thresholds apply (the config sets none): they can change what is
    detected a lot, so never silently."""
    recommended = detector.info.recommended_thresholds
    if recommended and not config.model.class_thresholds:
        log.info("class thresholds from the model's evaluation (model.json, written by evaluate --record): %s;"
                 " set model.class_thresholds to override", ", ".join(f"{k} {v:g}" for k, v in recommended.items()))


def check_first_connections(
    publishers: list[Publisher], timeout_s: float = FAIL_FAST_WAIT_S, stop: Optional[threading.Event] = None
) -> None:
    """``publish.fail_fast``: the first connection attempt of every remote publisher must succeed (PublishError);
    ``stop`` set (a signal during start-up) ends the wait at once, as connecting no longer matters."""
    deadline = time.monotonic() + timeout_s
    for publisher in publishers:
        problem = publisher.first_outcome(max(0.1, deadline - time.monotonic()), stop)
        if stop is not None and stop.is_set():
            return
        if problem is not None:
            raise PublishError(f"{problem.reason} (publish.fail_fast: not retrying)")


class Daemon:
    """The session, the publishers (one outlet), one detector shared by one Pipeline per source, and the status.

    ``publishers``, ``detector``, ``stop_event`` and :meth:`set_inference_interval` are what a live configuration
    update (Greengrass) reaches.
    """

    def __init__(
        self,
        settings: DaemonSettings,
        detector: Detector,
        publishers: list[Publisher],
        sources: Sequence[tuple[PipelineSettings, FrameSource]],
        stop: threading.Event | None = None,
        session: str | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        if not sources:
            raise ValueError("a daemon needs at least one source")
        self.settings = settings
        self.stop_event = stop or threading.Event()
        self.detector = detector
        self.session = Session(settings.device, session or uuid.uuid4().hex[:12], detector.info.name,
                               detector.info.version)  # fmt: skip
        self.stats = Stats()
        self.outlet = Outlet(publishers, self.stop_event, self.stats)
        doorbell = Doorbell()
        self.sampler = sampler  # frames for labeling (samples.enabled): one spool and uploader for every source
        self.pipelines = [
            Pipeline(pipeline_settings, source, self.session, self.outlet, self.stop_event, doorbell, sampler)
            for pipeline_settings, source in sources
        ]
        self.shared = SharedDetector(detector, self.pipelines, self.stop_event, doorbell, settings.workers,
                                     settings.inference_interval_s)  # fmt: skip
        self.started = False
        self._status_thread: threading.Thread | None = None

    # -- what others reach (Greengrass live configuration, the CLI, tests)
    @property
    def publishers(self) -> list[Publisher]:
        return self.outlet.publishers

    @property
    def finished(self) -> threading.Event:
        return self.shared.finished

    @property
    def failed(self) -> bool:
        return self.shared.failed or self.outlet.fatal_error is not None

    @property
    def fatal_error(self) -> PublishRefusedError | None:
        return self.outlet.fatal_error

    @property
    def source_error(self) -> SourceError | None:
        return next((p.capture.error for p in self.pipelines if p.capture.error is not None), None)

    def set_inference_interval(self, seconds: float) -> None:
        """A live configuration update: the inference threads read the interval afresh on each take."""
        self.shared.inference_interval_s = seconds

    # -- running
    def start(self) -> None:
        """Open file sources now (a missing file is fatal), then start captures, inference and status."""
        for pipeline in self.pipelines:
            if not pipeline.capture.source.live:
                pipeline.capture.open_now()
        for pipeline in self.pipelines:
            pipeline.start()
        self.started = True
        if self.sampler is not None:
            self.sampler.start()
        self.shared.start()
        if self.settings.status_interval_s > 0:
            self._status_thread = threading.Thread(target=self._status_loop, name="status", daemon=True)
            self._status_thread.start()

    def _status_loop(self) -> None:
        while not self.stop_event.wait(self.settings.status_interval_s):
            self.outlet.publish("status", self.status("running"))

    def wait(self, poll_s: float = 0.5) -> None:
        """Block (in the main thread, so signal handlers run) until the stop event is set."""
        while not self.stop_event.wait(poll_s):
            pass

    def problems(self) -> list[Problem]:
        """What keeps the device from doing its job now: every publisher's, and each source that is away."""
        problems = self.outlet.problems()
        problems += [problem for problem in (p.problem() for p in self.pipelines) if problem is not None]
        return problems

    def status(self, state: str) -> dict[str, Any]:
        """The status message; ``running`` becomes ``degraded`` while :meth:`problems` has any."""
        problems = self.problems()
        if state == "running" and problems:
            state = "degraded"
        p50, p95 = self.stats.inference_percentiles()
        sources = [pipeline.status() for pipeline in self.pipelines]
        fps_in, fps_out = self.stats.rates(sum(entry["captured"] for entry in sources))
        first = sources[0]
        return status_message(
            device=self.session.device,
            session=self.session.id,
            state=state,
            at=time.time(),
            uptime_s=round(self.stats.uptime_s(), 3),
            engine=self.detector.engine_status(),
            fps_in=round(fps_in, 3),
            fps_out=round(fps_out, 3),
            inference_ms={"p50": _round(p50), "p95": _round(p95)},
            frames={key: sum(entry[key] for entry in sources) for key in FRAME_COUNTS},
            messages={"published": self.stats.published, "publish_errors": self.stats.publish_errors},
            source={"id": first["id"], "uri": first["uri"], "state": first["state"], "reconnects": first["reconnects"]},
            sources=sources,
            outbox=self.outlet.outbox_stats(),
            rss_bytes=rss_bytes(),
            **({"samples": self.sampler.stats()} if self.sampler is not None else {}),
            **({"problems": [problem.to_dict() for problem in problems]} if problems else {}),
        )

    def stop(self, timeout_s: float) -> bool:
        """Ordered shutdown within ``timeout_s``: captures (no new frames), the frames in flight, status, then the
        publishers (flushing outboxes) in what remains. True when every thread ended and publishers closed in time."""
        deadline = time.monotonic() + timeout_s
        self.stop_event.set()
        clean = True
        for pipeline in self.pipelines:
            clean = pipeline.capture.join(max(0.0, deadline - time.monotonic()) * 0.5) and clean
        clean = self.shared.join(deadline) and clean
        if self._status_thread is not None:
            self._status_thread.join(max(0.0, deadline - time.monotonic()) * 0.5)
            clean = clean and not self._status_thread.is_alive()
        for pipeline in self.pipelines:  # every open event ends before the publishers flush (publish.mode events)
            pipeline.finish_events()
        waiting = sum(pipeline.frames.clear() for pipeline in self.pipelines)
        if waiting:
            log.info("stopping: %d captured frames not processed", waiting)
        if self.started and self.settings.status_interval_s > 0:
            final = self.status("stopped")
            if self.fatal_error is not None:
                final["error"] = str(self.fatal_error)
            self.outlet.publish("status", final)
        clean = self.outlet.close(timeout_s, deadline) and clean
        if self.sampler is not None:  # what is not uploaded stays in the spool for the next run
            clean = self.sampler.close(max(0.0, deadline - time.monotonic())) and clean
        return clean


def build_daemon(config: RuntimeConfig, stop: threading.Event, ipc: Any = None) -> Daemon:
    """The daemon for ``config``; ``ipc`` is the nucleus connection (an ``IpcConnection``) inside Greengrass."""
    sources: list[tuple[PipelineSettings, FrameSource]] = []
    for key, section in config.source_list():  # first: these checks take milliseconds, loading a model seconds
        source = make_source(section, key)
        source.check()  # what cannot work however long we retry (no such device, no GStreamer): exit 2 now
        if not source.live:  # a missing file or an empty folder fails here, before any output file or outbox exists
            source.open()
            source.close()
        sources.append((PipelineSettings.from_config(config, key, section), source))
    # state_dir: compiled-model caches and auto's measured engine choice (edge_runtime.detectors.choice)
    detector = create_detector(config.model, state_dir=state_dir(config, os.environ))
    session = uuid.uuid4().hex[:12]
    publishers = build_publishers(PublisherContext(config, session, ipc))
    sampler = build_sampler(config.samples, config.thing_name, detector.info, state_dir(config, os.environ), stop)
    settings = DaemonSettings.from_config(config, detector.concurrency)
    daemon = Daemon(settings, detector, publishers, sources, stop, session, sampler)
    if config.publish.fail_fast:
        try:
            check_first_connections(daemon.publishers, stop=stop)
        except PublishError:
            daemon.stop(1.0)
            raise
    return daemon


# the name the Greengrass component and older callers know
build_pipeline = build_daemon


def run_daemon(
    config: RuntimeConfig,
    ipc: Any = None,
    on_running: Optional[Callable[[Daemon], None]] = None,
) -> int:
    """Run until stopped; ``on_running(daemon)`` is called once the threads run (Greengrass: subscribe, report)."""
    stop = threading.Event()
    with stop_on_signals(stop, "edge-runtime run"):  # from before the build: a signal during start-up stops too
        daemon = build_daemon(config, stop, ipc)
        try:
            daemon.start()  # even when already stopping: the threads end at once and stop() sends `stopped`
        except EdgeRuntimeError:
            daemon.stop(config.shutdown_timeout_s)
            raise
        log.info(
            "running: model %s %s (%s), %s, publishing to %s",
            daemon.detector.info.name,
            daemon.detector.info.version,
            ", ".join(f"{key} {value}" for key, value in daemon.detector.describe().items()),
            "sources " + ", ".join(_described(p) for p in daemon.pipelines) if len(daemon.pipelines) > 1
            else f"source {_described(daemon.pipelines[0])}",
            ", ".join(p.name for p in daemon.publishers),
        )  # fmt: skip
        log_recommended_thresholds(daemon.detector, config)
        if on_running is not None:
            try:
                on_running(daemon)
            except EdgeRuntimeError:
                daemon.stop(config.shutdown_timeout_s)
                raise
        daemon.wait()
        stopping_at = time.monotonic()
        clean = daemon.stop(config.shutdown_timeout_s)
        if not clean:  # the time it really took: stop() gives up on a thread before the whole bound is spent
            log.warning("shutdown did not complete: gave up after %.1fs (bound %.1fs)",
                        time.monotonic() - stopping_at, config.shutdown_timeout_s)
    if daemon.fatal_error is not None:  # e.g. every publish refused: one line, exit 2, and ERRORED in Greengrass
        log.info("summary: %s", daemon.stats.summary())
        raise daemon.fatal_error
    if daemon.source_error is not None:
        raise daemon.source_error
    if daemon.failed:
        return EXIT_FAILED
    log.info("summary: %s", daemon.stats.summary())
    return EXIT_OK


def _described(pipeline: Pipeline) -> str:
    return pipeline.uri if pipeline.id == pipeline.uri else f"{pipeline.id} ({pipeline.uri})"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
