"""Per-engine settings sections of ``model`` (``model.openvino``, ``model.auto``), kept beside the engines.

Each engine that has settings of its own gets one section named after it; :mod:`edge_runtime.config` only mounts
them. Pydantic only, so the configuration loads without any engine installed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge_runtime.detectors.registry import PRECISIONS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class OpenVinoSettings(_Strict):
    streams: int = Field(
        default=0, ge=0, le=64,
        description="inferences the compiled model runs at once (the daemon runs as many inference threads); 0:"
        " OpenVINO's THROUGHPUT hint picks for this CPU",
    )  # fmt: skip
    cache: bool = Field(default=True, description="keep the compiled model in state_dir/openvino-cache (fast start)")


class AutoSettings(_Strict):
    measure: bool = Field(
        default=True,
        description="backend auto: measure every installed engine x precision on this model (once; the result is"
        " cached in state_dir) and run the fastest that passes the accuracy gate; false: onnxruntime fp32",
    )
    budget_s: float = Field(default=30.0, gt=0.0, le=600.0, description="backend auto: the measurement's time bound")
    precisions: tuple[Literal["fp32", "bf16", "fp16", "int8"], ...] = Field(
        default=PRECISIONS,  # type: ignore[arg-type]
        description="backend auto: the precisions it may measure (reduced ones only where they pass the gate)",
    )
    score_tolerance: float = Field(
        default=0.02, gt=0.0, le=0.5, description="accuracy gate: largest score difference from the fp32 reference"
    )
    box_tolerance: float = Field(
        default=0.01, gt=0.0, le=0.5,
        description="accuracy gate: largest difference of a normalised box coordinate from the fp32 reference",
    )  # fmt: skip
    max_map_drop: float = Field(
        default=0.01, ge=0.0, le=1.0,
        description="accuracy gate for int8: the largest held-out mAP drop from fp32 that evaluate --record wrote",
    )  # fmt: skip
