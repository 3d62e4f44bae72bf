"""SIGTERM and SIGINT set one stop event, for as long as a block runs; the previous handlers come back after.

A service manager (systemd, the Greengrass nucleus) stops a process with SIGTERM and an operator with Ctrl-C; both
should end the same ordered shutdown, not a traceback from wherever the main thread was. The handler only sets the
event: the loops that wait on it (bounded waits everywhere) notice within a poll. Meant for the daemon and the
review alike, so the block is written once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Optional

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, name: str = "edge-runtime") -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT set ``stop`` (logged at INFO as ``NAME: SIGTERM: stopping``)."""

    def request_stop(signum: int, _frame: Optional[FrameType]) -> None:
        log.info("%s: %s: stopping", name, signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
