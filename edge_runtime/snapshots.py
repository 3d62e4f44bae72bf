"""Snapshots: a JPEG of a frame that had detections, sent on its own topic so an operator sees what a device saw.

Pure parts, each testable with literal arrays and an injected clock:

- :func:`encode_jpeg` encodes an HxWx3 uint8 frame (BGR as OpenCV decodes, or RGB) at a quality, scaled;
- :func:`fit_snapshot` builds the snapshot message and keeps its *whole JSON payload* under ``max_bytes``
  (default 100 000, so it fits AWS IoT Core's 128 KB message limit with room for the topic and headers): it lowers
  the quality step by step, then downscales, until the message fits (base64 makes the JPEG a third bigger, so the
  budget is the message's, not the JPEG's);
- :class:`RateLimiter` lets at most N snapshots per minute through, spread over the minute (one at most every 60/N
  seconds, per device: one daemon is one device);
- :class:`RingFolder` optionally also writes each snapshot to a local folder, keeping the newest ``max_files``, for
  sites without a broker.

:class:`Snapshotter` ties them together for the pipeline: given a frame and the detection message that was just
published for it, it returns the snapshot message to publish (kind ``snapshot``) or None (no detections, over the
rate, or nothing fitted). The snapshot carries the detection's ``session`` and ``seq``, so a console pairs it with
the boxes and labels of that detection message; boxes are never burned into the picture.
Off by default (``snapshots.enabled``).
"""

from __future__ import annotations

import base64
import collections
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # config.py imports this module for SnapshotConfig: numpy and OpenCV load only when encoding
    import numpy as np

SNAPSHOT_SCHEMA = "edge-runtime/snapshot/1"

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 100_000  # the whole JSON payload; AWS IoT Core refuses messages over 128 KB
QUALITY_STEP = 15
SCALE_STEP = 0.7
MIN_SIDE = 16  # never downscale below this many pixels on the shorter side
WINDOW_S = 60.0


class SnapshotConfig(BaseModel):
    """``snapshots`` section of the daemon config (off by default)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    enabled: bool = Field(default=False, description="publish a JPEG of frames with detections (kind snapshot)")
    per_minute: int = Field(
        default=6, ge=1, le=600, description="at most this many snapshots a minute, spread evenly (6: one every 10 s)"
    )
    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=8_000,
        le=126_000,
        description="budget of the whole snapshot message (JSON with the base64 JPEG); under AWS IoT Core's 128 KB",
    )
    quality: int = Field(default=80, ge=10, le=100, description="JPEG quality to try first")
    min_quality: int = Field(default=40, ge=5, le=100, description="lowest quality before downscaling instead")
    max_width: Optional[int] = Field(
        default=1280, ge=MIN_SIDE, le=8192, description="frames wider than this are scaled down first (none: never)"
    )
    folder: Optional[str] = Field(default=None, description="also write each snapshot here (JPEG + JSON), a ring")
    folder_max_files: int = Field(default=200, ge=1, le=100_000, description="snapshots kept in folder, newest win")

    @model_validator(mode="after")
    def _quality_order(self) -> SnapshotConfig:
        if self.min_quality > self.quality:
            raise ValueError(f"min_quality must not be above quality {self.quality} (got {self.min_quality})")
        return self


def encode_jpeg(
    image: np.ndarray, quality: int, scale: float = 1.0, order: Literal["bgr", "rgb"] = "bgr"
) -> tuple[bytes, int, int]:
    """JPEG bytes, width and height of an HxWx3 uint8 ``image`` at ``quality``, resized by ``scale`` (area)."""
    import cv2
    import numpy as np

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image (got shape {image.shape}, dtype {image.dtype})")
    frame = image if order == "bgr" else image[:, :, ::-1]
    if scale < 1.0:
        height, width = frame.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(frame), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    return bytes(data.tobytes()), int(frame.shape[1]), int(frame.shape[0])


def snapshot_message(detection: dict[str, Any], jpeg: bytes, width: int, height: int, quality: int) -> dict[str, Any]:
    """The snapshot message for ``detection`` (its device, session, seq, capture time and frame size)."""
    return {
        "schema": SNAPSHOT_SCHEMA,
        "device": detection["device"],
        "session": detection["session"],
        "seq": detection["seq"],
        "captured_at": detection["captured_at"],
        "frame": {"width": detection["image"]["width"], "height": detection["image"]["height"]},
        "image": {"format": "jpeg", "width": width, "height": height, "quality": quality, "bytes": len(jpeg)},
        "data": base64.b64encode(jpeg).decode("ascii"),
    }


def message_size(message: dict[str, Any]) -> int:
    from edge_runtime.messages import encode

    return len(encode(message))


def _qualities(first: int, lowest: int) -> list[int]:
    steps = list(range(first, lowest, -QUALITY_STEP))
    return [*steps, lowest] if not steps or steps[-1] != lowest else steps


def fit_snapshot(
    image: np.ndarray, detection: dict[str, Any], config: SnapshotConfig, order: Literal["bgr", "rgb"] = "bgr"
) -> Optional[dict[str, Any]]:
    """The snapshot message at the best quality and size whose JSON is at most ``config.max_bytes``; None if even
    the smallest allowed picture does not fit. Tries at most a handful of qualities per scale, a few scales."""
    height, width = image.shape[:2]
    scale = 1.0 if config.max_width is None or width <= config.max_width else config.max_width / width
    qualities = _qualities(config.quality, config.min_quality)
    while min(width, height) * scale >= MIN_SIDE:
        for quality in qualities:
            jpeg, out_w, out_h = encode_jpeg(image, quality, scale, order)
            message = snapshot_message(detection, jpeg, out_w, out_h, quality)
            if message_size(message) <= config.max_bytes:
                return message
        scale *= SCALE_STEP
        qualities = [config.min_quality]  # smaller pictures: the lowest quality first, to stay in few encodes
    return None


class RateLimiter:
    """At most ``limit`` events per ``window_s``, spread evenly: one at most every ``window_s / limit`` seconds.

    A sliding window let the first ``limit`` frames with detections through at once, so an operator got 6
    consecutive frames (a fraction of a second of the scene) once a minute; spaced out, the 6 pictures of a
    minute show it every 10 s. Any ``window_s`` holds at most ``limit`` of them.
    """

    def __init__(self, limit: int, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1 (got {limit})")
        self.limit = limit
        self.window_s = window_s
        self.interval_s = window_s / limit
        self.clock = clock
        self._last: Optional[float] = None

    def allow(self) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        return True


class RingFolder:
    """``<session>-<seq>.jpg`` and ``.json`` (the snapshot without its data) in ``folder``; the oldest go beyond
    ``max_files`` snapshots. Writes are atomic (temp file + rename), so a reader never sees half a picture."""

    def __init__(self, folder: str | Path, max_files: int) -> None:
        self.folder = Path(folder)
        self.max_files = max_files
        self.folder.mkdir(parents=True, exist_ok=True)
        kept = sorted(self.folder.glob("*.jpg"), key=lambda path: path.stat().st_mtime)  # a restart keeps the bound
        self._names: collections.deque[str] = collections.deque(path.stem for path in kept)

    def write(self, message: dict[str, Any], jpeg: bytes) -> Path:
        from edge_runtime.messages import encode

        stem = f"{message['session']}-{int(message['seq']):08d}"
        meta = {key: value for key, value in message.items() if key != "data"}
        for suffix, data in ((".json", encode(meta)), (".jpg", jpeg)):
            temp = self.folder / f".{stem}{suffix}.tmp"
            temp.write_bytes(data)
            os.replace(temp, self.folder / f"{stem}{suffix}")
        self._names.append(stem)
        while len(self._names) > self.max_files:
            old = self._names.popleft()
            for suffix in (".jpg", ".json"):
                (self.folder / f"{old}{suffix}").unlink(missing_ok=True)
        return self.folder / f"{stem}.jpg"


@dataclass
class SnapshotCounts:
    sent: int = 0
    rate_limited: int = 0
    too_big: int = 0
    failed: int = 0


class Snapshotter:
    """What the pipeline calls after publishing a detection message; thread-safe (inference threads share it)."""

    def __init__(
        self, config: SnapshotConfig, clock: Callable[[], float] = time.monotonic, order: Literal["bgr", "rgb"] = "bgr"
    ) -> None:
        self.config = config
        self.order: Literal["bgr", "rgb"] = order
        self.limiter = RateLimiter(config.per_minute, clock=clock)
        self.ring = RingFolder(config.folder, config.folder_max_files) if config.folder else None
        self.counts = SnapshotCounts()
        self._lock = threading.Lock()

    def take(self, image: np.ndarray, detection: dict[str, Any]) -> Optional[dict[str, Any]]:
        """The snapshot message for this frame, or None (no detections, over the rate, too big, not encodable)."""
        if not detection.get("detections"):
            return None
        with self._lock:
            if not self.limiter.allow():
                self.counts.rate_limited += 1
                return None
            try:
                message = fit_snapshot(image, detection, self.config, self.order)
            except ValueError as error:
                self.counts.failed += 1
                log.warning("snapshot of seq %s skipped: %s", detection.get("seq"), error)
                return None
            if message is None:
                self.counts.too_big += 1
                return None
            self.counts.sent += 1
            if self.ring is not None:
                try:
                    self.ring.write(message, base64.b64decode(message["data"]))
                except OSError as error:
                    log.warning("snapshot folder %s: %s", self.config.folder, error.strerror or error)
            return message
