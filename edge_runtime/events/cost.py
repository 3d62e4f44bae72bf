"""What a config costs in AWS IoT Core messaging: expected messages per day and dollars per device per month.

The price is AWS IoT Core's published messaging price, **$1.00 per million messages** (us-east-1, first billion a
month), metered in **5 KB increments** (a 12 KB message is billed as three; 5 KB taken as 5,120 bytes here). Other
regions and volume tiers differ; connectivity minutes and rules are not counted. The figures are what the config
implies, not a measurement: the frame rate is ``source.max_fps`` (bounded by ``inference.interval_s``); where
neither is set the detector's own rate decides, and ``assumed_fps`` stands in for it. Events mode depends on the
scene, so it is estimated for ``objects_per_hour`` objects staying ``dwell_s`` seconds each, each giving a ``new``,
an ``end`` and at most one ``update`` per ``events.min_update_interval_s``.

Message sizes are those of messages this package builds (:func:`typical_sizes`), so a schema change moves them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PRICE_PER_MILLION_USD = 1.00
METER_BYTES = 5 * 1024
DAY_S = 86_400.0
MONTH_DAYS = 30.0
ASSUMED_FPS = 5.0  # the component recipe's source.max_fps


def billed_units(size_bytes: int) -> int:
    """Messages AWS IoT Core bills for one message of ``size_bytes`` (5 KB increments, at least one)."""
    return max(1, math.ceil(size_bytes / METER_BYTES))


@dataclass(frozen=True)
class Line:
    """One kind of message: how many a day, each how big, how many billed units in all."""

    kind: str
    per_day: float
    size_bytes: int

    @property
    def units_per_day(self) -> float:
        return self.per_day * billed_units(self.size_bytes)


@dataclass(frozen=True)
class Estimate:
    mode: str
    fps: float
    fps_assumed: bool
    lines: tuple[Line, ...]
    note: str = ""

    @property
    def messages_per_day(self) -> float:
        return sum(line.per_day for line in self.lines)

    @property
    def units_per_day(self) -> float:
        return sum(line.units_per_day for line in self.lines)

    @property
    def usd_per_month(self) -> float:
        return self.units_per_day * MONTH_DAYS * PRICE_PER_MILLION_USD / 1e6


def frame_rate(config: Any, assumed_fps: float = ASSUMED_FPS) -> tuple[float, bool]:
    """Frames processed per second the config allows, and whether it had to be assumed."""
    rates = []
    if config.source.max_fps is not None:
        rates.append(float(config.source.max_fps))
    if config.inference.interval_s > 0:
        rates.append(1.0 / config.inference.interval_s)
    return (min(rates), False) if rates else (assumed_fps, True)


def typical_sizes(config: Any) -> dict[str, int]:
    """Bytes of a detection message with two boxes, an event message, a status message (as built here)."""
    from edge_runtime.events.builder import EventStream
    from edge_runtime.events.tracker import Observation
    from edge_runtime.messages import encode, status_message

    device, session = config.thing_name, "0123456789ab"
    box = {"label": "yellow box", "class_id": 1, "score": 0.9731, "box": [101.5, 220.2, 298.4, 402.9]}
    detection = dict(box, box_normalized=[0.15859, 0.45875, 0.46625, 0.83938])
    frame_message = {
        "schema": "edge-runtime/detection/1", "device": device, "session": session, "source": str(config.source.uri),
        "seq": 123456, "captured_at": "2026-11-21T14:00:00.123Z", "published_at": "2026-11-21T14:00:00.187Z",
        "model": {"name": "demo", "version": "1.0.0"},
        "timings_ms": {"preprocess": 2.113, "inference": 41.532, "postprocess": 0.812, "total": 44.457},
        "image": {"width": 640, "height": 480}, "detections": [detection, detection], "truncated": False,
    }  # fmt: skip
    events = EventStream(config.events, device=device, session=session, source=str(config.source.uri))
    sample = Observation("yellow box", 1, 0.9731, (0.15859, 0.45875, 0.46625, 0.83938))
    messages = events.observe([sample], 0.0, 640, 480, 123456)
    for step in range(1, config.events.min_hits):
        messages += events.observe([sample], step * 0.2, 640, 480, 123456)
    messages += events.finish(60.0)
    status = status_message(
        device=device, session=session, state="running", at=0.0, uptime_s=86400.123, fps_in=5.0, fps_out=5.0,
        inference_ms={"p50": 41.532, "p95": 48.112},
        frames={"captured": 432000, "processed": 432000, "dropped": 0, "skipped": 0},
        messages={"published": 432100, "publish_errors": 0},
        source={"uri": str(config.source.uri), "state": "running", "reconnects": 0},
        outbox={"depth": 0, "bytes": 0, "dropped": 0}, rss_bytes=123456789,
    )  # fmt: skip
    event = max(len(encode(message)) for message in messages)
    return {"detection": len(encode(frame_message)), "event": event, "status": len(encode(status))}


def estimate(
    config: Any, *, assumed_fps: float = ASSUMED_FPS, objects_per_hour: float = 10.0, dwell_s: float = 60.0
) -> Estimate:
    """The expected daily messages of ``config`` by kind (see the module docstring for what is assumed)."""
    fps, assumed = frame_rate(config, assumed_fps)
    sizes = typical_sizes(config)
    frames_per_day = fps * DAY_S
    mode = config.publish.mode
    lines: list[Line] = []
    note = ""
    snapshots = config.snapshots
    if mode == "frame":
        lines.append(Line("detection", frames_per_day, sizes["detection"]))
    elif mode == "change":
        low = DAY_S / config.publish.heartbeat_s
        lines.append(Line("detection", frames_per_day, sizes["detection"]))
        note = f"change mode: at most this (labels changing every frame), at least {low:,.0f}/day (heartbeat only)"
    else:
        interval = max(config.events.min_update_interval_s, 1.0 / fps)
        updates = math.floor(dwell_s / interval) if interval > 0 else 0
        objects = objects_per_hour * 24
        size = snapshots.max_bytes if snapshots.enabled else sizes["event"]
        lines.append(Line("event new", objects, sizes["event"]))
        lines.append(Line("event update/end", objects * (1 + updates), size))
        note = (
            f"events mode: assumes {objects_per_hour:g} objects an hour staying {dwell_s:g} s each"
            f" (at most {updates} updates each)"
        )
    if snapshots.enabled and mode != "events":
        lines.append(Line("snapshot", min(frames_per_day, snapshots.per_minute * 1440.0), snapshots.max_bytes))
    if config.status.interval_s > 0:
        lines.append(Line("status", DAY_S / config.status.interval_s, sizes["status"]))
    return Estimate(mode, fps, assumed, tuple(lines), note)


def describe(result: Estimate, targets: list[str]) -> list[str]:
    """The estimate as lines for ``check-config``."""
    rate = f"{result.fps:g} fps" + (
        " (assumed: set source.max_fps or inference.interval_s)" if result.fps_assumed else ""
    )
    lines = [f"publish.mode {result.mode} at {rate}:"]
    for line in result.lines:
        units = billed_units(line.size_bytes)
        lines.append(
            f"  {line.kind:<17} {line.per_day:>12,.0f}/day  ~{line.size_bytes:,} B each ({units} billed message"
            f"{'s' if units > 1 else ''} each)"
        )
    lines.append(f"  {'total':<17} {result.messages_per_day:>12,.0f}/day  {result.units_per_day:,.0f} billed")
    if result.note:
        lines.append(f"  {result.note}")
    remote = [target for target in targets if target in ("greengrass", "mqtt")]
    where = f"via {', '.join(remote)}" if remote else "if sent there; none of publish.targets is: stdout, file are free"
    lines.append(
        f"AWS IoT Core messaging ({where}): ${result.usd_per_month:,.2f} per device per month"
        f" (${PRICE_PER_MILLION_USD:.2f} per million messages, metered in 5 KB increments; {MONTH_DAYS:g}-day month)"
    )
    return lines
