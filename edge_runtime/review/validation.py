"""Turn a raw MQTT payload into a checked message, or a rejection with a reason that the review counts.

A reviewer reads what any device (or anything else with publish rights) put on a topic, so nothing here may
raise: a payload is either ``valid`` or rejected as ``oversize`` (checked before parsing, so a 10 MB payload
costs a length check, not a JSON parse), ``malformed`` (not a JSON object), ``unknown_schema`` (a ``schema``
value this build does not know, e.g. a newer daemon's ``edge-runtime/detection/2``) or ``invalid`` (a known
schema whose JSON Schema check fails). The schema ids come from the committed schema files themselves, so the
files stay the one definition of the contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Optional

MAX_PAYLOAD_BYTES = 256 * 1024  # twice what the daemon ever sends (it keeps payloads under 128 KB); the one default
REJECTIONS = ("oversize", "malformed", "unknown_schema", "invalid")


@dataclass(frozen=True)
class Checked:
    """One received payload after checking. ``message`` is set only when ``outcome`` is ``valid``."""

    topic: str
    received_at: float  # wall-clock seconds (epoch), as the reviewer received it
    size: int
    outcome: str  # "valid", one of REJECTIONS, or "duplicate" (a redelivery, see review.redelivery)
    kind: Optional[str]  # "detection", "status", "snapshot", or None when unknown
    device: Optional[str]
    schema: Optional[str]
    message: Optional[dict[str, Any]]
    problem: str = ""

    @property
    def valid(self) -> bool:
        return self.outcome == "valid"


@cache
def known_schemas() -> dict[str, str]:
    """``{schema id: kind}`` read from the ``const`` of each committed schema file's ``schema`` property."""
    from edge_runtime.messages import load_schema
    from edge_runtime.publishers.base import KINDS  # the kinds a device publishes, each with its schema file

    kinds = (*KINDS, "event")  # event messages (publish.mode events) travel as kind detection, on its topic
    return {str(load_schema(kind)["properties"]["schema"]["const"]): kind for kind in kinds}


@cache
def _validator(kind: str) -> Any:
    import jsonschema  # type: ignore[import-untyped]

    from edge_runtime.messages import load_schema

    document = load_schema(kind)
    cls = jsonschema.validators.validator_for(document)
    return cls(document, format_checker=jsonschema.FormatChecker())


def oversize(topic: str, size: int, received_at: float, max_bytes: int) -> Checked:
    """The rejection of a payload too big to parse (the subscriber hands over only its size)."""
    return Checked(topic, received_at, size, "oversize", None, None, None, None, f"{size} bytes > {max_bytes}")


def check(topic: str, payload: bytes, received_at: float, max_bytes: int = MAX_PAYLOAD_BYTES) -> Checked:
    """Classify ``payload``; never raises."""
    size = len(payload)
    if size > max_bytes:
        return oversize(topic, size, received_at, max_bytes)
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return Checked(topic, received_at, size, "malformed", None, None, None, None, f"not JSON ({error})"[:200])
    if not isinstance(message, dict):
        problem = f"not a JSON object (got {type(message).__name__})"
        return Checked(topic, received_at, size, "malformed", None, None, None, None, problem)
    device = message.get("device") if isinstance(message.get("device"), str) else None
    schema = message.get("schema") if isinstance(message.get("schema"), str) else None
    kind = known_schemas().get(schema or "")
    if kind is None:
        problem = f"unknown schema {message.get('schema')!r}"[:200]
        return Checked(topic, received_at, size, "unknown_schema", None, device, schema, None, problem)
    failure = next(iter(_validator(kind).iter_errors(message)), None)
    if failure is not None:
        where = "/".join(str(part) for part in failure.absolute_path) or "(top level)"
        problem = f"{where}: {failure.message}"[:200]
        return Checked(topic, received_at, size, "invalid", kind, device, schema, None, problem)
    return Checked(topic, received_at, size, "valid", kind, device, schema, message)
