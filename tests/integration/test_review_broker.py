"""edge-runtime review against a real mosquitto on loopback: two daemons, one killed, a recording and its report.

The reviewer runs as its own process (``--json --record``), as an operator would run it. An independent QoS 1
subscriber records what the broker delivered, and each daemon also writes what it published to a JSON-lines file,
so the recording is checked against both. Device B is SIGKILLed: only the broker's last will can say it is gone.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from edge_helpers import REPO, build_deploy_model, free_port, read_jsonl, start_daemon, wait_for, write_video  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker, Review, Subscriber, make_tls_files, publish_raw, require_mosquitto  # type: ignore[import-not-found]

PREFIX = "ml/object-detection"
UNKNOWN = json.dumps({"schema": "edge-runtime/detection/2", "device": "cam-a"}).encode()


def daemon_args(model: Path, video: Path, port: int, thing: str, folder: Path) -> list[str]:
    return [
        "--model", str(model), "--source", str(video), "--loop", "--max-fps", "10", "--score-threshold", "0.01",
        "--top-k", "3", "--publish", "mqtt", "--publish", "file", "--mqtt-port", str(port), "--thing-name", thing,
        "--status-interval", "0.5",
        "--set", f"publish.mqtt.topic={json.dumps(PREFIX + '/{thing_name}/detections')}",
        "--set", f"publish.mqtt.status_topic={json.dumps(PREFIX + '/{thing_name}/status')}",
        "--set", f"publish.outbox.path={json.dumps(str(folder / (thing + '.outbox')))}",
        "--set", f"publish.file.path={json.dumps(str(folder / (thing + '.jsonl')))}",
        "--set", "publish.mqtt.reconnect_min_s=0.1", "--set", "publish.mqtt.reconnect_max_s=0.5",
    ]  # fmt: skip


def identity(message: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a message itself: detections by (device, session, seq), status by device, session, state, time."""
    if message["schema"].startswith("edge-runtime/detection"):
        return ("detection", message["device"], message["session"], message["seq"])
    return ("status", message["device"], message["session"], message["state"], message["at"])


def test_two_daemons_one_killed_recorded_and_reported(broker: Broker, tmp_path: Path):
    model = build_deploy_model(tmp_path / "model")
    video = write_video(tmp_path / "v.avi", frames=20)
    db = tmp_path / "fleet.db"
    review = Review(
        "--topic", f"{PREFIX}/#", "--mqtt-port", str(broker.port), "--record", str(db), "--json",
        "--status-interval", "0.5", "--duration", "80",
    )  # fmt: skip
    witness = Subscriber(broker.port, f"{PREFIX}/+/+", client_id="witness")
    daemons: dict[str, subprocess.Popen] = {}
    try:
        assert wait_for(lambda: bool(review.snapshot("subscribed")), timeout=20), review.process.stderr
        for thing in ("cam-a", "cam-b"):
            daemons[thing] = start_daemon(*daemon_args(model, video, broker.port, thing, tmp_path))
        both_online = wait_for(lambda: review.states() == {"cam-a": "online", "cam-b": "online"}, timeout=40)
        assert both_online, (review.states(), [d.poll() for d in daemons.values()])

        def delivered_by(thing: str) -> int:
            return sum(1 for m in witness.snapshot() if m["device"] == thing and "seq" in m)

        # both, before either stops: the checks below want 10 detections from each, and on a loaded machine one
        # daemon can lag the other
        assert wait_for(lambda: delivered_by("cam-a") >= 10 and delivered_by("cam-b") >= 10, timeout=30)

        daemons["cam-b"].send_signal(signal.SIGKILL)  # no clean stop: only the broker's last will tells
        daemons["cam-b"].wait(timeout=10)
        assert wait_for(lambda: review.states().get("cam-b") == "offline", timeout=10), review.states()
        assert review.states()["cam-a"] == "online"
        offline = [e for e in review.snapshot("state") if e["device"] == "cam-b"][-1]
        assert offline["status"] == "offline"  # the last will's state

        publish_raw(broker.port, client_id="junk-publisher", items=[
            (f"{PREFIX}/junk", b"{this is not json"),
            (f"{PREFIX}/junk", UNKNOWN),
            (f"{PREFIX}/junk", b"{" + b" " * (10 * 1024 * 1024) + b"}"),
        ])  # fmt: skip

        daemons["cam-a"].send_signal(signal.SIGTERM)
        assert daemons["cam-a"].wait(timeout=15) == 0
        assert wait_for(lambda: review.states().get("cam-a") == "stopped", timeout=10), review.states()
        delivered = witness.snapshot()
        assert wait_for(lambda: len(review.snapshot("message")) >= len(delivered) + 3, timeout=15)
        review.process.send_signal(signal.SIGTERM)
        assert review.process.wait(timeout=15) == 0, review.process.stderr.read() if review.process.stderr else ""
        review._reader.join(5)
        delivered = witness.snapshot()
    finally:
        witness.close()
        for process in [*daemons.values(), review.process]:
            if process.poll() is None:
                process.kill()

    # the review counted and skipped each bad message, and survived them
    summary = review.snapshot("summary")[-1]
    assert summary["rejected"] == {"oversize": 1, "malformed": 1, "unknown_schema": 1, "invalid": 0, "bad_image": 0,
                                  "unknown_detection": 0, "duplicate": 0, "too_deep": 0, "bad_field": 0,
                                  "wrong_device": 0, "unhandled": 0}
    assert summary["valid"] == len(delivered)

    # the recording holds exactly what the broker delivered: every message once, nothing else valid
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT valid, outcome, payload, size FROM messages ORDER BY id").fetchall()
    recorded = [json.loads(payload) for valid, _outcome, payload, _size in rows if valid]
    assert Counter(identity(m) for m in recorded) == Counter(identity(m) for m in delivered)
    assert len(recorded) == len(delivered) == len({identity(m) for m in recorded})
    assert sorted((outcome, size) for valid, outcome, _p, size in rows if not valid) == [
        ("malformed", 17), ("oversize", 10 * 1024 * 1024 + 2), ("unknown_schema", len(UNKNOWN))
    ]  # fmt: skip
    # ... and what each daemon published: all of cam-a's detections (clean stop flushed its outbox), and of the
    # killed cam-b what left its outbox (the file is written after the outbox accepts, so it may hold a few more)
    for thing in ("cam-a", "cam-b"):
        published = [m["seq"] for m in read_jsonl(tmp_path / f"{thing}.jsonl") if "seq" in m]
        seen = [m["seq"] for m in recorded if m["device"] == thing and "seq" in m]
        assert seen == (published if thing == "cam-a" else published[: len(seen)]), thing
        assert len(seen) >= 10

    # the report's counts match the recording
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "review", "report", str(db), "--json", "--png", str(tmp_path / "c.png")],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["messages"], report["valid"]) == (len(rows), len(recorded))
    assert report["rejected"] == summary["rejected"]
    for thing in ("cam-a", "cam-b"):
        mine = [m for m in recorded if m["device"] == thing]
        labels = Counter(d["label"] for m in mine if "seq" in m for d in m["detections"])
        device = report["devices"][thing]
        assert device["detection_messages"] == sum(1 for m in mine if "seq" in m)
        assert device["status_messages"] == sum(1 for m in mine if "state" in m)
        assert {label: c["count"] for label, c in device["classes"].items()} == dict(labels)
        assert all(sum(c["per_hour"].values()) == c["count"] for c in device["classes"].values())
    assert labels, "the model detected nothing: the class counts were not exercised"
    assert report["devices"]["cam-b"]["gaps"][-1]["reason"] == "last will"
    assert report["devices"]["cam-a"]["gaps"][-1]["reason"] == "stopped"
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_review_over_mutual_tls_and_unreachable_broker(tmp_path: Path):
    tls = make_tls_files(tmp_path / "tls")
    tls_port = free_port()
    broker = Broker(
        require_mosquitto(), tmp_path / "broker", free_port(),
        f"listener {tls_port} 127.0.0.1\ncafile {tls['ca']}\ncertfile {tls['server']}\nkeyfile {tls['server-key']}\n"
        "require_certificate true\n",
    )  # fmt: skip
    broker.start()
    try:
        review = Review(
            "--topic", f"{PREFIX}/#", "--mqtt-port", str(tls_port), "--tls-cert", str(tls["device"]),
            "--tls-key", str(tls["device-key"]), "--tls-ca", str(tls["ca"]), "--json", "--max-messages", "1",
            "--duration", "30",
        )  # fmt: skip
        assert wait_for(lambda: bool(review.snapshot("subscribed")), timeout=20), review.process.stderr
        status = {"schema": "edge-runtime/status/1", "device": "cam-t", "session": "s", "state": "running",
                  "at": "2027-01-15T08:00:00.000Z"}  # fmt: skip
        publish_raw(broker.port, [(f"{PREFIX}/cam-t/status", json.dumps(status).encode())])
        assert review.process.wait(timeout=20) == 0  # --max-messages 1
        review._reader.join(5)
        assert review.states() == {"cam-t": "online"}
    finally:
        if review.process.poll() is None:
            review.process.kill()
        broker.stop()

    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "review", "--mqtt-port", str(port), "--connect-timeout", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"edge-runtime: error: cannot connect to the broker 127.0.0.1:{port} within 1s"
        f" (mqtt: nothing listens on 127.0.0.1:{port} (AWS_IO_SOCKET_CONNECTION_REFUSED))"
    ]  # the daemon's words for why (publishers.mqtt.describe_connection_failure)
