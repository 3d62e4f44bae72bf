"""Every PUBACK reason code honoured (issue 21), with a real mosquitto that limits message sizes.

Measured before: mosquitto with ``message_size_limit`` answers a larger QoS 1 message with PUBACK 0x95 (packet too
large); awscrt has no name for that code and hands it over as ``None``, which was read as success: 600 of 600
snapshots lost, nothing counted or logged, status ``running``. Now such a message is a refusal: dropped (the policy
for every refusal: the broker will refuse it again), counted in the outbox's persistent ``dropped``, logged at a
bounded rate, and the status is ``degraded`` with the reason; the smaller messages flow on, in order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge_helpers import free_port, wait_for  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker, Subscriber, require_mosquitto  # type: ignore[import-not-found]

from edge_runtime.config import validate
from edge_runtime.publishers.mqtt import MqttPublisher

THING = "cam-puback"


def test_a_puback_code_awscrt_cannot_name_is_a_refusal_not_a_delivery(tmp_path: Path, caplog: Any) -> None:
    broker = Broker(require_mosquitto(), tmp_path / "broker", free_port(), "message_size_limit 2000\n")
    broker.start()
    subscriber = Subscriber(broker.port, f"edge/{THING}/#", client_id="puback-test")
    config = validate({"thing_name": THING, "publish": {"targets": ["mqtt"], "mqtt": {"port": broker.port}},
                       "state_dir": str(tmp_path / "state")})  # fmt: skip
    sender = MqttPublisher.from_config(config, "s", tmp_path / "ob.sqlite3")
    try:
        assert sender.connected.wait(10)
        with caplog.at_level(logging.WARNING):
            for seq in range(40):
                sender.publish("detection", {"seq": seq})
                if seq % 4 == 0:  # 10 snapshots, each above the broker's limit: mosquitto answers PUBACK 0x95
                    sender.publish("snapshot", {"seq": seq, "jpeg": "x" * 5000})
            assert wait_for(lambda: len(subscriber.snapshot()) >= 40, timeout=20)
            assert wait_for(lambda: sender.outbox_stats()["depth"] == 0, timeout=10)
            problems = sender.problems()
    finally:
        sender.close(2.0)
        subscriber.close()
        broker.stop()
    assert [m["seq"] for m in subscriber.snapshot()] == list(range(40))  # no snapshot arrived; every detection did
    assert sender.outbox_stats()["dropped"] == 10  # each refusal counted, none taken for a delivery
    (problem,) = [p for p in problems if "refuses messages" in p.reason]
    assert f"edge/{THING}/snapshot" in problem.reason and "5" in problem.reason and "0x95" in problem.reason
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "dropped" in errors[0], errors  # bounded: not one line per refusal
