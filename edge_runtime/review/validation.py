"""Turn a raw MQTT payload into a checked message, or a rejection with a reason that the review counts.

A reviewer reads what any device (or anything else with publish rights) put on a topic, so nothing here may
raise: a payload is either ``valid`` or rejected as

- ``oversize``: checked before parsing, so a 10 MB payload costs a length check, not a JSON parse;
- ``malformed``: not a JSON object (including JSON the parser cannot hold: a 2 KB payload of ``[[[[...`` nests
  deeper than Python's recursion limit and used to stop the whole console with ``RecursionError``);
- ``too_deep``: a JSON object nested deeper than :data:`MAX_DEPTH` (no message of ours nests beyond 5);
- ``unknown_schema``: a ``schema`` value this build does not know, e.g. a newer daemon's ``edge-runtime/detection/2``;
- ``invalid``: a known schema whose JSON Schema check fails;
- ``bad_field``: a string the console would have to show or store (the device, the session, a label, ...) holds
  a NUL or another control character or a lone surrogate, or is longer than the daemon itself ever writes (a
  thing name is at most 128 characters): a NUL used to stop a PostgreSQL recording, a lone surrogate any recording,
  a 200 KB device name to push every column off-screen;
- ``wrong_device``: the payload's ``device`` is not the thing named in its topic (:class:`Identity`): a client
  with publish rights on ``edge/intruder/#`` cannot speak for ``cam-a``.

The schema ids come from the committed schema files themselves, so the files stay the one definition of the
contract. Messages are checked by fastjsonschema's compiled validators when it is installed (the ``console``
extra; ~25 µs a message, twenty times jsonschema's pace, which capped ingest near 2,000 msg/s), else by jsonschema;
most messages never reach them: :mod:`edge_runtime.review.fastpath` proves them valid and within bounds first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Optional

MAX_PAYLOAD_BYTES = 256 * 1024  # twice what the daemon ever sends (it keeps payloads under 128 KB); the one default
MAX_DEPTH = 16  # containers within containers; our messages nest at most 5 deep
MAX_NAME_CHARS = 128  # a thing name (the daemon's device.thing_name bound), a session, a label, a model name
MAX_TEXT_CHARS = 1024  # free text the daemon writes: a source URI, a degraded reason
REJECTIONS = ("oversize", "malformed", "unknown_schema", "invalid", "too_deep", "bad_field", "wrong_device")
# control characters, and lone UTF-16 surrogates (JSON's "\ud800" escape): no UTF-8 text holds one, so SQLite and
# PostgreSQL refuse to store it (a 40-byte message with one in its schema stopped the console)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMES = frozenset(("device", "session", "schema", "label", "name", "version", "part", "state"))


@dataclass(frozen=True)
class Checked:
    """One received payload after checking. ``message`` is set only when ``outcome`` is ``valid``."""

    topic: str
    received_at: float  # wall-clock seconds (epoch), as the reviewer received it
    size: int
    outcome: str  # "valid", one of REJECTIONS, or "duplicate" (a redelivery, see review.redelivery)
    kind: Optional[str]  # "detection", "status", "snapshot", or None when unknown
    device: Optional[str]  # always printable and at most MAX_NAME_CHARS (safe to store, show and index)
    schema: Optional[str]
    message: Optional[dict[str, Any]]
    problem: str = ""

    @property
    def valid(self) -> bool:
        return self.outcome == "valid"


def printable(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters with control characters escaped: safe in a log line, a page or a
    PostgreSQL TEXT column (which refuses NUL)."""
    cut = text[:limit]
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", cut) + ("…" if len(text) > limit else "")


@dataclass(frozen=True)
class Identity:
    """Where a message's thing is named in its topic, so the payload's ``device`` can be held to it.

    ``level`` None (the default) accepts the payload when its device is any one level of the topic: the daemon's
    templates (``edge/{thing_name}/detections``, ``ml/object-detection/{thing_name}/status``) put the thing name
    in a level of its own. A number picks that level exactly (1 is the first; counted after a ``$share/G/`` prefix
    never, since brokers deliver the plain topic). ``enabled`` False trusts the payload, for brokers or bridges
    that carry the identity elsewhere.
    """

    enabled: bool = True
    level: Optional[int] = None

    def problem(self, topic: str, device: str) -> Optional[str]:
        if not self.enabled:
            return None
        levels = topic.split("/")
        if self.level is None:
            if device in levels:
                return None
            return f"device {printable(device, 64)!r} is not named in the topic {printable(topic, 120)!r}"
        named = levels[self.level - 1] if 0 < self.level <= len(levels) else None
        if named == device:
            return None
        return f"device {printable(device, 64)!r} but topic level {self.level} is {printable(named or '', 64)!r}"

    @classmethod
    def parse(cls, text: str) -> Identity:
        """``--device-in-topic``: ``any`` (a level of its own), ``N`` (that level), ``off`` (trust the payload)."""
        if text == "any":
            return cls()
        if text == "off":
            return cls(enabled=False)
        if text.isdigit() and int(text) >= 1:
            return cls(level=int(text))
        raise ValueError(f"any, off or a topic level from 1 (got {text!r})")


@cache
def known_schemas() -> dict[str, str]:
    """``{schema id: kind}`` read from the ``const`` of each committed schema file's ``schema`` property."""
    from edge_runtime.messages import load_schema
    from edge_runtime.publishers.base import KINDS  # the kinds a device publishes, each with its schema file

    kinds = (*KINDS, "event")  # event messages (publish.mode events) travel as kind detection, on its topic
    return {str(load_schema(kind)["properties"]["schema"]["const"]): kind for kind in kinds}


@cache
def _validator(kind: str) -> Callable[[dict[str, Any]], Optional[str]]:
    """A function that returns None for a valid message of ``kind``, else one line saying where and why."""
    from edge_runtime.messages import load_schema

    document = load_schema(kind)
    try:
        import fastjsonschema
    except ImportError:
        return _slow_validator(document)
    # content* are annotations in JSON Schema 2020-12 (jsonschema ignores them) but fastjsonschema checks
    # base64: drop them so both give one verdict, and review.snapshots says "bad_image" with its reason
    text = json.dumps(document).replace('"contentEncoding": "base64"', '"$comment": "base64"')
    compiled = fastjsonschema.compile(json.loads(text))

    def fast(message: dict[str, Any]) -> Optional[str]:
        try:
            compiled(message)
        except fastjsonschema.JsonSchemaException as error:
            path = [str(part) for part in (getattr(error, "path", None) or [])[1:]]
            message_text = str(getattr(error, "message", error)).replace("data.", "", 1).replace("data ", "", 1)
            return f"{'/'.join(path) or '(top level)'}: {message_text}"
        return None

    return fast


@cache
def _proof(kind: str) -> Callable[[Any], bool]:
    """The fast path's proof for ``kind`` (:mod:`edge_runtime.review.fastpath`): True only when the checks below
    would pass the message; False sends it through them."""
    from edge_runtime.review.fastpath import prover

    return prover(kind)


def _slow_validator(document: dict[str, Any]) -> Callable[[dict[str, Any]], Optional[str]]:
    import jsonschema  # type: ignore[import-untyped]

    validator = jsonschema.validators.validator_for(document)(document, format_checker=jsonschema.FormatChecker())

    def slow(message: dict[str, Any]) -> Optional[str]:
        failure = next(iter(validator.iter_errors(message)), None)
        if failure is None:
            return None
        return f"{'/'.join(str(p) for p in failure.absolute_path) or '(top level)'}: {failure.message}"

    return slow


_LONG_STRING = re.compile(rb'"[^"]{%d,}' % (MAX_NAME_CHARS + 1))


def plainly_safe(payload: bytes) -> bool:
    """True when ``payload``'s raw bytes alone show that :func:`inspect` would find nothing: no backslash (so no
    escaped control character), no string run longer than any bound, fewer brackets than the depth limit. Three
    scans in C, ~3 µs, where the walk costs ~25 µs; most messages (a detection with a few boxes) qualify."""
    return (
        b"\\" not in payload
        and payload.count(b"{") + payload.count(b"[") <= MAX_DEPTH
        and _LONG_STRING.search(payload) is None
    )


def inspect(message: dict[str, Any], max_depth: int = MAX_DEPTH) -> Optional[tuple[str, str]]:
    """``(outcome, problem)`` for the first thing in ``message`` the console cannot hold safely, else None: nesting
    deeper than ``max_depth`` (``too_deep``), or a string with a control character or over its bound
    (``bad_field``). One iterative walk (no recursion, so no depth can stop it); ~10 µs for a detection."""
    stack: list[tuple[Any, str, int]] = [(message, "", 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, key, level = pop()
        if type(item) is str:
            if key == "data":  # a snapshot's base64 JPEG: bounded by its schema, checked by review.snapshots
                continue
            bound = MAX_NAME_CHARS if key in _NAMES else MAX_TEXT_CHARS
            if len(item) > bound:
                return "bad_field", f"{key}: {len(item)} characters > {bound}"
            if _CONTROL.search(item) is not None:
                found = _CONTROL.search(item)
                assert found is not None
                return "bad_field", f"{key}: control character {ord(found.group()):#04x}"
        elif type(item) is dict:
            if level > max_depth:
                return "too_deep", f"JSON nested deeper than {max_depth}"
            for child_key, child in item.items():
                push((child, child_key, level + 1))
        elif type(item) is list:
            if level > max_depth:
                return "too_deep", f"JSON nested deeper than {max_depth}"
            for child in item:
                push((child, key, level + 1))
    return None


def oversize(topic: str, size: int, received_at: float, max_bytes: int) -> Checked:
    """The rejection of a payload too big to parse (the subscriber hands over only its size)."""
    return Checked(
        printable(topic, 512), received_at, size, "oversize", None, None, None, None, f"{size} bytes > {max_bytes}"
    )


def check(
    topic: str,
    payload: bytes,
    received_at: float,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    identity: Identity = Identity(),
) -> Checked:
    """Classify ``payload``; never raises."""
    size = len(payload)
    topic = printable(topic, 512)  # MQTT forbids NUL in topics; a broker that lets one through must not stop us
    if size > max_bytes:
        return oversize(topic, size, received_at, max_bytes)

    def rejected(outcome: str, problem: str, device: Optional[str] = None, schema: Optional[str] = None) -> Checked:
        return Checked(topic, received_at, size, outcome, None, device, schema, None, printable(problem))

    try:
        message = json.loads(payload.decode("utf-8"))
    except RecursionError:
        return rejected("malformed", "not JSON (nested too deep to parse)")
    except (UnicodeDecodeError, ValueError) as error:
        return rejected("malformed", f"not JSON ({error})")
    if not isinstance(message, dict):
        return rejected("malformed", f"not a JSON object (got {type(message).__name__})")
    raw_schema = message.get("schema")
    kind = known_schemas().get(raw_schema) if type(raw_schema) is str else None
    if kind is not None and _proof(kind)(message):  # proven valid and within bounds (review.fastpath): ~10 µs
        raw_device = message["device"]  # proven a printable string of at most MAX_NAME_CHARS
        wrong = identity.problem(topic, raw_device)
        outcome = "valid" if wrong is None else "wrong_device"
        return Checked(topic, received_at, size, outcome, kind, raw_device, raw_schema,
                       message if wrong is None else None, wrong or "")  # fmt: skip
    # not proven: the full checks give the verdict and its words
    # before the schema check, so no validator walks a hostile structure; the walk is skipped when the raw bytes
    # prove it would find nothing (JSON strings hold control characters only as backslash escapes)
    unsafe = None if plainly_safe(payload) else inspect(message)
    if unsafe is not None:
        device = message.get("device")
        shown = printable(device, MAX_NAME_CHARS) if isinstance(device, str) and unsafe[1][:7] != "device:" else None
        return rejected(unsafe[0], unsafe[1], shown)
    raw_device = message.get("device")
    device = printable(raw_device, MAX_NAME_CHARS) if isinstance(raw_device, str) and raw_device else None
    schema = printable(raw_schema, MAX_NAME_CHARS) if isinstance(raw_schema, str) else None
    kind = known_schemas().get(raw_schema) if isinstance(raw_schema, str) else None
    if kind is None:
        return rejected("unknown_schema", f"unknown schema {printable(repr(raw_schema), 120)}", device, schema)
    try:
        failure = _validator(kind)(message)
    except RecursionError:
        failure = "nested too deep to check"
    if failure is not None:
        return Checked(topic, received_at, size, "invalid", kind, device, schema, None, printable(failure))
    assert device is not None  # every schema requires a non-empty device string
    wrong = identity.problem(topic, str(raw_device))
    if wrong is not None:
        return Checked(topic, received_at, size, "wrong_device", kind, device, schema, None, wrong)
    return Checked(topic, received_at, size, "valid", kind, device, schema, message)
