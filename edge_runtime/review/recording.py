"""Recording that survives its database: a batch that cannot be written is kept and retried, never lost quietly.

A PostgreSQL restart used to stop the console (``cannot append (terminating connection ...)``) and a SQLite file
locked by a reader for longer than the busy timeout did the same. :class:`Resilient` sits between the review loop
and a :class:`~edge_runtime.review.store.Recording`: it queues each batch, writes what is queued, and when a write
fails it keeps the rows, says so in :meth:`health` (shown on the page and in ``/api/fleet``) and tries again after
a backoff (0.5 s doubling to 30 s), without blocking the loop, which keeps checking, showing and queueing. The
store reconnects on its next try (:meth:`store_pg.PgRecorder.append`). What waits is bounded (``max_pending`` rows,
200,000 by default, ~150 MB of 700-byte detections): beyond it the oldest rows are dropped and counted, since a
database gone for hours must not take the console's memory with it. On close it tries once more, then counts what
it could not write, loudly.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable
from typing import Any, Callable, Optional

from edge_runtime.errors import ReviewError
from edge_runtime.review.store import Recording
from edge_runtime.review.validation import Checked, printable

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 30.0)
MAX_PENDING = 200_000
WRITE_CHUNK = 5_000  # rows per transaction when catching up


class Resilient:
    """A :class:`Recording` that keeps what it could not write and retries; the same interface, plus health."""

    def __init__(
        self,
        store: Recording,
        max_pending: int = MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
        backoff_s: tuple[float, float] = BACKOFF_S,
    ) -> None:
        self.store = store
        self.max_pending = max_pending
        self.clock = clock
        self.backoff_s = backoff_s
        self.dropped = 0  # rows dropped because the database stayed away past max_pending
        self.failures = 0
        self.error: Optional[str] = None
        self._since: Optional[float] = None  # wall clock of the first failure of the current outage
        self._delay = backoff_s[0]
        self._next_try = float("-inf")
        self._pending: collections.deque[tuple[Checked, Optional[bytes]]] = collections.deque()

    @property
    def written(self) -> int:
        return int(self.store.written)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def append(self, items: Iterable[Checked], payloads: Iterable[Optional[bytes]]) -> None:
        self._pending.extend(zip(items, payloads))
        over = len(self._pending) - self.max_pending
        if over > 0:
            for _ in range(over):
                self._pending.popleft()
            self.dropped += over
        self.flush()

    def flush(self, force: bool = False) -> bool:
        """Write what is pending unless a backoff is running (``force`` ignores it); True when nothing is left."""
        if not self._pending:
            return True
        if not force and self.clock() < self._next_try:
            return False
        while self._pending:
            chunk = [self._pending[i] for i in range(min(WRITE_CHUNK, len(self._pending)))]
            try:
                self.store.append([item for item, _ in chunk], [payload for _, payload in chunk])
            except ReviewError as error:
                self._failed(str(error))
                return False
            for _ in chunk:
                self._pending.popleft()
        if self.error is not None:
            log.warning("review: recording again after %.1f s (%d failed tries)", time.time() - (self._since or 0),
                        self.failures)  # fmt: skip
        self.error, self._since, self._delay, self._next_try = None, None, self.backoff_s[0], float("-inf")
        return True

    def _failed(self, error: str) -> None:
        self.failures += 1
        if self.error is None:
            self._since = time.time()
            log.warning("review: cannot record, keeping %d rows and retrying (%s)", len(self._pending), error)
        self.error = printable(error, 300)
        self._next_try = self.clock() + self._delay
        self._delay = min(self._delay * 2, self.backoff_s[1])

    def health(self) -> dict[str, Any]:
        """For the page: ``state`` ok | retrying, the error, since when, rows waiting and dropped."""
        return {
            "state": "ok" if self.error is None else "retrying",
            "error": self.error,
            "since": None if self._since is None else round(self._since, 3),
            "pending": len(self._pending),
            "dropped": self.dropped,
            "written": self.written,
        }

    def close(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s  # a real bound, whatever clock the backoff runs on
        while self._pending and time.monotonic() < deadline:
            if self.flush(force=True):
                break
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if self._pending:
            self.dropped += len(self._pending)
            log.error("review: %d received messages could not be recorded (%s)", len(self._pending), self.error)
            self._pending.clear()
        self.store.close()
