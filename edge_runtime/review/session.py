"""The review loop: subscriber -> bounded queue -> check -> record -> fleet state -> view, under one stop event.

The subscriber's callback only appends to a bounded inbox; when it is full the callback waits (at most
``Limits.block_s``), so awscrt stops reading and the broker holds the backlog, and only then drops and counts (a
flood cannot grow memory); this loop takes from it with a timeout, so it also notices the stop
event, ``--duration`` and staleness when nothing arrives. Messages taken together are recorded in one
transaction. ``--max-messages`` counts every received message, valid or not. A detection the broker delivered
again (QoS 1 is at least once) leaves the check as a ``duplicate`` (:mod:`edge_runtime.review.redelivery`): it is
recorded as one, counted and skipped, so no detection is counted twice.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Callable, Optional

from edge_runtime.review.fleet import Fleet
from edge_runtime.review.recording import Resilient
from edge_runtime.review.redelivery import UNHANDLED, Redeliveries
from edge_runtime.review.snapshots import SnapshotMatcher
from edge_runtime.review.store import Recording, Row
from edge_runtime.review.subscriber import Received, Subscriber
from edge_runtime.review.validation import MAX_PAYLOAD_BYTES, Checked, Identity, check, oversize, printable
from edge_runtime.review.view import View

log = logging.getLogger(__name__)

POLL_S = 0.2
BATCH = 500
REPLAY_LIMIT = 50_000
GC_THRESHOLDS = (20_000, 50, 100)  # the cyclic collector's, while the loop runs
ROOM_POLL_S = 0.002  # how often a subscriber held by a full inbox looks again
DROP_LOG_S = 10.0  # at most one warning about drops this often: a flood must not become a flood of log lines


@dataclass(frozen=True)
class Limits:
    duration_s: Optional[float] = None
    max_messages: Optional[int] = None
    max_bytes: int = MAX_PAYLOAD_BYTES
    queue_size: int = 10_000
    close_timeout_s: float = 3.0
    block_s: float = 5.0  # how long a full queue holds the subscriber's thread before a message is dropped
    identity: Identity = field(default_factory=Identity)  # payload device = the thing its topic names


class ReviewSession:
    def __init__(
        self,
        subscriber: Subscriber,
        fleet: Fleet,
        view: View,
        stop: threading.Event,
        recorder: Optional[Recording] = None,
        limits: Limits = Limits(),
        clock: Callable[[], float] = time.time,
        snapshots: Optional[SnapshotMatcher] = None,
    ) -> None:
        self.subscriber = subscriber
        self.fleet = fleet
        self.view = view
        self.stop = stop
        # a batch the database refuses is kept and retried (review.recording), never the end of the review
        self.recorder: Optional[Resilient] = (
            recorder if recorder is None or isinstance(recorder, Resilient) else Resilient(recorder)
        )
        self.limits = limits
        self.clock = clock
        self.received = 0
        self.dropped = 0  # the queue was full: the loop fell behind
        self.redeliveries = Redeliveries()
        self.snapshots = snapshots or SnapshotMatcher()  # a snapshot is kept only with its detection (review.snapshots)
        self._unhandled_logged = 0
        self._loop_thread: Optional[int] = None
        self._closing = False
        self._dropped_logged = 0
        self._dropped_log_at = float("-inf")
        self.lag_s = 0.0  # how long the last batch's oldest message waited before it was shown
        # the subscriber's thread appends, this loop pops (deque operations are atomic); bounded by _deliver
        self._inbox: collections.deque[Received] = collections.deque()
        self._arrived = threading.Event()
        self._sleeping = False

    def _deliver(self, item: Received) -> None:
        """On the subscriber's thread: an append, and a wake-up only when the loop sleeps (a ``queue.Queue`` took a
        lock and a notify per message, ~5 µs of the ~100 µs a message may cost at 10,000 a second). A full inbox
        first holds that thread up to ``block_s``: awscrt then stops reading and acknowledging, so the broker keeps
        the backlog (its inflight window and queue, QoS 1) instead of the console dropping it; only a loop stuck
        that long drops, counted."""
        inbox = self._inbox
        if len(inbox) >= self.limits.queue_size and not self._wait_for_room():
            self.dropped += 1
            return
        inbox.append(item)
        if self._sleeping:
            self._arrived.set()

    def _wait_for_room(self) -> bool:
        if threading.get_ident() == self._loop_thread:  # an in-process subscriber: waiting would deadlock
            return False
        give_up = time.monotonic() + self.limits.block_s
        while len(self._inbox) >= self.limits.queue_size:  # in short sleeps, so a stop is not held up
            if self._closing or time.monotonic() > give_up:
                return False
            time.sleep(ROOM_POLL_S)
        return True

    def run(self) -> int:
        """Until the stop event, ``duration_s`` or ``max_messages``; returns the number of messages handled."""
        started = time.monotonic()
        deadline = None if self.limits.duration_s is None else started + self.limits.duration_s
        self._loop_thread = threading.get_ident()
        # each message is a dozen small dicts and lists that live until its batch is done: with Python's default
        # collector thresholds (700, 10, 10) the collections cost a quarter of the loop at 10,000 messages/s
        # (the loop alone, 100,000 detections: 10,200 msg/s, 15,000 with these); it makes no reference cycles
        thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        self.subscriber.start(self._deliver)
        try:
            self.view.started(list(self.subscriber.topics))
            while not self.stop.is_set():
                wait = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
                if wait <= 0:
                    break
                self.subscriber.maintain()
                batch = self._take(wait)
                if batch:
                    self._handle(batch)
                elif self.recorder is not None:
                    self.recorder.flush()  # a database that came back gets what waited, even when all is quiet
                self._health()
                self.view.tick(self.fleet, self.clock())
                if self.limits.max_messages is not None and self.received >= self.limits.max_messages:
                    break
        finally:
            self._closing = True
            self.subscriber.close(self.limits.close_timeout_s)
            leftover = self._drain_without_wait()
            if leftover:  # arrived while stopping: still recorded and shown, never lost silently
                self._handle(leftover)
            if self.recorder is not None:
                self.recorder.close(self.limits.close_timeout_s)
            self._health()
            self.view.close(self.fleet, self.clock())
            if self.dropped:
                log.warning("review: %d messages dropped because the review fell behind", self.dropped)
            gc.set_threshold(*thresholds)
        return self.received

    def _health(self) -> None:
        """What the page shows of the console itself: the broker, the recording, messages dropped on the way."""
        self.fleet.health = {
            "broker": self.subscriber.state(),
            "recording": None if self.recorder is None else self.recorder.health(),
            "dropped": self.dropped,
            "ingest_lag_s": round(self.lag_s, 3),
        }
        if self.dropped > self._dropped_logged and time.monotonic() - self._dropped_log_at > DROP_LOG_S:
            log.warning("review: %d messages dropped so far: the review is behind (queue of %d full)", self.dropped,
                        self.limits.queue_size)  # fmt: skip
            self._dropped_logged, self._dropped_log_at = self.dropped, time.monotonic()

    def replay(self, rows: Iterable[Row], limit: int = REPLAY_LIMIT) -> int:
        """Fold the valid rows of a recording (oldest first) into the fleet and the view, without recording them
        again: a console restarted on its ``--record`` shows what it had, not an empty fleet. Keeps the last
        ``limit`` rows; returns how many were folded."""
        kept: collections.deque[Row] = collections.deque(maxlen=limit)
        kept.extend(row for row in rows if row.valid and row.payload is not None)
        for row in kept:
            assert row.payload is not None
            checked = check(row.topic, row.payload, row.received_at, identity=self.limits.identity)
            item = self.snapshots.check(self.redeliveries.check(checked))
            self.fleet.add(item)
            self.view.message(item, self.fleet, self.clock())
        self.view.tick(self.fleet, self.clock())
        return len(kept)

    def _take(self, wait: float) -> list[Received]:
        if not self._inbox:
            self._sleeping = True  # before looking again: a message appended after this look sets the event
            try:
                if not self._inbox:
                    self._arrived.wait(wait)
            finally:
                self._sleeping = False
                self._arrived.clear()
        return self._drain_without_wait()

    def _drain_without_wait(self) -> list[Received]:
        inbox = self._inbox
        return [inbox.popleft() for _ in range(min(BATCH, len(inbox)))]  # only this thread takes

    def _handle(self, batch: list[Received]) -> None:
        if self.limits.max_messages is not None:
            batch = batch[: max(0, self.limits.max_messages - self.received)]
        checked: list[Checked] = [
            oversize(item.topic, item.size, item.received_at, self.limits.max_bytes)
            if item.payload is None
            else check(item.topic, item.payload, item.received_at, self.limits.max_bytes, self.limits.identity)
            for item in batch
        ]
        # before recording, so the recording says which copies were redeliveries
        checked = [self.snapshots.check(self.redeliveries.check(item)) for item in checked]
        if self.recorder is not None:
            self.recorder.append(checked, [item.payload for item in batch])
        now = self.clock()
        self.lag_s = max(0.0, now - batch[0].received_at) if batch else 0.0
        for item in checked:
            self.received += 1
            try:
                self.fleet.add(item)
                self.view.message(item, self.fleet, now)
            except Exception as error:  # a case the checks missed must cost one message, never the console
                self.fleet.add(dataclasses.replace(item, outcome=UNHANDLED, message=None,
                                                   problem=printable(f"{type(error).__name__}: {error}")))
                if self._unhandled_logged < 10:
                    self._unhandled_logged += 1
                    log.exception("review: message on %s skipped", item.topic)
