"""publish.mode events through the durable delivery: a stop while the broker is away loses no event and leaves none
without its ``end``; the next run delivers them, in order, to a real mosquitto on loopback.

SIGTERM ends every open event (``end``, reason ``stopped``) before the publishers flush, so the ends are stored in
the outbox with the rest. (A SIGKILL or a power cut cannot send ends: what was stored is delivered, the open events
of that session get no end; a consumer sees the session stop. That path is the outbox's, tested in test_edge_mqtt.)
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from edge_helpers import read_jsonl, start_daemon, wait_for  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker, Subscriber  # type: ignore[import-not-found]

from cloud_training.synth.video import render_video
from edge_runtime.messages import validate_message
from edge_runtime.publishers.outbox import Outbox

REPO = Path(__file__).resolve().parents[2]
THING = "dev-events"
DETECTIONS = f"edge/{THING}/detections"


def events_args(source: Path, port: int, outbox: Path, *extra: str) -> list[str]:
    return [
        "--model", str(REPO / "models" / "demo"), "--source", str(source), "--publish", "mqtt",
        "--mqtt-port", str(port), "--thing-name", THING, "--status-interval", "0",
        "--set", f"publish.outbox.path={json.dumps(str(outbox))}", "--set", "publish.mode=events",
        "--set", "events.max_age_s=2", "--set", "events.min_update_interval_s=1",
        "--set", "publish.mqtt.reconnect_min_s=0.1", "--set", "publish.mqtt.reconnect_max_s=0.5", *extra,
    ]  # fmt: skip


def paired(messages: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    news = [m["id"] for m in messages if m["event"] == "new"]
    ends = [m["id"] for m in messages if m["event"] == "end"]
    return news, ends


def run_and_deliver(
    broker: Broker, clip: Path, tmp_path: Path, subscriber: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A first run that stops with the broker away, then a second that delivers its outbox: (received, stored)."""
    outbox, local = tmp_path / "ob.sqlite3", tmp_path / "local.jsonl"
    broker.stop()  # the first run never reaches the broker: everything it publishes waits in its outbox
    args = events_args(clip, broker.port, outbox, "--loop", "--max-fps", "15")
    first = start_daemon(*args, "--publish", "file", "--set", f"publish.file.path={json.dumps(str(local))}")
    try:
        # the clip loops with gaps of 1 s between its objects, under max_age_s: from the first new on, one is open
        assert wait_for(lambda: sum(m["event"] == "new" for m in read_jsonl(local)) >= 3, timeout=60)
        first.send_signal(signal.SIGTERM)  # mid-stream: events are open
        code = first.wait(timeout=20)
        err = first.stderr.read() if first.stderr else ""
    finally:
        if first.poll() is None:
            first.kill()
    assert code == 0, err
    written = read_jsonl(local)
    for message in written:
        validate_message(message)
    news, ends = paired(written)
    assert sorted(news) == sorted(ends) and len(set(ends)) == len(ends)
    assert any(m["event"] == "end" and m["reason"] == "stopped" for m in written)  # the stop ended open ones
    held = Outbox(outbox, 10_000, 50_000_000)
    stored = [json.loads(item.payload) for item in held.peek(10_000)]
    held.close()
    assert stored == written  # every event and every end is on disk, in order

    broker.start()
    assert subscriber.wait_connected(10)
    second = start_daemon(*events_args(clip, broker.port, outbox))  # a short run: it delivers the backlog first
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert wait_for(lambda: len(subscriber.snapshot()) >= len(stored), timeout=15)
    return subscriber.snapshot(), stored


def test_a_stop_with_the_broker_away_keeps_every_event_and_its_end(broker: Broker, tmp_path: Path) -> None:
    clip = tmp_path / "boxes.mp4"
    truth = render_video(str(clip), seed=1, frames=60, width=320, height=240, fps=15.0)
    assert sum(len(boxes) for boxes in truth) > 30
    subscriber = Subscriber(broker.port, DETECTIONS, client_id="events-test")  # a persistent session, made now
    try:
        received, stored = run_and_deliver(broker, clip, tmp_path, subscriber)
    finally:
        subscriber.close()
    session = stored[0]["session"]
    first_run = [m for m in received if m["session"] == session]
    assert [m["id"] + m["event"] for m in first_run] == [m["id"] + m["event"] for m in stored]
    second_news, second_ends = paired([m for m in received if m["session"] != session])
    assert sorted(second_news) == sorted(second_ends)  # the second run's own events, each ended
