"""The capture loop: one thread that reads a :class:`FrameSource` into the frame queue until the stop event.

Live sources (cameras, streams) are reopened after errors or stalls with doubling backoff, and the loop keeps
going; their state is reported (``connecting``, ``streaming``, ``reconnecting``). A file or folder ends at its
last frame (``ended``) unless looping, so the daemon can drain the queue and exit 0. ``max_fps`` paces files
(they are not real time) and skips live frames that arrive early.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from edge_runtime.errors import SourceError
from edge_runtime.frames import Frame, LatestQueue
from edge_runtime.sources.base import FrameSource

log = logging.getLogger(__name__)


class Capture:
    """Reads frames into ``frames``; ``state``, counters and ``error`` are read by the status reporter."""

    def __init__(
        self,
        source: FrameSource,
        frames: LatestQueue[Frame],
        stop: threading.Event,
        loop: bool = False,
        max_fps: float | None = None,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        source_id: str = "",
    ) -> None:
        self.source = source
        self.source_id = source_id or source.name
        self.frames = frames
        self.stop_event = stop
        self.loop = loop
        self.min_period = 1.0 / max_fps if max_fps else 0.0
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.clock = clock
        self._state = "starting"
        self.state_since = clock()  # monotonic time the state last changed: connecting too long is a problem
        self.ended = threading.Event()  # set when a file source has delivered its last frame
        self.error: SourceError | None = None
        self.last_error = ""  # the last open or read failure of a live source, for the status's problems
        self.captured = 0
        self.skipped = 0
        self.reconnects = 0
        self._seq = 0
        self._last_accepted = float("-inf")
        self._next_due = float("-inf")  # live sources under max_fps: when the next frame is due
        self._is_open = False
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        if value != self._state:
            self._state = value
            self.state_since = self.clock()

    def open_now(self) -> None:
        """Open a file source before the daemon starts, so a missing file is a fatal one-line error (once)."""
        if not self._is_open:
            self.source.open()
            self._is_open = True

    def start(self, name: str = "capture") -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            if self.source.live:
                self._run_live()
            else:
                self._run_file()
        except Exception:  # a bug, not a source failure: stop the daemon rather than run blind
            log.exception("capture thread failed")
            self.error = SourceError("capture thread failed (see log)")
            self.stop_event.set()
        finally:
            self.source.close()
            self._is_open = False

    def _run_file(self) -> None:
        if not self._is_open:
            try:
                self.source.open()
            except SourceError as error:
                self.error = error
                self.state = "failed"
                self.ended.set()
                return
            self._is_open = True
        self.state = "streaming"
        while not self.stop_event.is_set():
            try:
                image = self.source.read()
            except SourceError as error:  # a file source that cannot go on (e.g. not one readable image): fatal
                self.error = error
                self.state = "failed"
                self.ended.set()
                return
            if image is None:
                if self.loop:
                    self.source.rewind()
                    continue
                break
            self._pace()
            if self.stop_event.is_set():
                break
            if not self.frames.put_wait(self._frame(image), self.stop_event):
                break
        if self.stop_event.is_set():
            self.state = "stopped"
        else:
            self.state = "ended"
            self.ended.set()

    def _run_live(self) -> None:
        delay = self.reconnect_initial_s
        while not self.stop_event.is_set():
            if not self._is_open:
                self.state = "connecting" if self.reconnects == 0 and self.captured == 0 else "reconnecting"
                try:
                    self.source.open()
                    self._is_open = True
                except SourceError as error:
                    self.last_error = str(error)
                    log.warning("%s (retrying in %.1fs)", error, delay)
                    self.stop_event.wait(delay)
                    delay = min(delay * 2, self.reconnect_max_s)
                    continue
            try:
                image = self.source.read()
                if image is None:
                    raise SourceError(f"{self.source.name}: stream ended")
            except SourceError as error:
                self.last_error = str(error)
                log.warning("%s; reconnecting in %.1fs", error, delay)
                self.source.close()
                self._is_open = False
                self.reconnects += 1
                self.state = "reconnecting"
                self.stop_event.wait(delay)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            self.state = "streaming"
            self.last_error = ""
            delay = self.reconnect_initial_s
            now = self.clock()
            if now < self._next_due:
                self.skipped += 1
                continue
            # due times advance by the period, with half a period of slack after the arrival, so a camera already
            # running at max_fps (rpicam-vid is asked for that frame rate) loses nothing to jitter, the long-run
            # rate stays at most max_fps, and a gap never earns a burst
            self._next_due = max(self._next_due + self.min_period, now + self.min_period / 2)
            self.frames.put(self._frame(image))
        self.state = "stopped"

    def _pace(self) -> None:
        if self.min_period:
            wait = self._last_accepted + self.min_period - self.clock()
            if wait > 0:
                self.stop_event.wait(wait)
            self._last_accepted = self.clock()

    def _frame(self, image: object) -> Frame:
        import numpy as np

        self._seq += 1
        self.captured += 1
        return Frame(image=np.asarray(image), seq=self._seq, captured_at=time.time(), source=self.source_id)
