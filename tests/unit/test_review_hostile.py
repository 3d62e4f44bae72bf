"""What a hostile or broken publisher can send the console: each case is rejected with its reason, counted, and
recorded, and the loop keeps going (the issue's 2 KB RecursionError, NUL device, 200 KB name, impersonation)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime.review.fleet import Fleet
from edge_runtime.review.session import Limits, ReviewSession
from edge_runtime.review.store import Recorder, read_rows
from edge_runtime.review.subscriber import ListSubscriber
from edge_runtime.review.validation import MAX_DEPTH, Identity, check
from edge_runtime.review.view import View
from tests.unit.test_review import T0, detection, raw, running

GOOD = raw(detection("cam-a", 1, [("cat", 0.9)]))


def nested(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


HOSTILE: list[tuple[str, str, bytes]] = [
    ("malformed", "edge/cam-a/detections", b"[" * 2048),  # the 2 KB RecursionError
    ("malformed", "edge/cam-a/detections", b'{"a":' * 3000),  # unclosed, deeper than the parser goes
    ("too_deep", "edge/cam-a/detections", nested(MAX_DEPTH + 1)),
    ("bad_field", "edge/cam-a/detections", GOOD.replace(b'"cam-a"', b'"cam-a\\u0000"')),
    ("bad_field", "edge/cam-a/detections", GOOD.replace(b'"cat"', b'"c\\u001b[2Jat"')),  # a terminal escape
    ("bad_field", "edge/cam-a/detections", GOOD.replace(b'"cam-a"', b'"' + b"x" * 200_000 + b'"')),
    ("bad_field", "edge/cam-a/detections", GOOD.replace(b'"v.avi"', b'"' + b"u" * 5000 + b'"')),
    ("bad_field", "edge/cam-a/detections", GOOD.replace(b'"cat"', b'"c\\ud800at"')),  # a lone surrogate: not UTF-8
    ("bad_field", "edge/cam-a/status", b'{"schema": "x\\udfff", "device": "cam-a"}'),  # stopped the recording
    ("bad_field", "edge/cam-a/status", b'{"device": "cam-a", "\\ud800": "\\u0000"}'),  # in a key, named in the problem
    ("wrong_device", "edge/intruder/detections", GOOD),  # impersonation: cam-a's name on another thing's topic
    ("wrong_device", "edge/intruder/status", raw(dict(running("cam-a"), state="degraded"))),
]


@pytest.mark.parametrize(("outcome", "topic", "payload"), HOSTILE, ids=[f"{h[0]}-{i}" for i, h in enumerate(HOSTILE)])
def test_each_hostile_payload_is_rejected_with_its_reason(outcome: str, topic: str, payload: bytes) -> None:
    item = check(topic, payload, T0)
    assert item.outcome == outcome, item.problem
    assert item.message is None
    assert "\x00" not in item.problem and len(item.problem) <= 201
    assert item.device is None or (len(item.device) <= 128 and "\x00" not in item.device)


def test_a_nested_message_within_the_limit_is_only_a_schema_matter() -> None:
    assert check("edge/cam-a/detections", nested(MAX_DEPTH), T0).outcome == "unknown_schema"


def test_identity_modes() -> None:
    assert check("edge/cam-a/detections", GOOD, T0).valid
    assert check("ml/object-detection/cam-a/status", raw(running("cam-a")), T0).valid  # IoT Core's templates
    exact = Identity.parse("2")
    assert check("edge/cam-a/detections", GOOD, T0, identity=exact).valid
    assert check("cam-a/edge/detections", GOOD, T0, identity=exact).outcome == "wrong_device"
    assert check("edge/intruder/detections", GOOD, T0, identity=Identity.parse("off")).valid
    for wrong in ("0", "-1", "first", ""):
        with pytest.raises(ValueError, match="any, off or a topic level"):
            Identity.parse(wrong)


def test_a_nul_in_the_topic_is_escaped_not_stored() -> None:
    item = check("edge/cam-a\x00/detections", GOOD, T0)
    assert "\x00" not in item.topic and item.outcome == "wrong_device"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600) | st.recursive(st.none() | st.text(max_size=8), lambda c: st.lists(c, max_size=3)
                                             | st.dictionaries(st.text(max_size=4), c, max_size=3)).map(
    lambda v: json.dumps(v).encode()))
def test_check_never_raises(payload: bytes) -> None:
    assert check("edge/cam-a/detections", payload, T0).outcome  # any outcome, never an exception


def test_the_loop_records_counts_and_survives_every_hostile_message(tmp_path: Path) -> None:
    messages = [(topic, payload) for _outcome, topic, payload in HOSTILE] + [("edge/cam-a/detections", GOOD)]
    db = tmp_path / "r.db"
    fleet = Fleet()
    session = ReviewSession(ListSubscriber(messages, clock=lambda: T0, max_bytes=256 * 1024), fleet, View(),
                            threading.Event(), recorder=Recorder(db), limits=Limits(max_messages=len(messages)),
                            clock=lambda: T0)  # fmt: skip
    assert session.run() == len(messages)
    rejected = {k: v for k, v in fleet.summary()["rejected"].items() if v}
    assert rejected == {"malformed": 2, "too_deep": 1, "bad_field": 7, "wrong_device": 2}
    (row,) = fleet.rows(T0)
    assert (row.device, row.state, row.messages) == ("cam-a", "online", 1)  # not degraded by the intruder
    outcomes = [r.outcome for r in read_rows(db)]
    assert len(outcomes) == len(messages) and outcomes[-1] == "valid"


class Exploding(View):
    def message(self, item: Any, fleet: Fleet, now: float) -> None:
        if item.valid and item.message["seq"] == 1:
            raise KeyError("a case no check foresaw")


def test_an_unforeseen_failure_costs_one_message_not_the_loop() -> None:
    second = raw(detection("cam-a", 2, [("cat", 0.9)]))
    fleet = Fleet()
    session = ReviewSession(ListSubscriber([("edge/cam-a/d", GOOD), ("edge/cam-a/d", second)], clock=lambda: T0),
                            fleet, Exploding(), threading.Event(), limits=Limits(max_messages=2), clock=lambda: T0)
    assert session.run() == 2
    assert fleet.summary()["rejected"]["unhandled"] == 1
    assert "KeyError" in fleet.summary()["problems"][-1]


def test_only_a_decodable_jpeg_of_the_stated_size_is_a_snapshot() -> None:
    import base64

    import cv2
    import numpy as np

    from edge_runtime.review.snapshots import jpeg_bytes, jpeg_size

    ok, encoded = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))
    real = encoded.tobytes()
    assert ok and jpeg_size(real) == (64, 48)

    def snapshot(data: bytes, width: int = 64, height: int = 48) -> dict[str, Any]:
        return {"data": base64.b64encode(data).decode(), "image": {"width": width, "height": height,
                                                                  "bytes": len(data)}}  # fmt: skip

    assert jpeg_bytes(snapshot(real)) == real
    fakes = {
        "not a JPEG": b"\xff\xd8\xff\xe0" + b"<script>alert(1)</script>" + b"\xff\xd9",  # the marker, then anything
        "no end-of-image": real[: len(real) // 2],
        "no frame header": b"\xff\xd8\xff\xda\x00\x02" + b"\x00" * 10 + b"\xff\xd9",
    }
    for why, data in fakes.items():
        with pytest.raises(ValueError, match="not a"):
            jpeg_bytes(snapshot(data))
        assert why
    with pytest.raises(ValueError, match="the JPEG is 64x48, image says 640x480"):
        jpeg_bytes(snapshot(real, 640, 480))
