"""Detection and status messages: built here, described by the JSON Schemas shipped beside this module.

The schemas (``detection.schema.json``, ``status.schema.json``) are the contract with whoever reads the topic;
tests validate every message against them. A message names its schema version in ``schema``. Payloads stay
under AWS IoT Core's 128 KB limit: if a frame has so many detections that the JSON would not fit, the lowest
scores are left out and ``truncated`` says so (with ``detections_total`` the count before).
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from importlib import resources
from typing import Any

from edge_runtime.detectors.base import DetectionResult
from edge_runtime.frames import Frame
from edge_runtime.snapshots import SNAPSHOT_SCHEMA

DETECTION_SCHEMA = "edge-runtime/detection/1"
STATUS_SCHEMA = "edge-runtime/status/1"
EVENT_SCHEMA = "edge-runtime/event/1"  # built by edge_runtime.events (publish.mode events)
MAX_PAYLOAD_BYTES = 128 * 1024 - 1024  # AWS IoT Core's limit, with room for topic and MQTT headers


def iso_utc(timestamp: float) -> str:
    """UTC, ISO 8601 with milliseconds: ``2026-11-21T14:00:00.123Z``."""
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def detection_message(
    *,
    device: str,
    session: str,
    source: str,
    frame: Frame,
    result: DetectionResult,
    model_name: str,
    model_version: str,
    published_at: float,
) -> dict[str, Any]:
    timings = {name: round(value, 3) for name, value in result.timings_ms.items()}
    timings["total"] = round(sum(result.timings_ms.values()), 3)
    detections = [detection.to_dict() for detection in result.detections]
    message: dict[str, Any] = {
        "schema": DETECTION_SCHEMA,
        "device": device,
        "session": session,
        "source": source,
        "seq": frame.seq,
        "captured_at": iso_utc(frame.captured_at),
        "published_at": iso_utc(published_at),
        "model": {"name": model_name, "version": model_version},
        "timings_ms": timings,
        "image": {"width": result.width, "height": result.height},
        "detections": detections,
        "truncated": False,
    }
    return fit_payload(message)


def fit_payload(message: dict[str, Any], limit: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """``message`` with its lowest-scoring detections left out until its JSON is at most ``limit`` bytes."""
    size = len(encode(message))
    if size <= limit:
        return message
    detections = message["detections"]
    fitted = dict(message, truncated=True, detections_total=len(detections))
    per_detection = max(1, (size - len(encode(dict(fitted, detections=[])))) // max(1, len(detections)))
    keep = max(0, (limit - len(encode(dict(fitted, detections=[])))) // per_detection)
    while keep >= 0:
        fitted["detections"] = detections[:keep]
        if len(encode(fitted)) <= limit:
            return fitted
        keep -= 1
    return fitted


def status_message(*, device: str, session: str, state: str, at: float, **fields: Any) -> dict[str, Any]:
    """A status message; ``fields`` are the health figures (see status.schema.json), absent in a last will."""
    return {"schema": STATUS_SCHEMA, "device": device, "session": session, "state": state, "at": iso_utc(at), **fields}


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema shipped as package data: ``detection``, ``status``, ``snapshot`` or ``event``."""
    text = resources.files("edge_runtime").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_message(message: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``message`` follows the schema its ``schema`` field names."""
    import jsonschema  # type: ignore[import-untyped]

    names = {STATUS_SCHEMA: "status", SNAPSHOT_SCHEMA: "snapshot", EVENT_SCHEMA: "event"}
    name = names.get(str(message.get("schema")), "detection")
    jsonschema.validate(message, load_schema(name), format_checker=jsonschema.FormatChecker())
