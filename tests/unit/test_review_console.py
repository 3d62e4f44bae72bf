"""The web console with the in-repo fakes: a replayed subscription, the live view, the Starlette app (TestClient).

Literal messages go through the real review loop (check, redeliveries, snapshot matching, fleet, live view), so
what the API answers is what the loop made of them: degraded reasons, snapshots paired with their boxes, and
malformed, oversize or orphan snapshots counted and skipped.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import warnings
from typing import Any

import numpy as np
import pytest

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 for its TestClient; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from edge_runtime.errors import ReviewError
from edge_runtime.review.fleet import Fleet
from edge_runtime.review.guard import COOKIE
from edge_runtime.review.live import LiveView, chart
from edge_runtime.review.serve import Listen, check_listen, is_loopback
from edge_runtime.review.session import Limits, ReviewSession
from edge_runtime.review.snapshots import SnapshotMatcher
from edge_runtime.review.subscriber import ListSubscriber
from edge_runtime.review.view import View, table
from edge_runtime.review.web import create_app
from edge_runtime.snapshots import SnapshotConfig, fit_snapshot

T0 = 1_800_000_000.0
TOKEN = "0123456789abcdef-token"


def detection(device: str, seq: int, labels: list[str], session: str = "s1") -> dict[str, Any]:
    return {
        "schema": "edge-runtime/detection/1", "device": device, "session": session, "source": "v.avi", "seq": seq,
        "captured_at": "2027-01-15T08:00:00.000Z", "published_at": "2027-01-15T08:00:00.010Z",
        "model": {"name": "m", "version": "1"},
        "timings_ms": {"preprocess": 1.0, "inference": 12.5, "postprocess": 0.5, "total": 14.0},
        "image": {"width": 64, "height": 48},
        "detections": [{"label": label, "class_id": 0, "score": 0.9, "box": [6.4, 4.8, 32.0, 24.0],
                        "box_normalized": [0.1, 0.1, 0.5, 0.5]} for label in labels],
        "truncated": False,
    }  # fmt: skip


def status(device: str, state: str, **fields: Any) -> dict[str, Any]:
    return {"schema": "edge-runtime/status/1", "device": device, "session": "s1", "state": state,
            "at": "2027-01-15T08:00:00.000Z", **fields}  # fmt: skip


DEGRADED = status(
    "cam-2", "degraded", fps_out=4.0, inference_ms={"p50": 20.0, "p95": 31.5},
    outbox={"depth": 42, "bytes": 9000, "dropped": 0},
    problems=[{"part": "mqtt", "reason": "TLS handshake failed: certificate verify failed",
               "since": "2027-01-15T07:59:30.000Z"}],
)  # fmt: skip


def snapshot_of(message: dict[str, Any]) -> dict[str, Any]:
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    snap = fit_snapshot(image, message, SnapshotConfig(enabled=True))
    assert snap is not None
    return snap


def raw(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def replay(messages: list[tuple[str, bytes]], max_bytes: int = 200_000) -> tuple[LiveView, ReviewSession]:
    clock = iter(T0 + i * 0.1 for i in range(10_000))
    matcher = SnapshotMatcher()
    live = LiveView(matcher, snapshots_per_device=2)
    session = ReviewSession(
        ListSubscriber(messages, clock=lambda: next(clock), max_bytes=max_bytes), Fleet(), live, threading.Event(),
        limits=Limits(max_messages=len(messages), max_bytes=max_bytes), clock=lambda: T0 + 5, snapshots=matcher,
    )  # fmt: skip
    session.run()
    return live, session


def fleet_messages() -> list[tuple[str, bytes]]:
    first = detection("cam-1", 1, ["box", "box"])
    bad_data = dict(snapshot_of(detection("cam-1", 2, ["box"])), data="not base64!")
    not_jpeg = dict(snapshot_of(first), data=base64.b64encode(b"GIF89a" + b"0" * 60).decode())
    not_jpeg["image"] = dict(not_jpeg["image"], bytes=66)
    return [
        ("edge/cam-1/status", raw(status("cam-1", "running", fps_out=9.5, inference_ms={"p50": 20.0, "p95": 30.0}))),
        ("edge/cam-2/status", raw(DEGRADED)),
        ("edge/cam-1/detections", raw(first)),
        ("edge/cam-1/snapshot", raw(snapshot_of(first))),
        ("edge/cam-1/detections", raw(detection("cam-1", 2, ["box"]))),
        ("edge/cam-1/snapshot", raw(bad_data)),  # bad_image (not base64)
        ("edge/cam-1/snapshot", raw(not_jpeg)),  # bad_image (not a JPEG)
        ("edge/cam-1/snapshot", raw(snapshot_of(detection("cam-1", 99, ["box"])))),  # unknown_detection
        ("edge/cam-1/snapshot", b"{" * 300_000),  # oversize
        ("edge/cam-1/snapshot", b"\xff\xd8 not json"),  # malformed
        ("edge/cam-1/snapshot", raw(dict(snapshot_of(first), seq="one"))),  # invalid
        ("edge/cam-2/detections", raw(detection("cam-2", 5, ["cat"]))),
    ]


def test_bad_snapshots_are_counted_and_skipped() -> None:
    live, session = replay(fleet_messages())
    fleet = live.fleet()
    assert fleet["summary"]["rejected"] == {"oversize": 1, "malformed": 1, "unknown_schema": 0, "invalid": 1,
                                            "bad_image": 2, "unknown_detection": 1, "duplicate": 0,
                                            "too_deep": 0, "bad_field": 0, "wrong_device": 0,
                                            "unhandled": 0}  # fmt: skip
    assert session.received == 12
    snaps = live.device("cam-1", T0 + 5)["snapshots"]  # type: ignore[index]
    assert [(s["seq"], len(s["detections"])) for s in snaps] == [(1, 2)]


def test_api_fleet_device_snapshot_and_filter() -> None:
    live, _ = replay(fleet_messages())
    client = TestClient(create_app(live, clock=lambda: T0 + 5))
    assert "edge-runtime console" in client.get("/").text
    rows = {row["device"]: row for row in client.get("/api/fleet").json()["devices"]}
    assert rows["cam-1"]["state"] == "online" and rows["cam-1"]["inference_p95"] == 30.0
    assert rows["cam-2"]["state"] == "degraded" and rows["cam-2"]["outbox_depth"] == 42
    assert rows["cam-2"]["problems"] == DEGRADED["problems"]
    device = client.get("/api/devices/cam-1").json()
    assert device["chart"]["counts"] == {"box": [0] * 29 + [3]}  # three boxes in the last of 30 slices
    (snap,) = device["snapshots"]
    assert snap["detections"][0]["box_normalized"] == [0.1, 0.1, 0.5, 0.5]
    jpeg = client.get("/" + snap["url"])
    assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content.startswith(b"\xff\xd8")
    assert len(jpeg.content) == snap["bytes"]
    assert client.get("/api/snapshots/999.jpg").status_code == 404
    assert client.get("/api/devices/nobody").status_code == 404
    found = client.get("/api/detections", params={"label": "cat"}).json()["detections"]
    assert [(d["device"], d["seq"]) for d in found] == [("cam-2", 5)]
    assert client.get("/api/detections", params={"device": "cam-1", "min_score": "0.95"}).json()["detections"] == []
    assert len(client.get("/api/detections", params={"device": "cam-1"}).json()["detections"]) == 3
    assert client.get("/api/detections", params={"since": "soon"}).status_code == 400


def test_event_stream_sends_the_fleet_then_ends_when_the_review_stops() -> None:
    live, _ = replay(fleet_messages())  # the session has ended: the live view is closed
    with TestClient(create_app(live)).stream("GET", "/api/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    events = [block for block in body.split("\n\n") if block.strip()]
    assert events[0].startswith("event: fleet\ndata: ") and events[-1].startswith("event: closed")
    document = json.loads(events[0].split("data: ", 1)[1])
    assert {row["device"] for row in document["devices"]} == {"cam-1", "cam-2"}


def test_older_snapshots_leave_the_ring() -> None:
    messages = []
    for seq in range(1, 5):
        message = detection("cam-1", seq, ["box"])
        messages += [("edge/cam-1/detections", raw(message)), ("edge/cam-1/snapshot", raw(snapshot_of(message)))]
    live, _ = replay(messages)
    assert [s["seq"] for s in live.device("cam-1", T0 + 5)["snapshots"]] == [4, 3]  # type: ignore[index]
    assert live.snapshot_jpeg(1) is None and live.snapshot_jpeg(4) is not None


def test_token_gate_header_cookie_and_link() -> None:
    live, _ = replay(fleet_messages()[:2])
    client = TestClient(create_app(live, token=TOKEN))
    refused = client.get("/api/fleet")
    assert refused.status_code == 401 and refused.text.count("\n") == 1
    assert client.get("/api/fleet", headers={"Authorization": "Bearer wrong-token-0123456"}).status_code == 401
    assert client.get("/api/fleet", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    link = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert link.status_code == 303 and link.headers["location"] == "/"  # the token leaves the address bar
    assert COOKIE in link.headers["set-cookie"] and "HttpOnly" in link.headers["set-cookie"]
    assert client.get("/api/fleet").status_code == 200  # the cookie now


@pytest.mark.parametrize(
    ("listen", "problem"),
    [
        (Listen("0.0.0.0"), "--bind 0.0.0.0: refused, a console off loopback needs --token"),
        (Listen("192.168.1.5"), "--bind 192.168.1.5: refused"),
        (Listen("console.example"), "--bind console.example: refused"),
        (Listen("0.0.0.0", token="short"), "--token: at least 16 characters (got 5)"),
        (Listen(https_cert="c.pem"), "--https-cert and --https-key go together"),
    ],
)
def test_listen_refusals(listen: Listen, problem: str) -> None:
    with pytest.raises(ReviewError, match="^" + re.escape(problem)):
        check_listen(listen)


def test_listen_accepted() -> None:
    for listen in (Listen(), Listen("::1"), Listen("localhost"), Listen("0.0.0.0", token=TOKEN),
                   Listen("10.0.0.2", https_cert="c", https_key="k", https_client_ca="ca")):  # fmt: skip
        check_listen(listen)
    assert is_loopback("127.0.0.2") and not is_loopback("10.0.0.1")


def test_terminal_table_shows_degraded_and_why() -> None:
    _live, session = replay(fleet_messages())
    lines = table(session.fleet.rows(T0 + 5), session.fleet, T0 + 5)
    (row,) = [line for line in lines if line.startswith("cam-2")]
    assert row.split()[1] == "degraded"
    reason = lines[lines.index(row) + 1]
    assert reason == "  ! mqtt: TLS handshake failed: certificate verify failed (since 07:59:30 UTC)"


def test_degraded_then_running_clears_the_reasons() -> None:
    recovered = status("cam-2", "running", fps_out=4.0)
    _live, session = replay([("edge/cam-2/status", raw(DEGRADED)), ("edge/cam-2/status", raw(recovered))])
    (row,) = session.fleet.rows(T0 + 5)
    assert (row.state, row.problems) == ("online", [])


def test_chart_buckets() -> None:
    from edge_runtime.review.live import Seen

    seen = [Seen(T0 + at, "d", label, 0.9, "s", 1) for at, label in ((0, "a"), (0.5, "a"), (9.9, "b"), (-1, "a"))]
    assert chart(seen, T0, T0 + 10, buckets=5)["counts"] == {"a": [3, 0, 0, 0, 0], "b": [0, 0, 0, 0, 1]}


def test_stop_on_signals_sets_the_event_and_restores_the_handler() -> None:
    import os
    import signal

    from edge_runtime.stop_signals import stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    with stop_on_signals(stop, "test"):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_restarted_console_shows_what_its_recording_holds(tmp_path) -> None:
    from edge_runtime.review.store import Recorder, read_rows

    db = tmp_path / "fleet.db"
    clock = iter(T0 + i * 0.1 for i in range(100))
    first = ReviewSession(ListSubscriber(fleet_messages(), clock=lambda: next(clock), max_bytes=200_000), Fleet(),
                          View(), threading.Event(), recorder=Recorder(db),
                          limits=Limits(max_messages=12, max_bytes=200_000))  # fmt: skip
    first.run()
    matcher = SnapshotMatcher()
    live = LiveView(matcher)
    again = ReviewSession(ListSubscriber([]), Fleet(), live, threading.Event(), clock=lambda: T0 + 5,
                          snapshots=matcher)  # fmt: skip
    assert again.replay(read_rows(db)) == 6  # the valid rows: 2 status, 3 detections, the one good snapshot
    rows = {row["device"]: row for row in live.fleet()["devices"]}
    assert rows["cam-2"]["state"] == "degraded" and rows["cam-1"]["state"] == "online"
    assert [s["seq"] for s in live.device("cam-1", T0 + 5)["snapshots"]] == [1]  # type: ignore[index]
    assert again.replay(read_rows(db), limit=2) == 2


def test_serve_refuses_a_public_bind_without_a_token(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from edge_runtime.cli import main

    monkeypatch.delenv("EDGE_RUNTIME_CONSOLE_TOKEN", raising=False)
    assert main(["review", "serve", "--bind", "0.0.0.0", "--mqtt-port", "1"]) == 2
    err = capsys.readouterr().err
    assert err == "edge-runtime: error: --bind 0.0.0.0: refused, a console off loopback needs --token (or" \
                  " EDGE_RUNTIME_CONSOLE_TOKEN) or --https-client-ca\n"  # fmt: skip


def test_a_device_lists_its_recent_events_newest_first() -> None:
    """The daemon's own event messages (EventStream): a blue box that ended, a yellow one still open; a redelivered
    copy changes nothing; past EVENTS_PER_DEVICE the oldest events leave."""
    from edge_runtime.review import live as live_module
    from tests.unit.test_review_events import events_of

    messages = [("edge/cam-1/detections", raw(m)) for m in events_of("cam-1", "front")]
    live, session = replay([*messages, messages[-1]])
    assert session.fleet.rejected["duplicate"] == 0  # events carry no seq: the copy is folded, not counted twice
    events = TestClient(create_app(live, clock=lambda: T0 + 5)).get("/api/devices/cam-1").json()["events"]
    assert [(e["source"], e["label"], e["ended"]) for e in events] == [("front", "yellow box", False),
                                                                        ("front", "blue box", True)]  # fmt: skip
    assert events[1]["reason"] and events[0]["first_seen"] < events[0]["last_seen"]
    many = [("edge/cam-1/detections", raw(dict(m, id=f"{m['id']}-{n}")))
            for n in range(live_module.EVENTS_PER_DEVICE) for m in events_of("cam-1", "front")[:1]]  # fmt: skip
    live, _session = replay([*messages, *many])
    events = live.device("cam-1", T0 + 5)["events"]  # type: ignore[index]
    assert len(events) == live_module.EVENTS_PER_DEVICE and "yellow box" not in {e["label"] for e in events}
