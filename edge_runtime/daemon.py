"""``edge-runtime run``: build the pipeline from the config, run it until SIGTERM/SIGINT or a file's end, exit.

Fatal problems found while building (model, source file, publisher setup) raise :class:`EdgeRuntimeError`,
which the CLI prints as one line with exit code 2, before any thread starts. SIGTERM and SIGINT only set the
stop event; the main thread then runs the ordered stop, bounded by ``shutdown_timeout_s`` (default 4 s, inside
the 5 s Greengrass and systemd allow before SIGKILL).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any, Callable, Optional

from edge_runtime.config import RuntimeConfig
from edge_runtime.detectors import create_detector
from edge_runtime.errors import EdgeRuntimeError, PublishError
from edge_runtime.pipeline import Pipeline
from edge_runtime.publishers.base import JsonlFilePublisher, Publisher, StdoutPublisher
from edge_runtime.sources.base import make_source

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1


def build_publishers(config: RuntimeConfig, session: str, ipc_client: Any = None) -> list[Publisher]:
    """One publisher per target; ``greengrass`` needs the nucleus' IPC client (see :mod:`edge_runtime.greengrass`)."""
    publishers: list[Publisher] = []
    for target in dict.fromkeys(config.publish.targets):  # each once, in the order given
        if target == "stdout":
            publishers.append(StdoutPublisher())
        elif target == "file":
            file = config.publish.file
            publishers.append(JsonlFilePublisher(file.path, file.max_bytes, file.backups))
        elif target == "mqtt":
            from edge_runtime.publishers.mqtt import MqttPublisher

            publishers.append(MqttPublisher.from_config(config, session))
        elif target == "greengrass":
            if ipc_client is None:
                raise PublishError("publish.targets: greengrass needs the Greengrass nucleus (got no IPC connection)")
            from edge_runtime.publishers.ipc import IpcPublisher

            publishers.append(IpcPublisher(ipc_client, config.thing_name, config.publish.greengrass))
    return publishers


def build_pipeline(config: RuntimeConfig, stop: threading.Event, ipc_client: Any = None) -> Pipeline:
    detector = create_detector(config.model)
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
        workers=config.model.workers,
        publish_mode=config.publish.mode,
        heartbeat_s=config.publish.heartbeat_s,
        status_interval_s=config.status.interval_s,
        reconnect_initial_s=config.source.reconnect_initial_s,
        reconnect_max_s=config.source.reconnect_max_s,
    )
    if not source.live:  # a missing file or an empty folder fails here, before any output file or outbox exists
        pipeline.capture.open_now()
    pipeline.publishers.extend(build_publishers(config, pipeline.session, ipc_client))
    return pipeline


def run_daemon(
    config: RuntimeConfig,
    ipc_client: Any = None,
    on_running: Optional[Callable[[Pipeline], None]] = None,
) -> int:
    """Run until stopped; ``on_running(pipeline)`` is called once the threads run (Greengrass: subscribe, report)."""
    stop = threading.Event()
    pipeline = build_pipeline(config, stop, ipc_client)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
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
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
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
