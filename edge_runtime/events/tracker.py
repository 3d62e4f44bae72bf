"""A multi-object tracker per source: IoU association against a constant-velocity prediction, two stages.

Why this and not a Kalman filter: the detector gives boxes at a few frames per second from a fixed camera, and what
an operator needs is one id per object while it stays, not a smooth trajectory. Each track keeps its last box and a
velocity (normalised units per second, smoothed); at a new frame it is predicted forward by the elapsed time, and
detections join tracks greedily by descending IoU with the prediction (ByteTrack's two stages: confident detections
first, then the weak ones may only extend tracks that exist, never start one). A track is *confirmed* after
``min_hits`` detections and *ends* once unseen for ``max_age_s``; a tentative track that misses that long vanishes
without a word. The label is the score-weighted vote of every detection the track took, so one odd frame does not
flip it.

Pure: :meth:`Tracker.step` takes boxes and a time and returns what happened; nothing here reads a clock or an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from edge_runtime.events.config import EventsConfig

Box = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax, normalised to the image
VELOCITY_SMOOTHING = 0.5  # weight of the newest measured velocity
MAX_PREDICT_S = 2.0  # never extrapolate a box further than this: a long gap is not straight-line motion


@dataclass(frozen=True)
class Observation:
    """One detection as the tracker sees it; ``ref`` is carried through untouched (the caller's detection)."""

    label: str
    class_id: int
    score: float
    box: Box
    ref: Any = None


@dataclass
class Track:
    """One object followed across frames."""

    track_id: int
    first_seen: float
    last_seen: float
    box: Box
    last: Observation
    velocity: tuple[float, float] = (0.0, 0.0)
    hits: int = 1
    confirmed: bool = False
    best: Optional[Observation] = None
    best_at: float = 0.0
    votes: dict[tuple[str, int], float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self._winner()[0]

    @property
    def class_id(self) -> int:
        return self._winner()[1]

    def _winner(self) -> tuple[str, int]:
        return max(self.votes.items(), key=lambda item: (item[1], item[0]))[0]

    def predict(self, at: float) -> Box:
        """The box moved on by the velocity for the time since it was last seen (bounded)."""
        dt = min(max(0.0, at - self.last_seen), MAX_PREDICT_S)
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        return (self.box[0] + dx, self.box[1] + dy, self.box[2] + dx, self.box[3] + dy)

    def take(self, observation: Observation, at: float) -> None:
        dt = at - self.last_seen
        if dt > 0:
            (cx0, cy0), (cx1, cy1) = center(self.box), center(observation.box)
            measured = ((cx1 - cx0) / dt, (cy1 - cy0) / dt)
            w = VELOCITY_SMOOTHING if self.hits > 1 else 1.0
            self.velocity = tuple(w * m + (1 - w) * v for m, v in zip(measured, self.velocity))  # type: ignore[assignment]
        self.box = observation.box
        self.last = observation
        self.last_seen = at
        self.hits += 1
        self._vote(observation, at)

    def _vote(self, observation: Observation, at: float) -> None:
        key = (observation.label, observation.class_id)
        self.votes[key] = self.votes.get(key, 0.0) + observation.score
        if self.best is None or observation.score > self.best.score:
            self.best, self.best_at = observation, at


@dataclass
class StepResult:
    """What one frame did: tracks confirmed now, tracks that took a detection (confirmed ones), tracks ended."""

    confirmed: list[Track] = field(default_factory=list)
    seen: list[Track] = field(default_factory=list)
    ended: list[Track] = field(default_factory=list)


def center(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0 for empty or disjoint ones."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_match(
    predicted: Sequence[Box], boxes: Sequence[Box], threshold: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pairs (track index, box index) by descending IoU at or above ``threshold``; then the unmatched of each."""
    pairs = sorted(
        ((iou(p, b), t, d) for t, p in enumerate(predicted) for d, b in enumerate(boxes)),
        key=lambda item: -item[0],
    )
    used_t: set[int] = set()
    used_d: set[int] = set()
    matches = []
    for overlap, t, d in pairs:
        if overlap < threshold:
            break
        if t not in used_t and d not in used_d:
            used_t.add(t)
            used_d.add(d)
            matches.append((t, d))
    return (
        matches,
        [t for t in range(len(predicted)) if t not in used_t],
        [d for d in range(len(boxes)) if d not in used_d],
    )


class Tracker:
    """The tracks of one source. Not thread-safe: the pipeline calls it in frame order from one turn at a time."""

    def __init__(self, config: EventsConfig) -> None:
        self.config = config
        self.tracks: list[Track] = []
        self._next_id = 1

    def step(self, observations: Sequence[Observation], at: float) -> StepResult:
        """Associate this frame's detections (taken at ``at`` seconds) with the tracks, start and end tracks."""
        result = StepResult()
        high = [o for o in observations if o.score >= self.config.high_score]
        low = [o for o in observations if o.score < self.config.high_score]
        free = list(range(len(self.tracks)))
        for stage, batch in enumerate((high, low)):
            candidates = [self.tracks[i] for i in free]
            matches, left, unmatched = greedy_match(
                [t.predict(at) for t in candidates], [o.box for o in batch], self.config.iou_threshold
            )
            for t, d in matches:
                track = candidates[t]
                track.take(batch[d], at)
                if track.confirmed:
                    result.seen.append(track)
                elif track.hits >= self.config.min_hits:
                    track.confirmed = True
                    result.confirmed.append(track)
            free = [free[i] for i in left]
            if stage == 0:
                for d in unmatched:  # only confident detections start a track
                    self._start(batch[d], at, result)
        for track in list(self.tracks):
            if at - track.last_seen > self.config.max_age_s:
                self.tracks.remove(track)
                if track.confirmed:
                    result.ended.append(track)
        return result

    def _start(self, observation: Observation, at: float, result: StepResult) -> None:
        track = Track(self._next_id, at, at, observation.box, observation)
        track._vote(observation, at)
        self._next_id += 1
        self.tracks.append(track)
        if self.config.min_hits <= 1:
            track.confirmed = True
            result.confirmed.append(track)

    def finish(self) -> list[Track]:
        """Every confirmed track still open (the stream stops): they end now; tentative ones are dropped."""
        ended = [track for track in self.tracks if track.confirmed]
        self.tracks = []
        return ended
