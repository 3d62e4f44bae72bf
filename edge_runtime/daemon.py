"""``edge-runtime run``: build the pipeline from the config, run it until SIGTERM/SIGINT or a file's end, exit.

Fatal problems found while building (model, source file, publisher setup) raise :class:`EdgeRuntimeError`,
which the CLI prints as one line with exit code 2, before any thread starts. SIGTERM and SIGINT only set the
stop event; the main thread then runs the ordered stop, bounded by ``shutdown_timeout_s`` (default 4 s, inside
the 5 s Greengrass and systemd allow before SIGKILL).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Optional

from edge_runtime.config import RuntimeConfig
from edge_runtime.detectors import create_detector
from edge_runtime.errors import EdgeRuntimeError, PublishError
from edge_runtime.pipeline import Pipeline
from edge_runtime.publishers.base import Publisher
from edge_runtime.publishers.registry import PublisherContext, build_publishers, state_dir
from edge_runtime.sources.base import make_source
from edge_runtime.stop_signals import stop_on_signals

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1


FAIL_FAST_WAIT_S = 10.0  # --fail-fast: how long the first connection attempt may take


def log_recommended_thresholds(detector: Any, config: RuntimeConfig) -> None:
    """Say when model.json's recommended per-class thresholds apply (the config sets none): they can change what is
    detected a lot, so never silently."""
    recommended = detector.info.recommended_thresholds
    if recommended and not config.model.class_thresholds:
        log.info("class thresholds from the model's evaluation (model.json, written by evaluate --record): %s;"
                 " set model.class_thresholds to override", ", ".join(f"{k} {v:g}" for k, v in recommended.items()))


def check_first_connections(publishers: list[Publisher], timeout_s: float = FAIL_FAST_WAIT_S) -> None:
    """``publish.fail_fast``: the first connection attempt of every remote publisher must succeed (PublishError)."""
    deadline = time.monotonic() + timeout_s
    for publisher in publishers:
        problem = publisher.first_outcome(max(0.1, deadline - time.monotonic()))
        if problem is not None:
            raise PublishError(f"{problem.reason} (publish.fail_fast: not retrying)")


def build_pipeline(config: RuntimeConfig, stop: threading.Event, ipc: Any = None) -> Pipeline:
    """The pipeline for ``config``; ``ipc`` is the nucleus connection (an ``IpcConnection``) inside Greengrass."""
    # state_dir: compiled-model caches and auto's measured engine choice (edge_runtime.detectors.choice)
    detector = create_detector(config.model, state_dir=state_dir(config, os.environ))
    source = make_source(config.source)
    pipeline = Pipeline(
        source,
        detector,
        [],
        stop,
        device=config.thing_name,
        source_uri=str(config.source.uri),
        queue_size=config.source.queue_size,
        loop=config.source.loop,
        max_fps=config.source.max_fps,
        inference_interval_s=config.inference.interval_s,
        workers=max(config.model.workers, detector.concurrency),  # an OpenVINO stream per inference thread
        publish_mode=config.publish.mode,
        heartbeat_s=config.publish.heartbeat_s,
        status_interval_s=config.status.interval_s,
        reconnect_initial_s=config.source.reconnect_initial_s,
        reconnect_max_s=config.source.reconnect_max_s,
        snapshots=config.snapshots,
    )
    if not source.live:  # a missing file or an empty folder fails here, before any output file or outbox exists
        pipeline.capture.open_now()
    pipeline.publishers.extend(build_publishers(PublisherContext(config, pipeline.session, ipc)))
    if config.publish.fail_fast:
        try:
            check_first_connections(pipeline.publishers)
        except PublishError:
            pipeline.stop(1.0)
            raise
    return pipeline


def run_daemon(
    config: RuntimeConfig,
    ipc: Any = None,
    on_running: Optional[Callable[[Pipeline], None]] = None,
) -> int:
    """Run until stopped; ``on_running(pipeline)`` is called once the threads run (Greengrass: subscribe, report)."""
    stop = threading.Event()
    pipeline = build_pipeline(config, stop, ipc)

    with stop_on_signals(stop, "edge-runtime run"):
        try:
            pipeline.start()
        except EdgeRuntimeError:
            pipeline.stop(config.shutdown_timeout_s)
            raise
        log.info(
            "running: model %s %s (%s), source %s, publishing to %s",
            pipeline.detector.info.name,
            pipeline.detector.info.version,
            ", ".join(f"{key} {value}" for key, value in pipeline.detector.describe().items()),
            config.source.uri,
            ", ".join(p.name for p in pipeline.publishers),
        )
        log_recommended_thresholds(pipeline.detector, config)
        if on_running is not None:
            try:
                on_running(pipeline)
            except EdgeRuntimeError:
                pipeline.stop(config.shutdown_timeout_s)
                raise
        pipeline.wait()
        clean = pipeline.stop(config.shutdown_timeout_s)
        if not clean:
            log.warning("shutdown did not complete within %.1fs", config.shutdown_timeout_s)
    if pipeline.fatal_error is not None:  # e.g. every publish refused: one line, exit 2, and ERRORED in Greengrass
        log.info("summary: %s", pipeline.stats.summary())
        raise pipeline.fatal_error
    if pipeline.failed or pipeline.capture.error is not None:
        error = pipeline.capture.error
        if error is not None:
            raise error
        return EXIT_FAILED
    log.info("summary: %s", pipeline.stats.summary())
    return EXIT_OK
