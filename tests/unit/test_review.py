"""edge-runtime review: validation, fleet state, recording, report and the loop, with literal messages and times."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge_runtime.cli import main
from edge_runtime.config import MqttConfig
from edge_runtime.errors import ReviewError
from edge_runtime.messages import iso_utc
from edge_runtime.publishers.mqtt import build_mqtt5_client
from edge_runtime.review.fleet import Fleet
from edge_runtime.review.redelivery import Redeliveries
from edge_runtime.review.report import build_report, parse_since, render_text, write_png
from edge_runtime.review.session import Limits, ReviewSession
from edge_runtime.review.store import Recorder, read_rows
from edge_runtime.review.subscriber import ListSubscriber, MqttSubscriber
from edge_runtime.review.validation import check
from edge_runtime.review.view import CLEAR, JsonView, PlainView, TerminalView, View

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def detection(device: str, seq: int, labels: list[tuple[str, float]], session: str = "s1") -> dict[str, Any]:
    return {
        "schema": "edge-runtime/detection/1", "device": device, "session": session, "source": "v.avi", "seq": seq,
        "captured_at": "2027-01-15T08:00:00.000Z", "published_at": "2027-01-15T08:00:00.010Z",
        "model": {"name": "m", "version": "1"},
        "timings_ms": {"preprocess": 1.0, "inference": 12.5, "postprocess": 0.5, "total": 14.0},
        "image": {"width": 160, "height": 120},
        "detections": [
            {"label": label, "class_id": 0, "score": score, "box": [1, 2, 3, 4], "box_normalized": [0.1, 0.1, 0.2, 0.2]}
            for label, score in labels
        ],
        "truncated": False,
    }  # fmt: skip


def status(device: str, state: str, session: str = "s1", **fields: Any) -> dict[str, Any]:
    return {"schema": "edge-runtime/status/1", "device": device, "session": session, "state": state,
            "at": "2027-01-15T08:00:00.000Z", **fields}  # fmt: skip


def running(device: str, session: str = "s1") -> dict[str, Any]:
    return status(device, "running", session, fps_out=9.5, inference_ms={"p50": 20.0, "p95": 30.0})


def raw(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def checked(message: dict[str, Any] | bytes, at: float, topic: str = "") -> Any:
    """``check`` on the topic the daemon would use for the message's device (``edge/x/detections`` for bytes)."""
    device = "x" if isinstance(message, bytes) else message.get("device", "x")
    return check(topic or f"edge/{device}/detections", message if isinstance(message, bytes) else raw(message), at)


BAD = [
    b"{not json",
    raw(dict(detection("cam-1", 1, []), schema="edge-runtime/detection/2")),
    b"x" * (10 * 1024 * 1024),
    raw(dict(detection("cam-1", 1, []), seq=0)),
]


def test_check_classifies_every_rejection_without_raising():
    outcomes = [check("edge/a/status", p, T0).outcome for p in [*BAD, b"[1, 2]", b"\xff\xfe", raw(running("a"))]]
    assert outcomes == ["malformed", "unknown_schema", "oversize", "invalid", "malformed", "malformed", "valid"]
    assert check("t", BAD[2], T0).problem == f"{10 * 1024 * 1024} bytes > {256 * 1024}"
    assert "seq" in check("t", BAD[3], T0).problem


def test_fleet_rows_state_counts_and_latest():
    fleet = Fleet(window_s=10, stale_after_s=30)
    fleet.add(checked(running("cam-1"), T0))
    fleet.add(checked(detection("cam-1", 1, [("cat", 0.9), ("dog", 0.6)]), T0 + 1))
    fleet.add(checked(detection("cam-1", 2, [("cat", 0.8)]), T0 + 12))
    fleet.add(checked(detection("cam-2", 1, [("dog", 0.7)]), T0 + 12))
    for payload in BAD:
        fleet.add(checked(payload, T0 + 12))
    rows = {row.device: row for row in fleet.rows(now=T0 + 12)}
    one = rows["cam-1"]
    assert (one.state, one.status, one.fps, one.inference_ms) == ("online", "running", 9.5, 20.0)
    assert one.detections_per_class == {"cat": 1}  # the frame at T0+1 left the 10 s window
    assert one.latest == [("cat", 0.8)]
    assert (one.messages, one.rejected) == (3, 2)  # unknown schema and invalid named cam-1
    assert rows["cam-2"].inference_ms == 12.5  # no status yet: the detection's own timing
    assert fleet.summary()["rejected"] == {
        "oversize": 1, "malformed": 1, "unknown_schema": 1, "invalid": 1, "bad_image": 0, "unknown_detection": 0,
        "duplicate": 0, "too_deep": 0, "bad_field": 0, "wrong_device": 0, "unhandled": 0,
    }  # fmt: skip
    assert fleet.rows(now=T0 + 43)[0].state == "stale"


def test_window_counts_follow_the_window_in_bounded_memory():
    """Counts per class over the window, to one 1/60 slice of it, from running totals: a row costs the same after a
    long burst (a list of every detection, recounted each refresh, slowed the console as the burst went on)."""
    fleet = Fleet(window_s=60, stale_after_s=600)
    for index in range(12_000):  # 100 a second for 120 s, two labels each
        fleet.add(checked(detection("cam-1", index + 1, [("cat", 0.9), ("dog", 0.5)]), T0 + index / 100))
    (row,) = fleet.rows(now=T0 + 120)
    assert 6_000 <= row.detections_per_class["cat"] <= 6_100  # the last 60 s, plus at most one slice (1 s)
    assert row.detections_per_class["cat"] == row.detections_per_class["dog"]
    assert len(fleet._devices["cam-1"].slices) <= 61
    (row,) = fleet.rows(now=T0 + 500)
    assert row.detections_per_class == {}  # all left the window, no zero counts kept


def test_fleet_offline_by_stop_or_last_will_until_a_new_session():
    fleet = Fleet(stale_after_s=30)
    fleet.add(checked(running("cam-1"), T0))
    fleet.add(checked(status("cam-1", "offline"), T0 + 1))  # the broker's last will
    fleet.add(checked(detection("cam-1", 7, []), T0 + 2))  # the old session's outbox flushing late
    assert [(r.state, r.status) for r in fleet.rows(T0 + 2)] == [("offline", "offline")]
    fleet.add(checked(detection("cam-1", 1, [], session="s2"), T0 + 3))
    assert fleet.rows(T0 + 3)[0].state == "online"
    fleet.add(checked(status("cam-1", "stopped", session="s2"), T0 + 4))
    assert fleet.rows(T0 + 100)[0].state == "stopped"  # a clean stop (not the last will), not stale
    fleet.add(checked(running("cam-1", session="s3"), T0 + 101))
    assert fleet.rows(T0 + 101)[0].state == "online"


def test_recorder_appends_across_restarts_and_refuses_changes(tmp_path: Path):
    db = tmp_path / "r.db"
    first = Recorder(db)
    items = [checked(running("cam-1"), T0), checked(BAD[2], T0 + 1)]
    first.append(items, [raw(running("cam-1")), BAD[2]])
    rows = list(read_rows(db))  # readable while the recorder is open
    first.close()
    second = Recorder(db)
    second.append([checked(BAD[0], T0 + 2)], [BAD[0]])
    second.close()
    rows = list(read_rows(db))
    assert [(r.id, r.outcome, r.valid, r.kind, r.device) for r in rows] == [
        (1, "valid", True, "status", "cam-1"), (2, "oversize", False, None, None), (3, "malformed", False, None, None)
    ]  # fmt: skip
    assert rows[1].payload is None and rows[1].size == 10 * 1024 * 1024
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            connection.execute("DELETE FROM messages")
    (tmp_path / "other.db").write_bytes(b"not sqlite at all, just some bytes" * 10)
    with pytest.raises(ReviewError, match=r"other\.db"):
        Recorder(tmp_path / "other.db")


def stamped(message: dict[str, Any] | bytes, at: float) -> dict[str, Any] | bytes:
    """``message`` as a device sends it at ``at``: its own capture or report time (a last will keeps its own)."""
    if isinstance(message, bytes) or message.get("state") == "offline":
        return message
    key = "captured_at" if "captured_at" in message else "at"
    return {**message, key: iso_utc(at)}


def record(
    db: Path, timed: list[tuple[float, dict[str, Any] | bytes]], arrived: dict[int, float] | None = None
) -> None:
    """Record each message as received at its time, or at ``arrived[index]`` (a backlog delivered late)."""
    recorder = Recorder(db)
    timed = [((arrived or {}).get(index, at), stamped(message, at)) for index, (at, message) in enumerate(timed)]
    items = [checked(message, at) for at, message in timed]
    recorder.append(items, [m if isinstance(m, bytes) else raw(m) for _at, m in timed])
    recorder.close()


def test_report_counts_scores_and_gaps(tmp_path: Path):
    db = tmp_path / "r.db"
    record(db, [
        (T0, running("cam-1")),
        (T0 + 10, detection("cam-1", 1, [("cat", 0.95), ("dog", 0.55)])),
        (T0 + 3600, detection("cam-1", 2, [("cat", 0.65)])),
        (T0 + 3601, status("cam-1", "offline")),
        (T0 + 3700, running("cam-1", session="s2")),
        (T0 + 3900, detection("cam-1", 1, [("cat", 0.75)], session="s2")),
        (T0 + 5, detection("cam-2", 1, [("dog", 0.85)])),
        (T0 + 6, BAD[0]),
    ])  # fmt: skip
    report = build_report(db, gap_s=120).to_dict()
    assert (report["messages"], report["valid"], report["rejected"]["malformed"]) == (8, 7, 1)
    cam1 = report["devices"]["cam-1"]
    cat = cam1["classes"]["cat"]
    assert cat["count"] == 3
    assert cat["per_hour"] == {"2027-01-15T08:00Z": 1, "2027-01-15T09:00Z": 2}
    assert cat["scores"]["min"] == 0.65 and cat["scores"]["max"] == 0.95 and cat["scores"]["median"] == 0.75
    assert cat["scores"]["histogram"] == [0, 0, 0, 0, 0, 0, 1, 1, 0, 1]
    assert [(g["reason"], g["seconds"]) for g in cam1["gaps"]] == [
        ("silent", 3590.0), ("last will", 99.0), ("silent", 200.0)
    ]  # fmt: skip
    only = build_report(db, since=T0 + 3650, device="cam-1").to_dict()
    assert list(only["devices"]) == ["cam-1"] and only["devices"]["cam-1"]["classes"]["cat"]["count"] == 1
    assert "cam-2: 1 detection and 0 status messages" in render_text(build_report(db))
    png = write_png(build_report(db), tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_uses_device_time_so_a_late_backlog_keeps_its_hours_and_its_gap(tmp_path: Path) -> None:
    """After an outage the outbox delivers what it held all at once: the hours and the gap stay the device's."""
    db = tmp_path / "r.db"
    timeline: list[tuple[float, dict[str, Any] | bytes]] = [
        (T0 + 10, detection("cam-1", 1, [("cat", 0.9)])),
        (T0 + 4000, detection("cam-1", 2, [("cat", 0.8)])),
        (T0 + 4010, detection("cam-1", 3, [("cat", 0.7)])),
    ]
    record(db, timeline, arrived={0: T0 + 4020, 1: T0 + 4020, 2: T0 + 4020})  # all three arrive together, late
    cam1 = build_report(db, gap_s=120).to_dict()["devices"]["cam-1"]
    assert cam1["classes"]["cat"]["per_hour"] == {"2027-01-15T08:00Z": 1, "2027-01-15T09:00Z": 2}
    assert [(g["reason"], g["seconds"]) for g in cam1["gaps"]] == [("silent", 3990.0)]


def test_parse_since():
    assert parse_since("2h", T0) == T0 - 7200
    assert parse_since("2027-01-15T08:00:00Z", 0) == T0
    with pytest.raises(ReviewError, match="--since"):
        parse_since("yesterday", T0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_session_records_counts_and_stops_at_max_messages(tmp_path: Path):
    clock = Clock()
    messages = [("edge/cam-1/status", raw(running("cam-1")))] + [("edge/x", payload) for payload in BAD[:3]]
    messages += [("edge/cam-1/detections", raw(detection("cam-1", i, [("cat", 0.9)]))) for i in (1, 2, 3)]
    out = io.StringIO()
    session = ReviewSession(
        ListSubscriber(messages, clock=clock, max_bytes=256 * 1024),
        Fleet(),
        JsonView(out),
        threading.Event(),
        recorder=Recorder(tmp_path / "r.db"),
        limits=Limits(max_messages=6, duration_s=5),
        clock=clock,
    )
    assert session.run() == 6
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["outcome"] for e in events if e["event"] == "message"] == ["valid", "malformed", "unknown_schema",
                                                                        "oversize", "valid", "valid"]  # fmt: skip
    assert [e["state"] for e in events if e["event"] == "state"] == ["online"]
    assert events[-1]["event"] == "summary" and events[-1]["rejected"]["oversize"] == 1
    assert len(list(read_rows(tmp_path / "r.db"))) == 6


def test_session_stop_event_and_duration_bound_the_loop():
    stop = threading.Event()
    stop.set()
    assert ReviewSession(ListSubscriber([]), Fleet(), View(), stop).run() == 0
    bounded = ReviewSession(ListSubscriber([]), Fleet(), View(), threading.Event(), limits=Limits(duration_s=0.3))
    assert bounded.run() == 0


def test_plain_view_prints_only_on_change():
    out = io.StringIO()
    fleet = Fleet()
    view = PlainView(out)
    fleet.add(checked(running("cam-1"), T0))
    view.tick(fleet, T0)
    view.tick(fleet, T0 + 1)
    assert out.getvalue().count("cam-1") == 1 and "online" in out.getvalue()


def test_report_cli_json_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    db = tmp_path / "r.db"
    record(db, [(T0, detection("cam-1", 1, [("cat", 0.9)]))])
    assert main(["review", "report", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["devices"]["cam-1"]["classes"]["cat"]["count"] == 1
    assert main(["review", "report", str(tmp_path / "nope.db")]) == 2
    assert "recording not found" in capsys.readouterr().err


def test_png_without_matplotlib_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    db = tmp_path / "r.db"
    record(db, [(T0, running("cam-1"))])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert main(["review", "report", str(db), "--png", str(tmp_path / "c.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--png needs matplotlib, which is not installed here" in captured.err
    assert not (tmp_path / "c.png").exists()


def test_terminal_view_redraws_with_ansi_and_colour():
    out = io.StringIO()
    fleet = Fleet()
    fleet.add(checked(running("cam-1"), T0))
    view = TerminalView(out, refresh_s=1.0)
    view.tick(fleet, T0)
    view.tick(fleet, T0 + 0.5)  # within refresh_s: no redraw
    assert out.getvalue().count(CLEAR) == 1 and "\x1b[32monline" in out.getvalue()


def test_redeliveries_per_device_and_session():
    seen = Redeliveries()
    assert [seen.seen("cam-1", "s1", seq) for seq in (1, 2, 3)] == [False, False, False]  # in order
    assert seen.seen("cam-1", "s1", 3)  # the same again
    assert seen.seen("cam-1", "s1", 1)  # an older one again
    assert not seen.seen("cam-1", "s2", 1)  # the device's next run numbers from 1
    assert not seen.seen("cam-1", "s1", 4)  # ... while the old run's outbox still flushes
    assert not seen.seen("cam-2", "s1", 1)  # another device, even with the same session id
    assert not seen.seen("cam-1", "s1", 9)  # a gap (the outbox dropped its oldest) is not a repeat
    assert seen.seen("cam-1", "s2", 1) and seen.seen("cam-2", "s1", 1)


def test_redeliveries_forget_the_least_recently_heard_session_first():
    seen = Redeliveries(max_sessions=2)
    seen.seen("cam-1", "s1", 5)
    seen.seen("cam-2", "s1", 5)
    seen.seen("cam-1", "s1", 6)  # cam-1 heard again: cam-2 is now the least recent
    seen.seen("cam-3", "s1", 1)
    assert len(seen) == 2
    assert seen.seen("cam-1", "s1", 6) and seen.seen("cam-3", "s1", 1)
    assert not seen.seen("cam-2", "s1", 5)  # forgotten, so taken as new


def test_redeliveries_check_marks_only_repeated_detections():
    seen = Redeliveries()
    first = seen.check(checked(detection("cam-1", 12, [], session="abc"), T0))
    again = seen.check(checked(detection("cam-1", 12, [], session="abc"), T0 + 1))
    assert first.outcome == "valid" and first.message is not None
    assert (again.outcome, again.valid, again.message, again.kind, again.device) == (
        "duplicate", False, None, "detection", "cam-1"
    )  # fmt: skip
    assert again.problem == "redelivery of seq 12 of session abc (MQTT QoS 1 is at least once)"
    statuses = [seen.check(checked(running("cam-1"), T0 + i)) for i in (2, 3)]  # a retained status, sent again
    assert [s.outcome for s in statuses] == ["valid", "valid"]
    assert seen.check(checked(BAD[3], T0 + 4)).outcome == "invalid"


def test_session_skips_records_and_reports_redeliveries(tmp_path: Path):
    sent = [detection("cam-1", seq, [("cat", 0.9)]) for seq in (1, 2, 2, 3, 1)] + [running("cam-1")] * 2
    messages = [("edge/cam-1", raw(message)) for message in sent]
    out = io.StringIO()
    db = tmp_path / "r.db"
    fleet = Fleet(window_s=3600)
    session = ReviewSession(
        ListSubscriber(messages, clock=Clock()), fleet, JsonView(out), threading.Event(), recorder=Recorder(db),
        limits=Limits(duration_s=5, max_messages=len(messages)), clock=Clock(),
    )  # fmt: skip
    assert session.run() == 7  # every message is received and counted, duplicates too
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["outcome"] for e in events if e["event"] == "message"] == [
        "valid", "valid", "duplicate", "valid", "duplicate", "valid", "valid"
    ]  # fmt: skip
    summary = events[-1]
    assert (summary["valid"], summary["rejected"]["duplicate"]) == (5, 2)
    assert "redelivery of seq 1 of session s1" in summary["problems"][-1]
    assert fleet.rows(T0 + 10)[0].detections_per_class == {"cat": 3}  # not 5
    assert [r.outcome for r in read_rows(db)].count("duplicate") == 2
    report = build_report(db).to_dict()
    assert (report["messages"], report["valid"], report["rejected"]["duplicate"]) == (7, 5, 2)
    assert report["devices"]["cam-1"]["detection_messages"] == 3
    skipped = "skipped: oversize 0, malformed 0, unknown_schema 0, invalid 0, too_deep 0, bad_field 0, "
    skipped += "wrong_device 0, bad_image 0, unknown_detection 0, duplicate 2"
    assert skipped in render_text(build_report(db))


def test_report_skips_a_detection_recorded_valid_twice(tmp_path: Path):
    db = tmp_path / "r.db"  # two review runs appending to one file: the second had no memory of the first
    record(db, [(T0, detection("cam-1", 1, [("cat", 0.9)])), (T0 + 1, detection("cam-1", 1, [("cat", 0.9)]))])
    report = build_report(db).to_dict()
    assert (report["valid"], report["rejected"]["duplicate"]) == (1, 1)
    assert report["devices"]["cam-1"]["classes"]["cat"]["count"] == 1


def test_session_expiry_keeps_and_rejoins_the_session(monkeypatch: pytest.MonkeyPatch):
    from awscrt import mqtt5

    monkeypatch.setattr(mqtt5, "Client", lambda options: options)  # the options it would be built with

    def noop(_data: Any) -> None:
        pass

    def options(**extra: Any) -> Any:
        return build_mqtt5_client(
            MqttConfig(), "id", on_connected=noop, on_connection_failure=noop, on_disconnected=noop,
            on_stopped=noop, **extra,
        )  # fmt: skip

    clean, kept = options(), options(session_expiry_s=3600)
    assert (clean.session_behavior, clean.connect_options.session_expiry_interval_sec) == (
        mqtt5.ClientSessionBehaviorType.CLEAN, None
    )  # fmt: skip
    assert (kept.session_behavior, kept.connect_options.session_expiry_interval_sec) == (
        mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS, 3600
    )  # fmt: skip


def test_subscriber_resubscribes_only_when_the_broker_forgot_the_session():
    subscriber = MqttSubscriber(MqttConfig(), ["edge/#"], 1024)
    subscriber._subscribed = True
    subscriber._on_connected(SimpleNamespace(connack_packet=SimpleNamespace(session_present=True)))
    assert subscriber._subscribed and subscriber.connected.is_set()
    subscriber._on_connected(SimpleNamespace(connack_packet=SimpleNamespace(session_present=False)))
    assert not subscriber._subscribed  # maintain() subscribes again


def test_session_expiry_with_share_needs_a_client_id(capsys: pytest.CaptureFixture[str]):
    assert main(["review", "--session-expiry", "60", "--share", "g", "--mqtt-port", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "edge-runtime: error: --session-expiry with --share needs --client-id: one per reviewer of the group"
    ]


def test_a_persistent_session_by_default_with_a_stable_client_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Without flags the broker keeps the session an hour under an id that the same command finds again."""
    from edge_runtime.review import cli

    monkeypatch.chdir(tmp_path)
    built: list[tuple[str | None, int]] = []
    monkeypatch.setattr(cli, "_build_session", _spy(cli._build_session, built))
    for argv in (["review", "--mqtt-port", "1", "--connect-timeout", "0.2"],) * 2 + (
        ["review", "--mqtt-port", "1", "--connect-timeout", "0.2", "--record", "other.db"],
        ["review", "--mqtt-port", "1", "--connect-timeout", "0.2", "--clean-session"],
        ["review", "--mqtt-port", "1", "--connect-timeout", "0.2", "--share", "g"],
    ):
        assert main(argv) == 2  # no broker on port 1
    (first, second, other, clean, shared) = built
    assert first == second and first[1] == 3600 and (first[0] or "").startswith("edge-runtime-review-")
    assert other[0] != first[0] and clean[1] == 0 and shared[1] == 0


def _spy(build: Any, built: list[tuple[str | None, int]]) -> Any:
    def spy(args: Any, view: Any, snapshots: Any = None) -> Any:
        session, recorder = build(args, view, snapshots)
        built.append((session.subscriber.mqtt.client_id, session.subscriber.session_expiry_s))
        return session, recorder

    return spy


def test_session_expiry_beyond_mqtt_limit_is_one_line(capsys: pytest.CaptureFixture[str]):
    argv = ["review", "--session-expiry", str(2**32), "--client-id", "op", "--mqtt-port", "1"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "edge-runtime: error: --session-expiry: at most 4294967295 s, MQTT 5's limit (got 4294967296)"
    ]
