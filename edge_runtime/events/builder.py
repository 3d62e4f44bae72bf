"""Event messages from tracks: ``new`` when an object is confirmed, rate-bounded ``update`` when it changed enough to
matter, ``end`` when it left (or the stream stopped). Every ``new`` gets exactly one ``end``.

An update is due when, compared with the last message about the object, its label changed, its best score entered a
higher band (``score_band`` wide, so at most ``1/score_band`` of those), or its centre moved more than
``move_threshold`` of the image diagonal; it goes out only if ``min_update_interval_s`` has passed since that last
message (a pending change is sent at the first frame after the interval, measured again then). Times are capture
times (the device's clock when the frame was read), so a backlog replays the same events.

Snapshots (``snapshots.enabled``): the frame where the event's score was highest is kept (a reference, no copy);
its JPEG rides on the next ``update`` or on the ``end`` if it is better than the one already sent, and the whole
message stays under ``snapshots.max_bytes`` (quality, then size, lowered until it fits; left off if nothing fits).
"""

from __future__ import annotations

import base64
import math
import threading
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from edge_runtime.events.config import EventsConfig
from edge_runtime.events.tracker import Box, Observation, Track, Tracker, center
from edge_runtime.messages import EVENT_SCHEMA, encode, iso_utc

if TYPE_CHECKING:
    import numpy as np

    from edge_runtime.detectors.base import DetectionResult
    from edge_runtime.frames import Frame
    from edge_runtime.snapshots import SnapshotConfig


@dataclass
class _Open:
    """What was last said about one confirmed track, and the best frame not yet sent."""

    track: Track
    label: str
    band: int
    center: tuple[float, float]
    said_at: float
    updates: int = 0
    best_image: Optional[np.ndarray] = None
    best_image_score: float = -1.0
    sent_snapshot_score: float = -1.0
    changes: list[str] = field(default_factory=list)


class EventStream:
    """Frames (with their detections) in, event messages out, for one source. Thread-safe: :meth:`finish` may run
    while a frame is in flight; after it, frames give nothing (an ended event never reopens)."""

    def __init__(
        self,
        config: EventsConfig,
        *,
        device: str,
        session: str,
        source: str,
        snapshots: SnapshotConfig | None = None,
    ) -> None:
        self.config = config
        self.tracker = Tracker(config)
        self.device = device
        self.session = session
        self.source = source
        self.snapshots = snapshots if snapshots is not None and snapshots.enabled else None
        self._open: dict[int, _Open] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._size = (1, 1)
        self._model = {"name": "", "version": ""}
        self._seq = 0
        # unique per device even where sources share a session: the session, a digest of the source, the track
        self._prefix = f"{session}-{zlib.crc32(source.encode('utf-8')):08x}"

    def frame(
        self, frame: Frame, result: DetectionResult, model_name: str, model_version: str, published_at: float
    ) -> list[dict[str, Any]]:
        """The event messages this frame causes (often none)."""
        observations = [Observation(d.label, d.class_id, d.score, d.box_normalized, d) for d in result.detections]
        with self._lock:
            if self._closed:
                return []
            self._size = (result.width, result.height)
            self._model = {"name": model_name, "version": model_version}
            self._seq = frame.seq
            return self._step(observations, frame.captured_at, published_at, frame.image)

    def observe(
        self, observations: list[Observation], at: float, width: int, height: int, seq: int = 0
    ) -> list[dict[str, Any]]:
        """:meth:`frame` without a frame: detections as observations at time ``at`` (benchmarks, replay, tests)."""
        with self._lock:
            if self._closed:
                return []
            self._size = (width, height)
            self._seq = seq
            return self._step(observations, at, at, None)

    def _step(
        self, observations: list[Observation], at: float, published_at: float, image: Optional[np.ndarray]
    ) -> list[dict[str, Any]]:
        step = self.tracker.step(observations, at)
        messages = []
        for track in step.confirmed:
            state = _Open(track, track.label, self._band(track), center(track.box), at)
            self._open[track.track_id] = state
            self._keep_best(state, at, image)
            messages.append(self._message("new", state, at, published_at))
        for track in step.seen:
            state = self._open[track.track_id]
            self._keep_best(state, at, image)
            changes = self._changes(state)
            if changes and at - state.said_at >= self.config.min_update_interval_s:
                state.updates += 1
                state.changes = changes
                messages.append(self._message("update", state, at, published_at))
        for track in step.ended:
            messages.append(self._message("end", self._open.pop(track.track_id), at, published_at, "left"))
        return messages

    def finish(self, at: float) -> list[dict[str, Any]]:
        """The ``end`` of every open event (reason ``stopped``); later frames give nothing."""
        with self._lock:
            self._closed = True
            ended = self.tracker.finish()
            return [self._message("end", self._open.pop(t.track_id), at, at, "stopped") for t in ended]

    @property
    def open_events(self) -> int:
        return len(self._open)

    def _band(self, track: Track) -> int:
        best = track.best.score if track.best is not None else track.last.score
        return int(best / self.config.score_band + 1e-9)

    def _changes(self, state: _Open) -> list[str]:
        track = state.track
        changes = []
        if track.label != state.label:
            changes.append("label")
        if self._band(track) > state.band:
            changes.append("score")
        width, height = self._size
        (x0, y0), (x1, y1) = state.center, center(track.box)
        if math.hypot((x1 - x0) * width, (y1 - y0) * height) > self.config.move_threshold * math.hypot(width, height):
            changes.append("moved")
        return changes

    def _keep_best(self, state: _Open, at: float, image: Optional[np.ndarray]) -> None:
        best = state.track.best
        if self.snapshots is None or image is None or best is None or state.track.best_at != at:
            return
        if best.score > state.best_image_score:
            state.best_image, state.best_image_score = image, best.score

    def _pixels(self, box: Box) -> list[float]:
        width, height = self._size
        return [round(value * scale, 1) for value, scale in zip(box, (width, height, width, height))]

    def _message(
        self, kind: str, state: _Open, at: float, published_at: float, reason: str | None = None
    ) -> dict[str, Any]:
        track = state.track
        best = track.best or track.last
        message: dict[str, Any] = {
            "schema": EVENT_SCHEMA,
            "device": self.device,
            "session": self.session,
            "source": self.source,
            "event": kind,
            "id": f"{self._prefix}-{track.track_id}",
            "track_id": track.track_id,
            "seq": self._seq,
            "at": iso_utc(at),
            "published_at": iso_utc(published_at),
            "model": dict(self._model),
            "image": {"width": self._size[0], "height": self._size[1]},
            "label": track.label,
            "class_id": track.class_id,
            "score": round(track.last.score, 4),
            "box": self._pixels(track.box),
            "box_normalized": [round(v, 5) for v in track.box],
            "first_seen": iso_utc(track.first_seen),
            "last_seen": iso_utc(track.last_seen),
            "duration_s": round(track.last_seen - track.first_seen, 3),
            "hits": track.hits,
            "best": {
                "score": round(best.score, 4),
                "at": iso_utc(track.best_at),
                "box": self._pixels(best.box),
                "box_normalized": [round(v, 5) for v in best.box],
            },
            "updates": state.updates,
        }
        if kind == "update":
            message["changes"] = list(state.changes)
        if reason is not None:
            message["reason"] = reason
        state.label, state.band, state.center, state.said_at = track.label, self._band(track), center(track.box), at
        if kind != "new" and state.best_image is not None and state.best_image_score > state.sent_snapshot_score:
            snapshot = self._snapshot(message, state.best_image)
            if snapshot is not None:
                message["snapshot"] = dict(snapshot, at=iso_utc(track.best_at), score=round(state.best_image_score, 4))
                state.sent_snapshot_score = state.best_image_score
        if kind == "end":
            state.best_image = None  # the frame is not needed any more
        return message

    def _snapshot(self, message: dict[str, Any], image: np.ndarray) -> Optional[dict[str, Any]]:
        """The JPEG fields whose message (with them) fits ``snapshots.max_bytes``; None if nothing fits."""
        from edge_runtime.snapshots import MIN_SIDE, SCALE_STEP, _qualities, encode_jpeg

        assert self.snapshots is not None
        config = self.snapshots
        height, width = image.shape[:2]
        scale = 1.0 if config.max_width is None or width <= config.max_width else config.max_width / width
        qualities = _qualities(config.quality, config.min_quality)
        room = config.max_bytes - len(encode(message)) - 200  # the snapshot's own keys and numbers
        while min(width, height) * scale >= MIN_SIDE:
            for quality in qualities:
                jpeg, out_w, out_h = encode_jpeg(image, quality, scale)
                if (len(jpeg) + 2) // 3 * 4 <= room:
                    data = base64.b64encode(jpeg).decode("ascii")
                    fields = {"format": "jpeg", "width": out_w, "height": out_h, "quality": quality}
                    return dict(fields, bytes=len(jpeg), data=data)
            scale *= SCALE_STEP
            qualities = [config.min_quality]
        return None
