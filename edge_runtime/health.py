"""Counters and figures for the status message: fps in and out, inference percentiles, RSS, uptime.

RSS comes from ``/proc/self/status`` (Linux devices) with ``resource`` as the fallback, so the edge extra needs
no psutil. Rates are measured over the interval since the previous status message, not since start, so a stall
shows up in the next message instead of being averaged away.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Iterable
from typing import Callable


def rss_bytes(field: str = "VmRSS") -> int | None:
    """Resident set size of this process (``VmHWM``: its peak), or None where neither /proc nor resource can say."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # peak, kB on Linux
    except (ImportError, OSError):
        return None


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


class Stats:
    """Thread-safe counters the pipeline bumps and the status reporter reads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: int = 500) -> None:
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self.processed = 0
        self.published = 0
        self.publish_errors = 0
        self.detections: collections.Counter[str] = collections.Counter()  # per label, since start
        self._inference_ms: collections.deque[float] = collections.deque(maxlen=window)
        self._last_at = self.started
        self._last_in = 0
        self._last_out = 0

    def frame_done(self, inference_ms: float, labels: Iterable[str] = ()) -> None:
        with self._lock:
            self.processed += 1
            self._inference_ms.append(inference_ms)
            self.detections.update(labels)

    def message_published(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.published += 1
            else:
                self.publish_errors += 1

    def rates(self, captured: int) -> tuple[float, float]:
        """(fps in, fps out) since the previous call."""
        with self._lock:
            now = self.clock()
            elapsed = max(now - self._last_at, 1e-6)
            fps_in = (captured - self._last_in) / elapsed
            fps_out = (self.processed - self._last_out) / elapsed
            self._last_at, self._last_in, self._last_out = now, captured, self.processed
            return fps_in, fps_out

    def inference_percentiles(self) -> tuple[float | None, float | None]:
        with self._lock:
            values = list(self._inference_ms)
        return percentile(values, 0.5), percentile(values, 0.95)

    def uptime_s(self) -> float:
        return self.clock() - self.started

    def summary(self) -> str:
        """One line for the end of a run: frames, rate, inference percentiles, detections per label."""
        uptime = self.uptime_s()
        p50, p95 = self.inference_percentiles()
        with self._lock:
            processed, counts = self.processed, sorted(self.detections.items())
        fps = processed / uptime if uptime > 0 else 0.0
        timing = f", inference p50 {p50:.1f} ms p95 {p95:.1f} ms" if p50 is not None and p95 is not None else ""
        found = ", ".join(f"{label} {count}" for label, count in counts) or "none"
        return f"{processed} frames in {uptime:.1f} s ({fps:.1f} fps){timing}; detections: {found}"
