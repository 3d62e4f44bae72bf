"""``events`` section of the daemon config: the tracker and the event builder (``publish.mode events``).

Times are seconds of capture time, not frames, so one setting means the same at 2 fps and at 30 fps.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EventsConfig(BaseModel):
    """How objects are tracked and when an event message goes out (used only with ``publish.mode events``)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    iou_threshold: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="least overlap of a detection with a track's predicted box to join it"
    )
    high_score: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="detections at or above this are matched first; lower ones only extend tracks (ByteTrack)",
    )
    min_hits: int = Field(default=3, ge=1, le=100, description="detections before a track is confirmed (new)")
    max_age_s: float = Field(
        default=1.0, gt=0.0, le=600.0, description="a track unseen this long has left (end); also bounds a gap"
    )
    score_band: float = Field(
        default=0.1, gt=0.0, le=1.0, description="an update when the best score enters a higher band this wide"
    )
    move_threshold: float = Field(
        default=0.15,
        gt=0.0,
        le=2.0,
        description="an update when the box centre moved this far (fraction of the image diagonal) since the last"
        " message about the object",
    )
    min_update_interval_s: float = Field(
        default=10.0, ge=0.0, le=86400.0, description="at most one update per event this often (pending changes wait)"
    )
