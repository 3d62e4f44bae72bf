"""The ``samples`` section of the daemon config: which frames go back to Ground Truth, and where (off by default).

Defined here so config.py only references it; every field has bounds and help, like the other sections.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SamplesConfig(BaseModel):
    """``samples``: keep frames the model is unsure of, spool them on disk, upload them to S3."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    enabled: bool = Field(default=False, description="sample frames for labeling (needs bucket)")
    bucket: Optional[str] = Field(default=None, min_length=3, max_length=63, description="S3 bucket to upload to")
    prefix: str = Field(default="samples", max_length=512, description="key prefix: PREFIX/{thing}/{date}/...")
    region: Optional[str] = Field(default=None, description="the bucket's region (default: AWS_REGION)")
    endpoint_url: Optional[str] = Field(
        default=None, description="an S3-compatible endpoint (path-style), e.g. http://127.0.0.1:9000; default AWS"
    )
    uncertain_min: Optional[float] = Field(
        default=0.3, ge=0.0, le=1.0, description="sample a frame with a detection scoring in [uncertain_min, "
        "uncertain_max] (none: no uncertainty policy)"
    )
    uncertain_max: float = Field(default=0.6, ge=0.0, le=1.0, description="upper end of the uncertainty band")
    rare_share: Optional[float] = Field(
        default=0.05, gt=0.0, le=1.0, description="sample a frame with a class whose share of the detections seen "
        "so far is below this (none: off)"
    )
    rare_after: int = Field(default=50, ge=1, le=1_000_000, description="detections seen before shares count")
    disagreement: bool = Field(
        default=True, description="sample a frame whose labels differ from the previous frame of its source"
    )
    random_one_in: Optional[int] = Field(
        default=None, ge=1, le=1_000_000, description="also sample 1 frame in N at random (none: off)"
    )
    max_per_hour: int = Field(default=30, ge=0, le=100_000, description="at most this many samples per hour")
    max_per_day: int = Field(default=300, ge=0, le=1_000_000, description="at most this many samples per day")
    jpeg_quality: int = Field(default=95, ge=10, le=100, description="JPEG quality of the full-resolution frame")
    spool_dir: Optional[str] = Field(default=None, description="the spool folder (default: state_dir/samples)")
    spool_max_files: int = Field(default=500, ge=1, le=1_000_000, description="samples kept while offline")
    spool_max_bytes: int = Field(
        default=500_000_000, ge=100_000, le=1_000_000_000_000, description="bytes kept while offline"
    )
    upload_timeout_s: float = Field(default=30.0, gt=0.0, le=600.0, description="one upload's time bound")
    backoff_initial_s: float = Field(default=1.0, gt=0.0, le=600.0, description="first wait after a failed upload")
    backoff_max_s: float = Field(default=300.0, gt=0.0, le=86400.0, description="longest wait between attempts")

    @model_validator(mode="after")
    def _consistent(self) -> SamplesConfig:
        if self.enabled and not self.bucket:
            raise ValueError("bucket is required when samples.enabled is true")
        if self.uncertain_min is not None and self.uncertain_min > self.uncertain_max:
            raise ValueError(f"uncertain_min must not be above uncertain_max {self.uncertain_max} "
                             f"(got {self.uncertain_min})")
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(f"backoff_initial_s must not be above backoff_max_s (got {self.backoff_initial_s})")
        return self
