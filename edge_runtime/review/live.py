"""What the web console shows, kept by the review loop and read by the web server: one lock between two threads.

:class:`LiveView` is a :class:`~edge_runtime.review.view.View`, so the review loop (one thread, owning the
:class:`~edge_runtime.review.fleet.Fleet`) drives it exactly as it drives the terminal table. On each turn it copies
what the console needs into plain dicts under a lock: the fleet rows and the rejection counts (a new ``version``
when they change, which the live updates wait on), a bounded history of detections (for the chart and the filter)
and, per device, the latest snapshots with the boxes and labels of their detection messages and the most recent
events (tracked objects from ``publish.mode events``: first and last seen, label, best score, open or ended), folded
as ``review report`` folds them. The web server's
threads only read those copies, so nothing in the fleet is shared across threads.
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import threading
from dataclasses import dataclass
from typing import Any, Optional

from edge_runtime.review.events import SourceEvents
from edge_runtime.review.fleet import Fleet
from edge_runtime.review.snapshots import SnapshotMatcher, key_of
from edge_runtime.review.validation import Checked
from edge_runtime.review.view import View

HISTORY = 50_000  # detections (one per box) kept for the chart and the filter
SNAPSHOTS_PER_DEVICE = 12
EVENTS_PER_DEVICE = 50  # the most recent tracked objects (publish.mode events) listed per device
REFRESH_S = 0.25
CHART_BUCKETS = 30
MAX_REMOVALS = 10_000  # removed devices remembered for live updates; a client further behind gets the whole fleet


@dataclass(frozen=True)
class Snapshot:
    id: int
    device: str
    session: str
    seq: int
    captured_at: str
    received_at: float
    width: int
    height: int
    jpeg: bytes
    detections: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "device": self.device, "session": self.session, "seq": self.seq,
            "captured_at": self.captured_at, "received_at": round(self.received_at, 3),
            "width": self.width, "height": self.height, "bytes": len(self.jpeg),
            "url": f"api/snapshots/{self.id}.jpg", "detections": self.detections,
        }  # fmt: skip


@dataclass(frozen=True)
class Seen:
    """One detected box, as the history keeps it."""

    at: float
    device: str
    label: str
    score: float
    session: str
    seq: int


@dataclass(frozen=True)
class Filter:
    device: Optional[str] = None
    label: Optional[str] = None
    min_score: float = 0.0
    since: Optional[float] = None
    until: Optional[float] = None
    limit: int = 500

    def matches(self, seen: Seen) -> bool:
        return (
            (self.device is None or seen.device == self.device)
            and (self.label is None or seen.label == self.label)
            and seen.score >= self.min_score
            and (self.since is None or seen.at >= self.since)
            and (self.until is None or seen.at <= self.until)
        )


class LiveView(View):
    def __init__(
        self,
        matcher: SnapshotMatcher,
        snapshots_per_device: int = SNAPSHOTS_PER_DEVICE,
        history: int = HISTORY,
        refresh_s: float = REFRESH_S,
        topics: Optional[list[str]] = None,
    ) -> None:
        self.matcher = matcher
        self.snapshots_per_device = snapshots_per_device
        self.refresh_s = refresh_s
        self.closed = threading.Event()
        self.version = 0
        self._lock = threading.Lock()
        empty = {"valid": 0, "rejected": {}, "problems": [], "health": {}}
        self._fleet: dict[str, Any] = {"devices": [], "summary": empty}
        self._fleet_key = ""
        # for incremental live updates: the version at which each row last changed, and recent removals
        self._row_versions: dict[str, int] = {}
        self._rows: dict[str, dict[str, Any]] = {}
        self._removed: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._removals_forgotten = 0  # the newest version whose removals are no longer in _removed
        self._history: collections.deque[Seen] = collections.deque(maxlen=history)
        self._snapshots: dict[str, collections.deque[Snapshot]] = {}
        # per device, the most recent events: id -> (source, folded event), oldest first
        self._events: dict[str, collections.OrderedDict[str, tuple[str, SourceEvents]]] = {}
        self._by_id: dict[int, Snapshot] = {}
        self._ids = itertools.count(1)
        self._refreshed_at = float("-inf")
        self._topics = list(topics or [])

    # the review loop's side
    def started(self, topics: list[str]) -> None:
        with self._lock:
            self._topics = list(topics)

    def message(self, item: Checked, fleet: Fleet, now: float) -> None:
        message = item.message
        if item.valid and message is not None and item.kind == "detection":
            device, session, seq = key_of(message)
            with self._lock:
                for d in message["detections"]:
                    seen = Seen(item.received_at, device, str(d["label"]), float(d["score"]), session, seq)
                    self._history.append(seen)
        elif item.valid and message is not None and item.kind == "snapshot":
            self._add_snapshot(item, message)
        elif item.valid and message is not None and item.kind == "event":
            self._add_event(message)

    def _add_event(self, message: dict[str, Any]) -> None:
        with self._lock:
            recent = self._events.setdefault(str(message["device"]), collections.OrderedDict())
            ident = str(message["id"])
            if ident not in recent:
                recent[ident] = (str(message["source"]), SourceEvents())
            recent[ident][1].fold(message)  # a redelivered copy changes nothing but the message counts
            recent.move_to_end(ident)
            while len(recent) > EVENTS_PER_DEVICE:
                recent.popitem(last=False)
            self._bump()

    def _add_snapshot(self, item: Checked, message: dict[str, Any]) -> None:
        detections = self.matcher.detections(key_of(message)) or []
        snapshot = Snapshot(
            id=next(self._ids), device=str(message["device"]), session=str(message["session"]),
            seq=int(message["seq"]), captured_at=str(message["captured_at"]), received_at=item.received_at,
            width=int(message["image"]["width"]), height=int(message["image"]["height"]),
            jpeg=base64.b64decode(message["data"]), detections=detections,
        )  # fmt: skip
        with self._lock:
            ring = self._snapshots.setdefault(snapshot.device, collections.deque())
            ring.append(snapshot)
            self._by_id[snapshot.id] = snapshot
            while len(ring) > self.snapshots_per_device:
                self._by_id.pop(ring.popleft().id, None)
            self._bump()

    def tick(self, fleet: Fleet, now: float) -> None:
        if now - self._refreshed_at < self.refresh_s:
            return
        self._refreshed_at = now
        document: dict[str, Any] = {"devices": [row.to_dict() for row in fleet.rows(now)], "summary": fleet.summary()}
        key = json.dumps(document, sort_keys=True)
        tracked = fleet.names()
        with self._lock:
            for gone in [name for name in self._snapshots if name not in tracked]:  # evicted: its pictures go too
                for snapshot in self._snapshots.pop(gone):
                    self._by_id.pop(snapshot.id, None)
            for gone in [name for name in self._events if name not in tracked]:
                del self._events[gone]
            if key != self._fleet_key:
                self._fleet_key = key
                self._fleet = document
                self._bump()
                self._note_rows(document["devices"])

    def close(self, fleet: Fleet, now: float) -> None:
        self._refreshed_at = float("-inf")
        self.tick(fleet, now)
        self.closed.set()
        with self._lock:
            self._bump()

    def _bump(self) -> None:  # with the lock held; the live updates poll this number
        self.version += 1

    def _note_rows(self, rows: list[dict[str, Any]]) -> None:  # with the lock held, after the bump
        current = {row["device"]: row for row in rows}
        for name, row in current.items():
            if self._rows.get(name) != row:
                self._row_versions[name] = self.version
        for name in [name for name in self._rows if name not in current]:
            self._row_versions.pop(name, None)
            self._removed[name] = self.version
            self._removed.move_to_end(name)
        while len(self._removed) > MAX_REMOVALS:
            self._removals_forgotten = max(self._removals_forgotten, self._removed.popitem(last=False)[1])
        for name in list(self._removed):
            if name in current:  # back again: a row, not a removal
                del self._removed[name]
        self._rows = current

    def changes(self, since: int) -> dict[str, Any]:
        """What changed after version ``since``: the rows that changed, the devices gone, the summary. A live
        update of one camera's row is that row, not the whole fleet (which grew with every device). ``full`` is
        set when removals that old are forgotten: the client then takes the whole fleet."""
        with self._lock:
            if since < self._removals_forgotten:
                return {**self._fleet, "topics": list(self._topics), "version": self.version, "full": True}
            rows = [self._rows[n] for n, v in self._row_versions.items() if v > since and n in self._rows]
            removed = [name for name, version in self._removed.items() if version > since]
            return {"rows": sorted(rows, key=lambda row: str(row["device"])), "removed": removed,
                    "summary": self._fleet["summary"], "version": self.version}  # fmt: skip

    # the web server's side
    def fleet(self) -> dict[str, Any]:
        with self._lock:
            return {**self._fleet, "topics": list(self._topics), "version": self.version}

    def device(self, name: str, now: float, span_s: float = 600.0) -> Optional[dict[str, Any]]:
        with self._lock:
            row = next((row for row in self._fleet["devices"] if row["device"] == name), None)
            if row is None:
                return None
            snapshots = [s.to_dict() for s in reversed(self._snapshots.get(name, ()))]
            seen = [s for s in self._history if s.device == name and s.at >= now - span_s]
            events = [
                {"source": source, **event.to_dict()}
                for source, folded in self._events.get(name, {}).values()
                for event in folded.events.values()
            ]
        events.sort(key=lambda event: (str(event["first_seen"]), str(event["id"])), reverse=True)  # the newest first
        return {"device": row, "snapshots": snapshots, "chart": chart(seen, now - span_s, now), "events": events}

    def snapshot_jpeg(self, ident: int) -> Optional[bytes]:
        with self._lock:
            snapshot = self._by_id.get(ident)
            return None if snapshot is None else snapshot.jpeg

    def detections(self, where: Filter) -> list[dict[str, Any]]:
        """Newest first, at most ``where.limit``."""
        with self._lock:
            found = [s for s in reversed(self._history) if where.matches(s)][: where.limit]
        return [{"at": round(s.at, 3), "device": s.device, "label": s.label, "score": s.score, "session": s.session,
                 "seq": s.seq} for s in found]  # fmt: skip


def chart(seen: list[Seen], start: float, end: float, buckets: int = CHART_BUCKETS) -> dict[str, Any]:
    """Detections per class in ``buckets`` equal slices of [start, end): ``{start, bucket_s, counts: {label: [n]}}``."""
    width = max(1e-9, (end - start) / buckets)
    counts: dict[str, list[int]] = {}
    for s in seen:
        index = min(buckets - 1, max(0, int((s.at - start) / width)))
        counts.setdefault(s.label, [0] * buckets)[index] += 1
    return {"start": round(start, 3), "bucket_s": round(width, 3), "counts": dict(sorted(counts.items()))}

