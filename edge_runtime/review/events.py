"""Events in a recording (``publish.mode events``): counted, and a timeline per device and source.

An event is one object a device tracked: its ``new``, ``update`` and ``end`` messages (event.schema.json) share an
``id`` (unique per device: it holds the session and a digest of the source). The timeline lists each event once,
from its first to its last seen time (the device's capture clock), with its label and best score, and says which are
still open (a ``new`` without its ``end`` yet: the object is still there, the ``end`` is on its way through an
outbox, or the device lost power). QoS 1 may deliver a message twice; one event message is unique by (device,
session, id, event, updates), so a second copy is counted once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from edge_runtime.review.store import read_rows

KINDS = ("new", "update", "end")


@dataclass
class Event:
    """What the recording says of one event, folded from its messages."""

    id: str
    label: str
    first_seen: str
    last_seen: str
    duration_s: float
    best_score: float
    updates: int = 0
    reason: Optional[str] = None  # set by the end

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "duration_s": self.duration_s,
            "best_score": self.best_score,
            "updates": self.updates,
            "ended": self.reason is not None,
            "reason": self.reason,
        }


@dataclass
class SourceEvents:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    events: dict[str, Event] = field(default_factory=dict)

    def fold(self, message: dict[str, Any]) -> None:
        kind = str(message["event"])
        self.counts[kind] = self.counts.get(kind, 0) + 1
        event = self.events.get(str(message["id"]))
        if event is None:
            event = self.events[str(message["id"])] = Event(
                str(message["id"]), str(message["label"]), str(message["first_seen"]), str(message["last_seen"]),
                float(message["duration_s"]), float(message["best"]["score"]),
            )  # fmt: skip
        if message["last_seen"] >= event.last_seen:  # ISO UTC with ms: text order is time order
            event.label, event.last_seen = str(message["label"]), str(message["last_seen"])
            event.duration_s = float(message["duration_s"])
        event.best_score = max(event.best_score, float(message["best"]["score"]))
        event.updates = max(event.updates, int(message["updates"]))
        if kind == "end":
            event.reason = str(message.get("reason"))

    def to_dict(self) -> dict[str, Any]:
        timeline = sorted(self.events.values(), key=lambda event: (event.first_seen, event.id))
        labels: dict[str, int] = {}
        for event in timeline:
            labels[event.label] = labels.get(event.label, 0) + 1
        return {
            "counts": dict(self.counts),
            "events": len(timeline),
            "open": sum(1 for event in timeline if event.reason is None),
            "labels": dict(sorted(labels.items())),
            "timeline": [event.to_dict() for event in timeline],
        }


def event_report(
    path: str | Path, since: Optional[float] = None, device: Optional[str] = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{device: {source: {counts, events, open, labels, timeline}}}`` from the valid event rows of a recording."""
    sources: dict[tuple[str, str], SourceEvents] = {}
    seen: set[tuple[str, str, str, str, int]] = set()
    for row in read_rows(path, since=since, device=device):
        if not row.valid or row.kind != "event" or row.payload is None:
            continue
        message = json.loads(row.payload)
        key = (str(message["device"]), str(message["session"]), str(message["id"]), str(message["event"]),
               int(message["updates"]))  # fmt: skip
        if key in seen:
            continue  # a QoS 1 redelivery
        seen.add(key)
        sources.setdefault((key[0], str(message["source"])), SourceEvents()).fold(message)
    report: dict[str, dict[str, dict[str, Any]]] = {}
    for (device_name, source), folded in sorted(sources.items()):
        report.setdefault(device_name, {})[source] = folded.to_dict()
    return report


def render_events(report: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The events part of ``review report`` for a terminal ("" when the recording holds none)."""
    lines: list[str] = []
    for device_name, sources in report.items():
        for source, data in sources.items():
            counts = data["counts"]
            labels = ", ".join(f"{label} {count}" for label, count in data["labels"].items())
            lines.append("")
            lines.append(
                f"{device_name} {source}: {data['events']} events ({labels}); messages: new {counts['new']},"
                f" update {counts['update']}, end {counts['end']}; {data['open']} open"
            )
            for event in data["timeline"]:
                ended = f"ended: {event['reason']}" if event["ended"] else "open"
                lines.append(
                    f"  {event['first_seen']} .. {event['last_seen']} ({event['duration_s']:g} s) {event['label']},"
                    f" best {event['best_score']:.2f}, {event['updates']} updates, {ended}"
                )
    return "\n".join(lines) + "\n" if lines else ""
