"""The console as the issue met it, with real parts: a real mosquitto, a real PostgreSQL stopped and started again
mid-stream, hostile publishers, a console restarted, and the token from the environment.

Each hostile message is counted by reason while the page keeps serving; nothing published while PostgreSQL is
down is lost (the console keeps the rows and catches up); nothing published while the console itself is down is
lost (the broker keeps its persistent session, the default); the token works and is never printed.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge_helpers import free_port, wait_for  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker  # type: ignore[import-not-found]
from review_console_helpers import Console, publish_raw, start_again, start_postgres  # type: ignore[import-not-found]

from edge_runtime.review.store import read_rows

TOKEN = "a-console-token-0123456789abcdef"


def detection(device: str, seq: int, session: str = "s1") -> bytes:
    return json.dumps({
        "schema": "edge-runtime/detection/1", "device": device, "session": session, "source": "v.avi", "seq": seq,
        "captured_at": "2027-01-15T08:00:00.000Z", "published_at": "2027-01-15T08:00:00.010Z",
        "model": {"name": "m", "version": "1"},
        "timings_ms": {"preprocess": 1.0, "inference": 12.5, "postprocess": 0.5, "total": 14.0},
        "image": {"width": 160, "height": 120},
        "detections": [{"label": "cat", "class_id": 0, "score": 0.9, "box": [1, 2, 3, 4],
                        "box_normalized": [0.1, 0.1, 0.2, 0.2]}],
        "truncated": False,
    }).encode()  # fmt: skip


def detections(first: int, last: int) -> list[tuple[str, bytes]]:
    return [("edge/cam-1/detections", detection("cam-1", seq)) for seq in range(first, last + 1)]


HOSTILE = [
    ("edge/cam-1/detections", b"[" * 2048),  # RecursionError in json.loads, once fatal
    ("edge/cam-1/detections", detection("cam-1", 1, session="s9").replace(b'"cam-1"', b'"cam\\u00001"')),  # NUL
    ("edge/intruder/detections", detection("cam-1", 1, session="s8")),  # impersonation
]


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def health(base: str, part: str) -> dict[str, Any]:
    """``summary.health[part]`` of the console's ``/api/fleet`` (empty until the review loop's first turn)."""
    return get(base + "api/fleet")[1]["summary"].get("health", {}).get(part) or {}


def seqs(url: str) -> list[int]:
    return sorted(json.loads(r.payload or b"{}")["seq"] for r in read_rows(url) if r.valid)


def test_a_postgres_restart_mid_stream_loses_nothing(broker: Broker, tmp_path_factory: Any) -> None:
    postgres = start_postgres(tmp_path_factory.mktemp("pg"), free_port())
    console = Console("--topic", "edge/#", "--mqtt-port", str(broker.port), "--port", str(free_port()),
                      "--record", postgres.url, "--replay", "0")  # fmt: skip
    try:
        base = console.url()
        assert wait_for(lambda: health(base, "broker").get("state") == "connected", timeout=15)
        publish_raw(broker.port, detections(1, 100) + HOSTILE)
        assert wait_for(lambda: len(seqs(postgres.url)) == 100, timeout=20)

        postgres.stop()  # mid-stream: the next batches cannot be written
        publish_raw(broker.port, detections(101, 200))
        assert wait_for(lambda: health(base, "recording").get("pending", 0) >= 100, timeout=15)
        code, fleet = get(base + "api/fleet")  # the page keeps serving, and says what is wrong
        recording = fleet["summary"]["health"]["recording"]
        assert code == 200 and recording["state"] == "retrying" and recording["error"], recording
        assert console.process.poll() is None

        start_again(postgres)
        publish_raw(broker.port, detections(201, 300))
        assert wait_for(lambda: seqs(postgres.url) == list(range(1, 301)), timeout=60), len(seqs(postgres.url))
        _, fleet = get(base + "api/fleet")
        rejected = {k: v for k, v in fleet["summary"]["rejected"].items() if v}
        assert rejected == {"malformed": 1, "bad_field": 1, "wrong_device": 1}, rejected
        assert wait_for(lambda: health(base, "recording").get("state") == "ok", timeout=5)  # the next refresh
        assert [row["device"] for row in fleet["devices"]] == ["cam-1"]
        assert console.stop() == 0, console.stderr()
    finally:
        if console.process.poll() is None:
            console.process.kill()
        postgres.stop()
    assert "retrying" in console.stderr() and "recording again" in console.stderr()


def test_a_restarted_console_gets_what_was_published_while_it_was_down(broker: Broker, tmp_path: Path) -> None:
    """The persistent session is the default: the same command started again finds the session the broker kept."""
    db = tmp_path / "fleet.db"
    args = ("--topic", "edge/#", "--mqtt-port", str(broker.port), "--port", str(free_port()), "--record", str(db),
            "--replay", "0")  # fmt: skip
    first = Console(*args)
    try:
        base = first.url()
        assert wait_for(lambda: health(base, "broker").get("state") == "connected", timeout=15)
        publish_raw(broker.port, detections(1, 20))
        assert wait_for(lambda: len(seqs(str(db))) == 20, timeout=20)
    finally:
        assert first.stop() == 0, first.stderr()
    publish_raw(broker.port, detections(21, 50))  # nobody is listening: the broker queues them for the session
    again = Console(*args)
    try:
        again.url()
        assert wait_for(lambda: len(seqs(str(db))) == 50, timeout=20), len(seqs(str(db)))
    finally:
        assert again.stop() == 0, again.stderr()
    assert seqs(str(db)) == list(range(1, 51))
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT COUNT(*) FROM messages WHERE outcome = 'duplicate'").fetchone()[0] == 0


def test_the_token_from_the_environment_works_and_is_never_printed(broker: Broker) -> None:
    console = Console("--topic", "edge/#", "--mqtt-port", str(broker.port), "--port", str(free_port()),
                      env={"EDGE_RUNTIME_CONSOLE_TOKEN": TOKEN})  # fmt: skip
    try:
        base = console.url()
        assert get(base + "api/fleet")[0] == 401
        assert get(base + "api/fleet", "not-the-token-0123456789")[0] == 401
        assert get(base + "api/fleet", TOKEN)[0] == 200
        with open(f"/proc/{console.process.pid}/cmdline", "rb") as cmdline:
            assert TOKEN.encode() not in cmdline.read()
    finally:
        assert console.stop() == 0, console.stderr()
    assert TOKEN not in console.stderr()
