"""A broker that takes the connection but refuses messages (issue 14, found in review), with a real mosquitto.

Measured before: one message above the broker's Maximum Packet Size was resent 56 303 times in 13 s (93% CPU) and
held every later message behind it, status ``running``; a broker whose ACL refused the detections (PUBACK 0x87) got
one ERROR line per frame, status ``running``. Now each such message is dropped and counted, the rest flows, the
status says ``degraded`` with the reason, and the log stays bounded.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import free_port, start_daemon, wait_for  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker, Subscriber, require_mosquitto  # type: ignore[import-not-found]

from edge_runtime.config import validate
from edge_runtime.publishers.mqtt import MqttPublisher

THING = "cam-refused"


def publisher(tmp_path: Path, port: int, **mqtt: Any) -> MqttPublisher:
    config = validate({
        "thing_name": THING,
        "publish": {"targets": ["mqtt"], "mqtt": {"port": port, **mqtt}},
        "state_dir": str(tmp_path / "state"),
    })
    return MqttPublisher.from_config(config, "s", tmp_path / "ob.sqlite3")


def test_a_message_above_the_brokers_packet_size_is_dropped_and_the_rest_flows(tmp_path: Path, caplog: Any) -> None:
    broker = Broker(require_mosquitto(), tmp_path / "broker", free_port(), "max_packet_size 2000\n")
    broker.start()
    subscriber = Subscriber(broker.port, f"edge/{THING}/#", client_id="size-test")
    sender = publisher(tmp_path, broker.port)
    try:
        assert sender.connected.wait(10)
        with caplog.at_level(logging.WARNING):
            sender.publish("detection", {"seq": 0})
            sender.publish("snapshot", {"seq": 0, "jpeg": "x" * 5000})  # above 2000 bytes: awscrt will not send it
            for seq in range(1, 30):
                sender.publish("detection", {"seq": seq})
            assert wait_for(lambda: len(subscriber.snapshot()) >= 30, timeout=15)
            assert wait_for(lambda: sender.outbox_stats()["depth"] == 0, timeout=10)
            problems = sender.problems()
    finally:
        sender.close(2.0)
        subscriber.close()
        broker.stop()
    assert [m["seq"] for m in subscriber.snapshot()] == list(range(30))  # every other message, in order
    assert sender.outbox_stats()["dropped"] == 1
    assert any("of 5" in p.reason and "cannot be sent" in p.reason for p in problems), problems
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "dropped" in errors[0].getMessage()


def test_a_broker_refusing_detections_gives_degraded_and_a_bounded_log(
    tmp_path: Path, model_dir: Path, video: Path
) -> None:
    acl = tmp_path / "acl"
    acl.write_text(f"topic write edge/{THING}/status\n")  # the broker lets the device report status, nothing else
    broker = Broker(require_mosquitto(), tmp_path / "broker", free_port(), f"acl_file {acl}\n")
    broker.start()
    daemon = start_daemon(
        "--model", str(model_dir), "--source", str(video), "--loop", "--max-fps", "20", "--thing-name", THING,
        "--publish", "mqtt", "--publish", "stdout", "--mqtt-port", str(broker.port), "--status-interval", "0.5",
        "--set", f"state_dir={json.dumps(str(tmp_path / 'state'))}",
    )  # fmt: skip
    try:
        assert daemon.stderr is not None
        for line in daemon.stderr:  # from `running:` on (a loaded machine may take seconds to load the model)
            if " running: " in line:
                break
        time.sleep(6.0)  # ~120 detections, every one refused
    finally:
        daemon.terminate()
        out, err = daemon.communicate(timeout=20)
        broker.stop()
    assert daemon.returncode == 0, err[-2000:]
    statuses = [m for m in map(json.loads, out.splitlines()) if m["schema"] == "edge-runtime/status/1"]
    degraded = [s for s in statuses if s["state"] == "degraded"]
    assert degraded, statuses[-1]
    reason = degraded[-1]["problems"][0]["reason"]
    assert "refuses messages on edge/cam-refused/detections: not authorized" in reason
    made = [m for m in map(json.loads, out.splitlines()) if m["schema"] == "edge-runtime/detection/1"]
    final = statuses[-1]["outbox"]
    assert len(made) >= 10 and final["dropped"] + final["depth"] == len(made)  # each one refused and counted
    refusal_lines = [line for line in err.splitlines() if "refuses messages" in line]
    assert 1 <= len(refusal_lines) <= 2, refusal_lines  # not one a frame
    assert "Traceback" not in err


def test_qos0_counts_what_it_drops_and_makes_no_outbox(tmp_path: Path) -> None:
    sender = publisher(tmp_path, free_port(), qos=0)  # nothing listens
    try:
        for seq in range(5):
            sender.publish("detection", {"seq": seq})
        assert sender.outbox_stats() == {"depth": 0, "bytes": 0, "dropped": 5, "in_flight": 0}
    finally:
        sender.close(1.0)
    assert not (tmp_path / "ob.sqlite3").exists()


@pytest.mark.parametrize(
    "setting",
    ['publish.mqtt.topic="a/+/b"', 'publish.mqtt.tls={"cert": "/no/such.pem", "key": "/no/such.key"}'],
)
def test_bad_publisher_settings_create_no_outbox(setting: str, tmp_path: Path, video: Path) -> None:
    daemon = start_daemon("--model", "models/demo", "--source", str(video), "--publish", "mqtt",
                          "--set", f"state_dir={json.dumps(str(tmp_path / 'state'))}", "--set", setting)  # fmt: skip
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "state").exists()
