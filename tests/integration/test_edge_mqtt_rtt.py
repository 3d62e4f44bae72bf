"""A distant broker (issue 14): many QoS 1 messages in flight, never more than the broker's Receive Maximum, in order.

Through a loopback proxy adding 100 ms of round trip (tests/support/delay_proxy.py) to a real mosquitto. Speeds are
the benchmark's business (benchmarks/mqtt_rtt.py, figures in the README); this test checks what the window must keep:
every message delivered once, in the order stored, with several in flight but no more than the broker allows.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from edge_helpers import free_port, wait_for  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker, Subscriber, require_mosquitto  # type: ignore[import-not-found]

from edge_runtime.config import validate
from edge_runtime.publishers.mqtt import MqttPublisher
from tests.support.delay_proxy import DelayProxy

THING = "cam-far"


def test_window_keeps_order_and_the_brokers_receive_maximum(tmp_path: Path) -> None:
    broker = Broker(require_mosquitto(), tmp_path / "broker", free_port(), "max_inflight_messages 8\n")
    broker.start()
    subscriber = Subscriber(broker.port, f"edge/{THING}/detections", client_id="rtt-test")
    proxy = DelayProxy(broker.port, 0.1)
    proxy.start()
    config = validate({
        "thing_name": THING,
        "publish": {
            "targets": ["mqtt"],
            "outbox": {"path": str(tmp_path / "ob.sqlite3")},
            "mqtt": {"port": proxy.port, "max_in_flight": 32},
        },
    })
    publisher = MqttPublisher.from_config(config, "s", tmp_path / "ob.sqlite3")
    peak = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not sampling.is_set():
            peak = max(peak, publisher.outbox_stats()["in_flight"])
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        assert publisher.connected.wait(10)
        sampler.start()
        for seq in range(120):
            publisher.publish("detection", {"seq": seq})
        assert wait_for(lambda: len(subscriber.snapshot()) >= 120, timeout=30)
        time.sleep(0.3)  # anything sent twice would arrive now
    finally:
        sampling.set()
        publisher.close(2.0)
        proxy.stop()
        subscriber.close()
        broker.stop()
    assert [message["seq"] for message in subscriber.snapshot()] == list(range(120))  # each once, in order
    assert 1 < peak <= 8, peak  # several in flight, capped by mosquitto's Receive Maximum (max_inflight_messages)
    assert publisher.transport.window() == 8
    assert publisher.outbox_stats()["depth"] == 0
