"""Frames and the bounded queue between capture and the detector, where the newest frame wins.

A live camera produces frames whether or not the detector keeps up; queueing them all would grow memory and
latency without bound, so when the queue is full the oldest waiting frame is dropped and counted (the status
message reports it). A file has no deadline, so its capture waits for room instead (:meth:`put_wait`) and every
frame of the file is processed.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # HxWx3 BGR, as OpenCV decodes
    seq: int  # per source and daemon run, counting from 1 across reconnects
    captured_at: float  # time.time() when the frame was read
    source: str = ""  # the id of the source it came from (source.id, default its uri)


class Doorbell:
    """Rung by every frame queue on a put, so the inference threads shared by several sources wait on one thing.

    ``generation`` is read before looking at the queues; :meth:`wait` returns at once if a put came since, so a
    frame put between the look and the wait is never left waiting a poll.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0

    def ring(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            if self.generation == seen:
                self._cond.wait(timeout)


class LatestQueue(Generic[T]):
    """A bounded FIFO whose :meth:`put` drops the oldest item when full; every wait takes a timeout."""

    def __init__(self, maxsize: int, doorbell: Doorbell | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.doorbell = doorbell
        self._items: collections.deque[T] = collections.deque()
        self._lock = threading.Condition()
        self.dropped = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def put(self, item: T) -> bool:
        """Add ``item``; if the queue was full the oldest item is dropped (counted) and True returned."""
        with self._lock:
            dropped = False
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
                dropped = True
            self._items.append(item)
            self._lock.notify_all()
        if self.doorbell is not None:
            self.doorbell.ring()
        return dropped

    def put_wait(self, item: T, stop: threading.Event, poll_s: float = 0.1) -> bool:
        """Add ``item`` once there is room; False (item not added) if ``stop`` is set first."""
        with self._lock:
            while len(self._items) >= self.maxsize:
                if stop.is_set():
                    return False
                self._lock.wait(poll_s)
            self._items.append(item)
            self._lock.notify_all()
        if self.doorbell is not None:
            self.doorbell.ring()
        return True

    def get_nowait(self) -> T | None:
        """The oldest item, or None when empty."""
        with self._lock:
            if not self._items:
                return None
            item = self._items.popleft()
            self._lock.notify_all()
            return item

    def get(self, timeout: float) -> T:
        """The oldest item, waiting at most ``timeout`` seconds; raises :class:`queue.Empty` otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._items:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise queue.Empty
                self._lock.wait(remaining)
            item = self._items.popleft()
            self._lock.notify_all()
            return item

    def clear(self) -> int:
        """Drop everything waiting (counted as dropped); returns how many."""
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self.dropped += count
            self._lock.notify_all()
            return count
