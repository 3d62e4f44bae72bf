"""``review report``: what a recording says, per device and class, as text, JSON and a PNG chart.

Everything is computed from valid rows of the recording, with the reviewer's receive time as the one clock (device
clocks may disagree; the reviewer's is the same for every device). Per device and class: detections per hour and
the score distribution. Per device: gaps, either ``stopped`` / ``last will`` (from a status message until the
device is heard from in a new session, or the recording ends) or ``silent`` (no message for longer than
``gap_s`` while it was supposed to be online). Skipped messages are counted by reason: the rejections and the
``duplicate`` redeliveries the review recorded, plus any detection recorded as valid twice (the review drops
redeliveries within one run; a later run appending to the same file starts with no memory of the earlier one).

The chart needs matplotlib, which is in the ``cloud`` extra, not ``edge``: asking for ``--png`` without it is a
one-line error before anything is computed, never a half-written report.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from edge_runtime.errors import ReviewError
from edge_runtime.review.fleet import OFFLINE_STATES
from edge_runtime.review.redelivery import DUPLICATE, SKIPPED, Redeliveries
from edge_runtime.review.store import read_rows

HISTOGRAM_BINS = 10  # score histogram: [0, 0.1), [0.1, 0.2), ... [0.9, 1.0]
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hour_of(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:00Z")


def parse_since(text: str, now: float) -> float:
    """``--since``: a duration back from ``now`` (``90m``, ``2h``, ``1d``) or an ISO 8601 time (UTC if unzoned)."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        return now - float(relative.group(1)) * _UNIT_S[relative.group(2)]
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReviewError(f"--since: expected a duration such as 2h or an ISO time (got {text!r})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


@dataclass
class ClassStats:
    count: int = 0
    per_hour: dict[str, int] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        histogram = [0] * HISTOGRAM_BINS
        for score in self.scores:
            histogram[min(HISTOGRAM_BINS - 1, int(score * HISTOGRAM_BINS))] += 1
        scores = self.scores
        return {
            "count": self.count,
            "per_hour": dict(sorted(self.per_hour.items())),
            "scores": {
                "min": round(min(scores), 4) if scores else None,
                "median": round(statistics.median(scores), 4) if scores else None,
                "mean": round(statistics.fmean(scores), 4) if scores else None,
                "max": round(max(scores), 4) if scores else None,
                "histogram": histogram,
            },
        }


@dataclass
class DeviceStats:
    messages: int = 0
    detection_messages: int = 0
    status_messages: int = 0
    first_seen: Optional[float] = None
    last_seen: Optional[float] = None
    classes: dict[str, ClassStats] = field(default_factory=dict)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    times: list[tuple[float, str]] = field(default_factory=list)  # (received_at, label) per detection, for the chart
    gap_spans: list[tuple[float, Optional[float]]] = field(default_factory=list)  # the gaps as times, for the chart
    # gap tracking while rows are folded in
    _offline: Optional[tuple[float, str, str]] = None  # (since, session, reason)
    _previous: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "detection_messages": self.detection_messages,
            "status_messages": self.status_messages,
            "first_seen": iso(self.first_seen) if self.first_seen is not None else None,
            "last_seen": iso(self.last_seen) if self.last_seen is not None else None,
            "classes": {label: stats.to_dict() for label, stats in sorted(self.classes.items())},
            "gaps": self.gaps,
        }


def _gap(start: float, end: Optional[float], reason: str) -> dict[str, Any]:
    return {
        "from": iso(start),
        "to": iso(end) if end is not None else None,
        "seconds": round(end - start, 3) if end is not None else None,
        "reason": reason,
    }


@dataclass
class Report:
    recording: str
    messages: int = 0
    valid: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIPPED, 0))
    devices: dict[str, DeviceStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recording": self.recording,
            "messages": self.messages,
            "valid": self.valid,
            "rejected": dict(self.rejected),
            "devices": {name: stats.to_dict() for name, stats in sorted(self.devices.items())},
        }


def build_report(
    path: str | Path, since: Optional[float] = None, device: Optional[str] = None, gap_s: float = 90.0
) -> Report:
    """Fold every row of the recording (from ``since``, of ``device``) into a :class:`Report`."""
    from edge_runtime.review.store_pg import redact

    report = Report(redact(str(path)))  # a postgresql:// URL without its password
    redeliveries = Redeliveries()
    events: dict[str, list[tuple[float, Optional[str], dict[str, Any]]]] = {}
    for row in read_rows(path, since=since, device=device):
        report.messages += 1
        if not row.valid or row.payload is None:
            report.rejected[row.outcome] = report.rejected.get(row.outcome, 0) + 1
            continue
        message = json.loads(row.payload)
        session = (str(message["device"]), str(message["session"]))
        if row.kind == "detection" and redeliveries.seen(*session, int(message["seq"])):
            report.rejected[DUPLICATE] += 1  # recorded as valid by an earlier review run, or by an older version
            continue
        report.valid += 1
        events.setdefault(str(message["device"]), []).append((event_time(message, row.received_at), row.kind, message))
    for device_name, device_events in events.items():
        # in the device's own time (when it captured, when it reported), not arrival: an outbox delivering its backlog
        # after an outage must not make the outage look like a burst and hide the gap
        stats = report.devices.setdefault(device_name, DeviceStats())
        for at, kind, message in sorted(device_events, key=lambda event: event[0]):
            _fold(stats, kind, message, at, gap_s)
    for stats in report.devices.values():
        if stats._offline is not None:
            since_at, _session, reason = stats._offline
            stats.gaps.append(_gap(since_at, None, reason))
            stats.gap_spans.append((since_at, None))
    return report


def event_time(message: dict[str, Any], received_at: float) -> float:
    """When it happened on the device: a detection's (or snapshot's) ``captured_at``, a status message's ``at``;
    the arrival time for a last will (stamped when the device connected, sent by the broker when it vanished) and
    when neither parses."""
    if message.get("state") == "offline":
        return received_at
    text = message.get("captured_at") or message.get("at")
    if isinstance(text, str):
        try:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return received_at


def _fold(stats: DeviceStats, kind: Optional[str], message: dict[str, Any], at: float, gap_s: float) -> None:
    stats.messages += 1
    stats.first_seen = at if stats.first_seen is None else stats.first_seen
    stats.last_seen = at
    session = str(message["session"])
    state = message.get("state") if kind == "status" else None
    if stats._offline is not None:
        since_at, offline_session, reason = stats._offline
        if session != offline_session or state == "running":
            stats.gaps.append(_gap(since_at, at, reason))
            stats.gap_spans.append((since_at, at))
            stats._offline = None
    elif stats._previous is not None and at - stats._previous > gap_s:
        stats.gaps.append(_gap(stats._previous, at, "silent"))
        stats.gap_spans.append((stats._previous, at))
    if state in OFFLINE_STATES and stats._offline is None:
        stats._offline = (at, session, "last will" if state == "offline" else "stopped")
    stats._previous = at
    if kind == "status":
        stats.status_messages += 1
        return
    if kind != "detection":  # a snapshot: the picture of a detection counted on its own message
        return
    stats.detection_messages += 1
    hour = hour_of(at)
    for detection in message["detections"]:
        label = str(detection["label"])
        cls = stats.classes.setdefault(label, ClassStats())
        cls.count += 1
        cls.per_hour[hour] = cls.per_hour.get(hour, 0) + 1
        cls.scores.append(float(detection["score"]))
        stats.times.append((at, label))


def render_text(report: Report) -> str:
    """The report for a terminal: totals, then per device its classes, score spread and gaps."""
    rejected = ", ".join(f"{reason} {count}" for reason, count in report.rejected.items())
    lines = [f"{report.recording}: {report.messages} messages, {report.valid} valid; skipped: {rejected}"]
    for name, stats in sorted(report.devices.items()):
        data = stats.to_dict()
        lines.append("")
        lines.append(
            f"{name}: {stats.detection_messages} detection and {stats.status_messages} status messages,"
            f" {data['first_seen']} .. {data['last_seen']}"
        )
        for label, cls in data["classes"].items():
            scores = cls["scores"]
            lines.append(
                f"  {label}: {cls['count']} detections; score min {scores['min']} median {scores['median']}"
                f" max {scores['max']}; histogram (0.1 bins) {scores['histogram']}"
            )
            for hour, count in cls["per_hour"].items():
                lines.append(f"    {hour}  {count}")
        if not stats.classes:
            lines.append("  no detections")
        for gap in stats.gaps:
            until = gap["to"] or "end of recording"
            length = f" ({gap['seconds']} s)" if gap["seconds"] is not None else ""
            lines.append(f"  gap: {gap['from']} .. {until}{length}: {gap['reason']}")
    return "\n".join(lines) + "\n"


def require_matplotlib() -> None:
    """Fail in one line, before any work, when ``--png`` cannot be honoured."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReviewError(
            "--png needs matplotlib, which is not installed here (it is in the cloud extra:"
            " pip install 'ssd-greengrass[cloud]' or pip install matplotlib)"
        ) from None


def write_png(report: Report, path: str | Path) -> Path:
    """Detections over time, one line per device and class, offline gaps shaded; minute or hour buckets."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server or in CI
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def x(timestamp: float) -> float:
        return float(mdates.date2num(dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)))

    times = [at for stats in report.devices.values() for at, _label in stats.times]
    bucket = 60.0 if not times or max(times) - min(times) <= 6 * 3600 else 3600.0
    figure, axes = plt.subplots(figsize=(10, 4.5), dpi=100)
    try:
        for name, stats in sorted(report.devices.items()):
            per_label: dict[str, collections.Counter[float]] = collections.defaultdict(collections.Counter)
            for at, label in stats.times:
                per_label[label][at - at % bucket] += 1
            for label, counts in sorted(per_label.items()):
                keys = sorted(counts)
                axes.plot(
                    [x(k) for k in keys], [counts[k] for k in keys], marker="o", markersize=3, label=f"{name}: {label}"
                )
            for start, end in stats.gap_spans:
                axes.axvspan(x(start), x(end if end is not None else stats.last_seen or start), alpha=0.12)
        axes.xaxis_date()
        axes.set_title(f"detections per {'minute' if bucket == 60 else 'hour'} (shaded: device gaps)")
        axes.set_xlabel("received (UTC)")
        axes.set_ylabel("detections")
        if times:
            axes.legend(fontsize="small", loc="upper left")
        else:
            axes.text(0.5, 0.5, "no detections recorded", ha="center", va="center", transform=axes.transAxes)
        figure.autofmt_xdate()
        figure.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out)
    except OSError as error:
        raise ReviewError(f"{path}: cannot write the chart ({error})") from None
    finally:
        plt.close(figure)
    return out
