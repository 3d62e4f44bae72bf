"""Which frames to keep: pure decisions over one frame's detections, with caps on an injected monotonic clock.

Policies (each names itself in the sample's ``reasons``):

- ``uncertain``: a detection scores inside the band [uncertain_min, uncertain_max] (the model was unsure);
- ``rare``: a detected class makes up less than ``rare_share`` of the detections seen so far (after ``rare_after``);
- ``disagreement``: the labels differ from the previous frame of the same source (one frame sees what the next
  does not: at least one of the two is probably wrong);
- ``random``: 1 frame in N, so the labeled data is not only the model's hard cases.

Caps (per hour, per day) are sliding windows on the clock, so a burst cannot fill the spool or the labelers' queue.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

from edge_runtime.samples.config import SamplesConfig

HOUR_S = 3600.0
DAY_S = 86400.0


class Caps:
    """At most ``per_hour`` and ``per_day`` admissions in any sliding hour and day of ``clock``."""

    def __init__(self, per_hour: int, per_day: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_hour = per_hour
        self.per_day = per_day
        self.clock = clock
        self._times: collections.deque[float] = collections.deque()  # at most per_day entries

    def admit(self) -> bool:
        now = self.clock()
        while self._times and now - self._times[0] >= DAY_S:
            self._times.popleft()
        last_hour = sum(1 for t in reversed(self._times) if now - t < HOUR_S)
        if len(self._times) >= self.per_day or last_hour >= self.per_hour:
            return False
        self._times.append(now)
        return True


class Policy:
    """Decides per frame; keeps the per-source previous labels and the class counts. Not thread-safe: the sampler
    calls it under its lock."""

    def __init__(self, config: SamplesConfig, rng: Optional[random.Random] = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.seen: collections.Counter[str] = collections.Counter()
        self._previous: dict[str, tuple[str, ...]] = {}

    def reasons(self, source: str, detections: Sequence[dict[str, Any]]) -> list[str]:
        """The policies that want this frame (empty: not sampled). Updates the counts and the previous labels."""
        cfg = self.config
        labels = tuple(sorted(str(d["label"]) for d in detections))
        found: list[str] = []
        if cfg.uncertain_min is not None and any(
            cfg.uncertain_min <= float(d["score"]) <= cfg.uncertain_max for d in detections
        ):
            found.append("uncertain")
        total = sum(self.seen.values())
        if cfg.rare_share is not None and total >= cfg.rare_after and any(
            self.seen[label] / total < cfg.rare_share for label in set(labels)
        ):
            found.append("rare")
        self.seen.update(labels)
        previous = self._previous.get(source)
        self._previous[source] = labels
        if cfg.disagreement and previous is not None and set(previous) != set(labels):
            found.append("disagreement")
        if cfg.random_one_in is not None and self.rng.randrange(cfg.random_one_in) == 0:
            found.append("random")
        return found
