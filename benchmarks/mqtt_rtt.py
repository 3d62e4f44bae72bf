"""Delivered QoS 1 messages per second against the broker's round-trip time, one in flight vs many, side by side.

    .venv/bin/python -m benchmarks.mqtt_rtt                 # RTT 10, 40, 100, 250 ms; 5 s per measurement
    .venv/bin/python -m benchmarks.mqtt_rtt --rtt 100 --seconds 3

A real mosquitto on loopback, reached through a proxy that adds the RTT (tests/support/delay_proxy.py). For each RTT
and each ``publish.mqtt.max_in_flight`` (1, the old behaviour, and the default), the daemon's own MqttPublisher is
given a backlog larger than it can send, and the benchmark counts the messages the broker acknowledged (removed from
the outbox) in a fixed time after the connection is up. The camera side makes about 30 messages per second: a rate
below that means the outbox grows until it drops.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.mosquitto import start_mosquitto
from edge_runtime.config import validate
from edge_runtime.publishers.mqtt import MqttPublisher
from tests.support.delay_proxy import DelayProxy

PAYLOAD = json.dumps({"detections": [{"label": "box", "score": 0.9, "box": [1, 2, 3, 4]}] * 8, "pad": "x" * 400})


def measure(port: int, folder: Path, in_flight: int, seconds: float, backlog: int) -> float:
    """Messages acknowledged per second by the broker at ``port`` with ``in_flight`` allowed."""
    config = validate({
        "thing_name": f"bench-{in_flight}",
        "publish": {
            "targets": ["mqtt"],
            "outbox": {"path": str(folder / f"outbox-{in_flight}-{time.monotonic_ns()}.sqlite3")},
            "mqtt": {"host": "127.0.0.1", "port": port, "max_in_flight": in_flight, "retain_status": False},
        },
    })
    publisher = MqttPublisher.from_config(config, "bench", str(config.publish.outbox.path))
    try:
        for seq in range(backlog):
            publisher.publish("detection", {"seq": seq, "body": PAYLOAD})
        if not publisher.connected.wait(10):
            raise RuntimeError(f"no connection to 127.0.0.1:{port}")
        start_depth = publisher.outbox.depth
        started = time.monotonic()
        time.sleep(seconds)
        delivered = start_depth - publisher.outbox.depth
        return delivered / (time.monotonic() - started)
    finally:
        publisher.close(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt", type=float, action="append", metavar="MS", help="round-trip times (10 40 100 250)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per figure (default 5)")
    parser.add_argument("--in-flight", type=int, default=32, help="the windowed mode (default: the config default 32)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the backlog left in each outbox at the end is expected
    rtts = args.rtt or [10.0, 40.0, 100.0, 250.0]
    with tempfile.TemporaryDirectory(prefix="mqtt-rtt-") as tmp:
        folder = Path(tmp)
        broker, port = start_mosquitto(folder, "max_inflight_messages 0\n")
        try:
            print(f"| RTT | 1 in flight | {args.in_flight} in flight | ratio |")
            print("|---|---|---|---|")
            for rtt in rtts:
                with DelayProxy(port, rtt / 1000) as proxy:
                    single = measure(proxy.port, folder, 1, args.seconds, backlog=int(args.seconds * 2000 / rtt) + 50)
                    windowed = measure(proxy.port, folder, args.in_flight, args.seconds, backlog=4000)
                print(f"| {rtt:g} ms | {single:.1f} msg/s | {windowed:.1f} msg/s | {windowed / single:.1f}x |",
                      flush=True)  # fmt: skip
        finally:
            broker.terminate()
            broker.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
