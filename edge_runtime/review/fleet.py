"""Pure fleet state: one row per device from the messages seen so far, evaluated at a given time.

No threads, no clock of its own: :meth:`Fleet.add` takes checked messages (with the time they were received) and
:meth:`Fleet.rows` takes ``now``, so tests drive it with literal messages and chosen times.

Online or not comes from status messages: ``running`` means online, or ``starting`` while no source of the device
has delivered a frame yet (its source states are all starting/connecting/reconnecting: never green); ``stopped`` is
a clean stop (the daemon said so) and ``offline`` the daemon's retained MQTT last will, sent by the broker when the
connection dropped without a clean disconnect (a crash, a power cut, a lost network); a last will delivered again
(retained, on every subscribe) does not move "last seen". The daemon flushes its outbox *after* sending
``stopped``, so late detections of a session that has stopped do not bring the device back; a detection from a
*new* session does. A device online but silent for
``stale_after_s`` (3x the status interval by default) is ``stale``: the broker has not noticed yet, but it is gone.
A device whose last status said ``degraded`` is ``degraded`` (still running, a part of it cannot do its job): its
row carries the status message's ``problems`` ({part, reason, since}), shown by the terminal table and the console.
Any message counts as a sign of life, so a device running with status messages off is not called stale while
its detections flow.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from edge_runtime.review.redelivery import SKIPPED
from edge_runtime.review.validation import Checked

OFFLINE_STATES = ("stopped", "offline")
STATES = ("online", "starting", "degraded", "stale", "stopped", "offline")  # what a row's state can be
NOT_YET = ("starting", "connecting", "reconnecting")  # a source's states before (or between) its frames
RECENT_PROBLEMS = 5
WINDOW_SLICES = 60
MAX_DEVICES = 5_000
EVICT_AFTER_S = 3_600.0
FLEET_FULL = "fleet_full"  # a new device while the fleet is at its cap and no device has been silent long enough


@dataclass
class DeviceRow:
    """What the view shows for one device; a plain record, also printed by ``--json``."""

    device: str
    state: str  # online | offline | stale | unknown
    status: Optional[str]  # the last status message's state, as the device said it
    session: Optional[str]
    last_seen: float
    fps: Optional[float]
    inference_ms: Optional[float]
    detections_per_class: dict[str, int]
    latest: list[tuple[str, float]]
    messages: int
    rejected: int
    inference_p95: Optional[float] = None
    outbox_depth: Optional[int] = None
    problems: list[dict[str, str]] = field(default_factory=list)  # the degraded reasons: part, reason, since

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "state": self.state,
            "status": self.status,
            "session": self.session,
            "last_seen": round(self.last_seen, 3),
            "fps": self.fps,
            "inference_ms": self.inference_ms,
            "detections_per_class": dict(self.detections_per_class),
            "latest": [{"label": label, "score": score} for label, score in self.latest],
            "messages": self.messages,
            "rejected": self.rejected,
            "inference_p95": self.inference_p95,
            "outbox_depth": self.outbox_depth,
            "problems": [dict(problem) for problem in self.problems],
        }


@dataclass
class _Device:
    name: str
    last_seen: float = 0.0
    status: Optional[str] = None
    status_session: Optional[str] = None
    offline_session: Optional[str] = None  # set while the device is offline: the session that said so
    session: Optional[str] = None
    fps: Optional[float] = None
    inference_ms: Optional[float] = None
    inference_p95: Optional[float] = None
    outbox_depth: Optional[int] = None
    problems: list[dict[str, str]] = field(default_factory=list)
    latest: list[tuple[str, float]] = field(default_factory=list)
    # detections per class in the window: running totals, and per time slice what to take off when it leaves
    window: collections.Counter[str] = field(default_factory=collections.Counter)
    slices: collections.deque[tuple[float, collections.Counter[str]]] = field(default_factory=collections.deque)
    messages: int = 0
    rejected: int = 0
    waiting: bool = False  # running, but no source has delivered a frame yet (starting, connecting, reconnecting)


def _epoch(text: Any) -> Optional[float]:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Fleet:
    """Per-device state plus counts of rejected messages. Not thread-safe: one reviewer thread owns it."""

    def __init__(
        self,
        window_s: float = 60.0,
        stale_after_s: float = 90.0,
        max_devices: int = MAX_DEVICES,
        evict_after_s: float = EVICT_AFTER_S,
    ) -> None:
        self.window_s = window_s
        # counts per class are kept per 1/60 of the window: a row costs the same at 10 or 10,000 messages/s (a
        # list of every detection, recounted on each refresh, slowed the console as a burst went on), and a
        # slice leaves the window whole, when its last moment has
        self._slice_s = window_s / WINDOW_SLICES
        self.stale_after_s = stale_after_s
        self.max_devices = max_devices  # memory and every live update grow with devices: a cap, not a hope
        self.evict_after_s = evict_after_s
        self.evicted = 0
        self.rejected: dict[str, int] = dict.fromkeys(SKIPPED, 0)
        self.problems: collections.deque[str] = collections.deque(maxlen=RECENT_PROBLEMS)
        self.valid = 0
        self.kinds: collections.Counter[str] = collections.Counter()  # valid messages by kind
        # the console's own parts (broker, recording, queue), set by the review loop each turn: shown with the fleet
        self.health: dict[str, Any] = {}
        self._devices: dict[str, _Device] = {}

    def add(self, item: Checked) -> None:
        """Fold one checked message into the state; what was skipped is only counted (and in its device's row)."""
        if not item.valid or item.message is None:
            self.rejected[item.outcome] = self.rejected.get(item.outcome, 0) + 1
            self.problems.append(f"{item.outcome} on {item.topic}: {item.problem}")
            if item.device is not None and item.device in self._devices:
                self._devices[item.device].rejected += 1
            return
        message = item.message
        name = str(message["device"])
        device = self._devices.get(name)
        if device is None:
            if len(self._devices) >= self.max_devices and not self._evict(item.received_at):
                self.rejected[FLEET_FULL] = self.rejected.get(FLEET_FULL, 0) + 1
                self.problems.append(f"{FLEET_FULL}: {self.max_devices} devices tracked, none silent for"
                                     f" {self.evict_after_s:g} s; {name!r} not tracked")  # fmt: skip
                return
            device = self._devices[name] = _Device(name)
        self.valid += 1
        self.kinds[str(item.kind)] += 1
        device.messages += 1
        session = str(message["session"])
        if item.kind == "status" and message.get("state") == "offline":
            # a last will is the broker speaking, possibly again (retained, on every subscribe): it says when the
            # device was lost, not that it was seen; only a device never seen before takes its time from it
            if device.last_seen == 0.0:
                device.last_seen = min(item.received_at, _epoch(message.get("at")) or item.received_at)
        else:
            device.last_seen = max(device.last_seen, item.received_at)
        if item.kind == "status":
            self._add_status(device, message, session)
        elif item.kind in ("snapshot", "event"):
            return  # a picture of a detection already counted, or an event (review report): a sign of life
        else:
            self._add_detection(device, message, session, item.received_at)

    def _add_status(self, device: _Device, message: dict[str, Any], session: str) -> None:
        device.status = str(message["state"])
        device.status_session = session
        device.session = session
        device.problems = [
            {"part": str(p["part"]), "reason": str(p["reason"]), "since": str(p["since"])}
            for p in message.get("problems") or []
        ]
        if device.status in OFFLINE_STATES:
            device.offline_session = session
            return
        device.offline_session = None
        sources = [message["source"]] if isinstance(message.get("source"), dict) else []
        sources += [s for s in message.get("sources") or [] if isinstance(s, dict)]  # a multi-camera daemon
        device.waiting = bool(sources) and all(str(s.get("state")) in NOT_YET for s in sources)
        if "fps_out" in message:
            device.fps = float(message["fps_out"])
        timings = message.get("inference_ms") or {}
        if timings.get("p50") is not None:
            device.inference_ms = float(timings["p50"])
        if timings.get("p95") is not None:
            device.inference_p95 = float(timings["p95"])
        outbox = message.get("outbox")
        device.outbox_depth = int(outbox["depth"]) if isinstance(outbox, dict) else None

    def _add_detection(self, device: _Device, message: dict[str, Any], session: str, at: float) -> None:
        if device.offline_session is not None and device.offline_session != session:
            device.offline_session = None  # a new run of the daemon: back online
            device.status = None
        device.session = session
        detections = message["detections"]
        device.latest = [(str(d["label"]), float(d["score"])) for d in detections]
        if detections:
            labels = [label for label, _score in device.latest]
            start = math.floor(at / self._slice_s) * self._slice_s
            if not device.slices or device.slices[-1][0] < start:
                device.slices.append((start, collections.Counter()))
            device.slices[-1][1].update(labels)  # a late message joins the newest slice
            device.window.update(labels)
        if device.inference_ms is None or device.status is None:
            device.inference_ms = float(message["timings_ms"]["inference"])

    def _evict(self, now: float) -> bool:
        """Forget the longest-silent device if it has been silent ``evict_after_s``; True when room was made."""
        oldest = min(self._devices.values(), key=lambda d: d.last_seen, default=None)
        if oldest is None or now - oldest.last_seen < self.evict_after_s:
            return False
        del self._devices[oldest.name]
        self.evicted += 1
        return True

    def names(self) -> set[str]:
        return set(self._devices)

    def rows(self, now: float) -> list[DeviceRow]:
        """One row per device, by name, as of ``now`` (same clock as the ``received_at`` of messages)."""
        rows = []
        for name in sorted(self._devices):
            device = self._devices[name]
            while device.slices and device.slices[0][0] + self._slice_s <= now - self.window_s:
                device.window -= device.slices.popleft()[1]  # keeps only positive counts
            counts = device.window
            rows.append(
                DeviceRow(
                    device=name,
                    state=self._state(device, now),
                    status=device.status,
                    session=device.session,
                    last_seen=device.last_seen,
                    fps=device.fps,
                    inference_ms=device.inference_ms,
                    detections_per_class=dict(sorted(counts.items())),
                    latest=list(device.latest),
                    messages=device.messages,
                    rejected=device.rejected,
                    inference_p95=device.inference_p95,
                    outbox_depth=device.outbox_depth,
                    problems=[dict(problem) for problem in device.problems],
                )
            )
        return rows

    def _state(self, device: _Device, now: float) -> str:
        if device.offline_session is not None:
            return "stopped" if device.status == "stopped" else "offline"  # a clean stop, or the last will
        if now - device.last_seen > self.stale_after_s:
            return "stale"
        if device.status == "degraded":
            return "degraded"
        return "starting" if device.waiting else "online"

    def summary(self) -> dict[str, Any]:
        """Totals for the view's footer and ``--json``: valid messages, rejections by reason, recent problems."""
        return {"valid": self.valid, "rejected": dict(self.rejected), "problems": list(self.problems),
                "kinds": dict(sorted(self.kinds.items())), "devices": len(self._devices), "evicted": self.evicted,
                "health": dict(self.health)}  # fmt: skip
