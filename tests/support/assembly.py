"""One-source daemons from in-repo fakes for unit tests: the real assembly (:class:`Daemon`), settings given as
keywords so a test names only what it is about."""

from __future__ import annotations

import threading
from typing import Any, Optional

from edge_runtime.config import SourceConfig
from edge_runtime.daemon import Daemon, DaemonSettings
from edge_runtime.detectors.base import Detector
from edge_runtime.events.config import EventsConfig
from edge_runtime.pipeline import PipelineSettings
from edge_runtime.publishers.base import Publisher
from edge_runtime.snapshots import SnapshotConfig
from edge_runtime.sources.base import FrameSource


def source_settings(
    source_id: str = "fake",
    *,
    publish_mode: str = "frame",
    heartbeat_s: float = 10.0,
    snapshots: Optional[SnapshotConfig] = None,
    events: Optional[EventsConfig] = None,
    **source: Any,
) -> PipelineSettings:
    """A Pipeline's settings: ``source`` keys are the source section's (queue_size, loop, max_fps, stall...)."""
    return PipelineSettings(SourceConfig(id=source_id, uri=source_id, **source), "source", publish_mode, heartbeat_s,
                            snapshots, events)  # fmt: skip


def one_source_daemon(
    source: FrameSource,
    detector: Detector,
    publishers: list[Publisher],
    stop: threading.Event,
    *,
    device: str = "edge-device",
    workers: int = 1,
    inference_interval_s: float = 0.0,
    status_interval_s: float = 30.0,
    **pipeline: Any,
) -> Daemon:
    settings = DaemonSettings(device, workers, inference_interval_s, status_interval_s)
    return Daemon(settings, detector, publishers, [(source_settings(**pipeline), source)], stop)
