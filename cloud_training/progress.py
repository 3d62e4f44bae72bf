"""Progress of long loops: a tqdm bar on a terminal, a log line at a bounded rate anywhere else.

A bar redrawn with carriage returns is what a person at a terminal wants and what a log file (SageMaker's CloudWatch
stream, CI, ``2> train.log``) cannot hold: there tqdm is silent, and a 100-second epoch looked like a hang. So when
stderr is not a terminal each loop logs ``desc: done/total (percent), rate/s, ETA`` at most every ``interval``
seconds (and once at the end), through :mod:`logging`, so the lines carry the command's usual prefix and level.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Callable, Optional, TypeVar

T = TypeVar("T")
DEFAULT_INTERVAL_S = 10.0
log = logging.getLogger("cloud_training.progress")


def format_line(desc: str, done: int, total: Optional[int], elapsed: float, unit: str = "it") -> str:
    """``desc: 12/40 img (30%), 3.1 img/s, ETA 9s`` (no total: no percentage and no ETA). Pure, for the tests."""
    rate = done / elapsed if elapsed > 0 else 0.0
    parts = [f"{desc}: {done}/{total} {unit}" if total is not None else f"{desc}: {done} {unit}"]
    if total:
        parts[0] += f" ({100.0 * done / total:.0f}%)"
    parts.append(f"{rate:.3g} {unit}/s")
    if total is not None and rate > 0 and done < total:
        parts.append(f"ETA {format_seconds((total - done) / rate)}")
    elif total is not None and done >= total:
        parts.append(f"took {format_seconds(elapsed)}")
    return ", ".join(parts)


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress(
    items: Iterable[T],
    desc: str,
    total: Optional[int] = None,
    unit: str = "it",
    interval: float = DEFAULT_INTERVAL_S,
    terminal: Optional[bool] = None,
    clock: Callable[[], float] = time.monotonic,
    emit: Optional[Callable[[str], None]] = None,
) -> Iterator[T]:
    """Yield ``items`` while showing progress: a bar when ``terminal`` (default: stderr is a TTY), else log lines."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if terminal is None:
        terminal = sys.stderr.isatty()
    if terminal:
        try:
            from tqdm import tqdm
        except ImportError:  # an edge-only install has no tqdm: log lines then, as in a log
            pass
        else:
            yield from tqdm(items, desc=desc, total=total, unit=unit, leave=False)
            return
    say = emit or log.info
    started = clock()
    last = started
    done = 0
    for item in items:
        yield item
        done += 1
        now = clock()
        if now - last >= interval:
            say(format_line(desc, done, total, now - started, unit))
            last = now
    if done:
        say(format_line(desc, done, total, clock() - started, unit))
