"""One detector shared by every source: ``workers`` inference threads take frames round-robin over the Pipelines.

Fair by construction: each take starts looking at the source after the one served last, and takes that source's
oldest waiting frame (its queue keeps only the newest ``queue_size``), so a fast camera cannot starve a slow one;
each source gets an equal share of the detector when all have frames, and a source without frames leaves its share
to the others. The threads wait on one :class:`~edge_runtime.frames.Doorbell` that every queue rings, bounded by a
poll, so the stop event is always seen. ``inference.interval_s`` spaces takes across all threads and sources.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Callable, Optional

from edge_runtime.detectors.base import Detector
from edge_runtime.frames import Doorbell, Frame
from edge_runtime.pipeline import POLL_S, Pipeline

log = logging.getLogger(__name__)


class SharedDetector:
    """The inference threads; ``finished`` is set when the last one ends (stopped, failed, or every file done)."""

    def __init__(
        self,
        detector: Detector,
        pipelines: list[Pipeline],
        stop: threading.Event,
        doorbell: Doorbell,
        workers: int = 1,
        inference_interval_s: float = 0.0,
    ) -> None:
        self.detector = detector
        self.pipelines = pipelines
        self.stop_event = stop
        self.doorbell = doorbell
        self.workers = workers
        self.inference_interval_s = inference_interval_s
        self.failed = False
        self.finished = threading.Event()
        self._next = 0  # the pipeline the next take looks at first
        self._last_take = float("-inf")
        self._take_lock = threading.Lock()
        self._running = workers
        self._running_lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.workers):
            name = "inference" if self.workers == 1 else f"inference-{index + 1}"
            thread = threading.Thread(target=self._loop, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def _loop(self) -> None:
        try:
            while not self.stop_event.is_set():
                taken = self._take()
                if taken is None:
                    if all(pipeline.exhausted for pipeline in self.pipelines):
                        break  # every source is a file that has ended, and everything it gave is processed
                    continue
                pipeline, ticket, frame = taken
                step: Optional[Callable[[], None]] = None
                try:
                    result = self.detector.detect(frame.image)
                    step = functools.partial(pipeline.handle, frame, result)
                finally:  # a failed detection still ends its ticket's turn, or the source's later frames would wait
                    pipeline.order.deliver(ticket, step, lambda: self.failed, self.workers)
        except Exception:
            log.exception("inference thread failed")
            self.failed = True
        finally:
            with self._running_lock:
                self._running -= 1
                last = self._running == 0
            if last or self.failed:
                self.stop_event.set()
            if last:
                self.finished.set()

    def _take(self) -> tuple[Pipeline, int, Frame] | None:
        """The next source's oldest frame (round-robin), waiting at most a poll; None when none came."""
        seen = self.doorbell.generation
        with self._take_lock:
            if self.inference_interval_s > 0:
                wait = self._last_take + self.inference_interval_s - time.monotonic()
                if wait > 0:
                    self.stop_event.wait(min(wait, POLL_S))
                    return None  # back to the loop, which notices a stop, then here again
            count = len(self.pipelines)
            for step in range(count):
                index = (self._next + step) % count
                taken = self.pipelines[index].take()
                if taken is not None:
                    self._next = (index + 1) % count
                    self._last_take = time.monotonic()
                    return self.pipelines[index], taken[0], taken[1]
        self.doorbell.wait(seen, POLL_S)
        return None

    def join(self, deadline: float, clock: Callable[[], float] = time.monotonic) -> bool:
        """Wait for the threads until the monotonic ``deadline`` (each gets half of what is left)."""
        clean = True
        for thread in self.threads:
            thread.join(max(0.0, deadline - clock()) * 0.5)
            clean = clean and not thread.is_alive()
        return clean
