"""How the review shows the fleet: a redrawn table on a terminal, plain lines in a pipe, JSON lines for scripts.

Three views behind one small interface (``message`` after each checked message, ``tick`` on every loop turn,
``close`` at the end), so the review loop does not know which one runs. The terminal view redraws at most
``refresh_s`` apart with ANSI codes (home + clear) so a busy fleet does not flicker; the plain view prints the
table only when something in it changed; the JSON view prints one object per message and one per device state
change, flushed at once so a script reading the pipe sees each as it happens.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import IO, Any, Optional

from edge_runtime.review.fleet import DeviceRow, Fleet
from edge_runtime.review.validation import Checked

CLEAR = "\x1b[H\x1b[2J"
COLOURS = {"online": "\x1b[32m", "offline": "\x1b[31m", "stopped": "\x1b[90m", "stale": "\x1b[33m",
           "degraded": "\x1b[35m", "starting": "\x1b[33m"}
RESET = "\x1b[0m"
LATEST_SHOWN = 3


def _clock(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).strftime("%H:%M:%S")


def _number(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[DeviceRow], fleet: Fleet, now: float, colour: bool = False) -> list[str]:
    """The fleet as text lines: a header, one line per device, a footer with the rejection counts."""
    header = f"{'device':<20} {'state':<8} {'last seen':>9} {'fps':>6} {'inf ms':>7}  window counts / latest"
    lines = [header]
    for row in rows:
        state = f"{row.state:<8}"
        if colour:
            state = COLOURS.get(row.state, "") + state + RESET
        counts = " ".join(f"{label}={count}" for label, count in row.detections_per_class.items()) or "-"
        latest = ", ".join(f"{label} {score:.2f}" for label, score in row.latest[:LATEST_SHOWN])
        if len(row.latest) > LATEST_SHOWN:
            latest += f" (+{len(row.latest) - LATEST_SHOWN})"
        lines.append(
            f"{row.device[:20]:<20} {state} {_clock(row.last_seen):>9} {_number(row.fps):>6}"
            f" {_number(row.inference_ms):>7}  {counts} | {latest or '-'}"
        )
        for problem in row.problems:  # why it is degraded, one line per part, under its row
            since = problem["since"][11:19]
            lines.append(f"  ! {problem['part']}: {problem['reason']} (since {since} UTC)")
    summary = fleet.summary()
    rejected = ", ".join(f"{reason} {count}" for reason, count in summary["rejected"].items())
    lines.append(f"{_clock(now)} UTC  valid {summary['valid']}; skipped: {rejected}")
    if summary["problems"]:
        lines.append(f"  last problem: {summary['problems'][-1]}")
    return lines


class View:
    """Base: does nothing; the loop calls these hooks."""

    def started(self, topics: list[str]) -> None:
        """Called once the subscriptions are in place: from here on nothing published is missed."""

    def message(self, item: Checked, fleet: Fleet, now: float) -> None:
        """Called after ``item`` was folded into ``fleet``."""

    def tick(self, fleet: Fleet, now: float) -> None:
        """Called on every turn of the loop, with or without new messages."""

    def close(self, fleet: Fleet, now: float) -> None:
        """Called once at the end."""


class TerminalView(View):
    def __init__(self, stream: IO[str], refresh_s: float = 0.5) -> None:
        self.stream = stream
        self.refresh_s = refresh_s
        self._drawn_at = float("-inf")

    def tick(self, fleet: Fleet, now: float) -> None:
        if now - self._drawn_at >= self.refresh_s:
            self._draw(fleet, now)

    def _draw(self, fleet: Fleet, now: float) -> None:
        self._drawn_at = now
        text = "\n".join(table(fleet.rows(now), fleet, now, colour=True))
        self.stream.write(CLEAR + text + "\n")
        self.stream.flush()

    def close(self, fleet: Fleet, now: float) -> None:
        self._draw(fleet, now)


class PlainView(View):
    """For a pipe or a log file: the table again whenever a device's state or the rejection counts change."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._last: Optional[tuple[Any, ...]] = None

    def tick(self, fleet: Fleet, now: float) -> None:
        rows = fleet.rows(now)
        key = (
            tuple((row.device, row.state, row.status, tuple(map(str, row.problems))) for row in rows),
            tuple(fleet.rejected.values()),
        )
        if key != self._last:
            self._last = key
            self.stream.write("\n".join(table(rows, fleet, now)) + "\n\n")
            self.stream.flush()

    def close(self, fleet: Fleet, now: float) -> None:
        self._last = None
        self.tick(fleet, now)


class JsonView(View):
    """One JSON object per line: ``subscribed``, then ``message`` events, ``state`` events when a device's state
    changes, and a final ``summary``."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._states: dict[str, str] = {}

    def _emit(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.stream.flush()

    def started(self, topics: list[str]) -> None:
        self._emit({"event": "subscribed", "topics": topics})

    def message(self, item: Checked, fleet: Fleet, now: float) -> None:
        self._emit(
            {
                "event": "message",
                "received_at": round(item.received_at, 3),
                "topic": item.topic,
                "outcome": item.outcome,
                "kind": item.kind,
                "device": item.device,
                "size": item.size,
                "problem": item.problem or None,
            }
        )
        self.tick(fleet, now)

    def tick(self, fleet: Fleet, now: float) -> None:
        for row in fleet.rows(now):
            if self._states.get(row.device) != row.state:
                self._states[row.device] = row.state
                self._emit({"event": "state", "at": round(now, 3), **row.to_dict()})

    def close(self, fleet: Fleet, now: float) -> None:
        self.tick(fleet, now)
        devices = [row.to_dict() for row in fleet.rows(now)]
        self._emit({"event": "summary", "at": round(now, 3), **fleet.summary(), "devices": devices})


def make_view(json_lines: bool, stream: Optional[IO[str]] = None) -> View:
    out = stream or sys.stdout
    if json_lines:
        return JsonView(out)
    return TerminalView(out) if out.isatty() else PlainView(out)
