"""The daemon against a real mosquitto on loopback: schema-valid messages, a broker outage, a SIGKILL restart."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from edge_helpers import free_port, read_jsonl, start_daemon, wait_for  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker, Review, Subscriber, make_tls_files, require_mosquitto  # type: ignore[import-not-found]

from edge_runtime.messages import validate_message
from edge_runtime.publishers.outbox import Outbox
from edge_runtime.review.store import read_rows

THING = "dev-test"
DETECTIONS = f"edge/{THING}/detections"


def mqtt_args(model: Path, source: Path, port: int, outbox: Path, *extra: str) -> list[str]:
    return [
        "--model", str(model), "--source", str(source), "--publish", "mqtt", "--mqtt-port", str(port),
        "--thing-name", THING, "--set", f"publish.outbox.path={json.dumps(str(outbox))}",
        "--set", "publish.mqtt.reconnect_min_s=0.1", "--set", "publish.mqtt.reconnect_max_s=0.5", *extra,
    ]  # fmt: skip


def detections_of(messages: list[dict[str, Any]], session: str | None = None) -> list[dict[str, Any]]:
    return [
        m for m in messages
        if m["schema"] == "edge-runtime/detection/1" and (session is None or m["session"] == session)
    ]  # fmt: skip


def test_every_frame_yields_one_schema_valid_message(broker: Broker, model_dir: Path, video: Path, tmp_path: Path):
    subscriber = Subscriber(broker.port, f"edge/{THING}/#")
    try:
        daemon = start_daemon(
            *mqtt_args(model_dir, video, broker.port, tmp_path / "ob.sqlite3"), "--status-interval", "0.2"
        )
        _, err = daemon.communicate(timeout=60)
        assert daemon.returncode == 0, err
        assert wait_for(lambda: len(detections_of(subscriber.snapshot())) >= 20, timeout=10)
        time.sleep(0.3)
        messages = subscriber.snapshot()
    finally:
        subscriber.close()
    assert [m["seq"] for m in detections_of(messages)] == list(range(1, 21))
    for message in messages:
        validate_message(message)
    statuses = [m for m in messages if m["schema"] == "edge-runtime/status/1"]
    assert statuses and statuses[-1]["state"] == "stopped" and statuses[-1]["outbox"]["depth"] == 0


def test_broker_outage_delivers_everything_in_order_once(broker: Broker, model_dir: Path, video: Path, tmp_path: Path):
    """The broker stops for seconds mid-run; a persistent QoS 1 subscriber gets every message, in order, none twice.

    "None twice" cannot hold at the MQTT level: a message the broker sent without getting the subscriber's PUBACK
    before it stopped is sent again after the restart, and MQTT 5 (4.3.2) makes the receiver take it as new. So the
    product's consumer, ``edge-runtime review`` with a persistent session, is held to exactly once (it drops
    redeliveries by device, session and seq), and a raw awscrt subscriber beside it shows what MQTT delivers.
    """
    db = tmp_path / "review.db"
    local = tmp_path / "local.jsonl"
    args = mqtt_args(model_dir, video, broker.port, tmp_path / "ob.sqlite3", "--loop", "--max-fps", "25")
    args += ["--publish", "file", "--set", f"publish.file.path={json.dumps(str(local))}", "--status-interval", "0"]
    subscriber = Subscriber(broker.port, DETECTIONS)
    review = Review(
        "--json", "--client-id", "review-outage", "--session-expiry", "3600", "--record", str(db),
        "--topic", DETECTIONS, "--mqtt-port", str(broker.port),
        "--set", "publish.mqtt.reconnect_min_s=0.1", "--set", "publish.mqtt.reconnect_max_s=0.5",
    )  # fmt: skip
    processes = [review.process]

    def reviewed() -> int:
        return sum(1 for e in review.snapshot("message") if e["outcome"] == "valid")

    try:
        assert wait_for(lambda: bool(review.snapshot("subscribed")), timeout=20), review.stop()
        daemon = start_daemon(*args)
        processes.append(daemon)
        assert wait_for(lambda: len(subscriber.snapshot()) >= 10, timeout=30)
        broker.stop()
        outage_started = len(read_jsonl(local))
        # the daemon keeps detecting; QoS 1 messages wait in the outbox: an outage of 30 frames at least (3 s at the
        # clip's 10 fps when the machine is idle, longer when it is loaded), bounded
        wait_for(lambda: len(read_jsonl(local)) - outage_started >= 30, timeout=15.0)
        produced_during_outage = len(read_jsonl(local)) - outage_started
        broker.start()
        assert subscriber.wait_connected(10)
        time.sleep(1.0)
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=10)
        err = daemon.stderr.read() if daemon.stderr else ""
        assert code == 0, err
        published = detections_of(read_jsonl(local))
        got = wait_for(lambda: len(subscriber.snapshot()) >= len(published), timeout=10)
        seen = [m["seq"] for m in subscriber.snapshot()]
        assert got, f"{len(published)} published, {len(seen)} received: {seen}\n{err[-3000:]}"
        assert wait_for(lambda: reviewed() >= len(published), timeout=10), f"{len(published)} published, {reviewed()}"
        time.sleep(0.3)  # a late extra copy would show up here
        received = subscriber.snapshot()
        review_code, review_err = review.stop()
        assert review_code == 0, review_err
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        subscriber.close()
    assert produced_during_outage >= 30  # the outage really held messages back
    sent = [m["seq"] for m in published]
    assert sent == list(range(1, len(sent) + 1))

    # edge-runtime review: what the daemon published, in order, none twice ...
    rows = list(read_rows(db))
    recorded = [json.loads(row.payload or b"null") for row in rows]
    assert {m["session"] for m in recorded} == {published[0]["session"]}
    assert [m["seq"] for row, m in zip(rows, recorded) if row.valid] == sent
    # ... and every other delivery recorded as a duplicate, counted as one
    assert {row.outcome for row in rows if not row.valid} <= {"duplicate"}
    summary = review.snapshot("summary")[-1]
    assert (summary["valid"], summary["rejected"]["duplicate"]) == (len(sent), len(rows) - len(sent))

    # What MQTT itself delivers, to the raw subscriber and to the review's session: every message in order, and
    # maybe one again, right after the first copy: the one the broker had sent when it stopped, without the
    # subscriber's PUBACK. At most that one: the daemon sends one at a time, 40 ms apart, and a loopback PUBACK
    # takes far less. So the review's duplicates above are exactly the repeats here.
    for name, seqs in (("raw subscriber", [m["seq"] for m in received]), ("review", [m["seq"] for m in recorded])):
        repeats = [b for a, b in zip(seqs, seqs[1:]) if a == b]
        assert len(repeats) <= 1, f"{name}: more than the in-flight message repeated: {repeats}"
        assert [seq for index, seq in enumerate(seqs) if index == 0 or seq != seqs[index - 1]] == sent, name


def test_sigkill_restart_delivers_what_the_outbox_held(broker: Broker, model_dir: Path, video: Path, tmp_path: Path):
    subscriber = Subscriber(broker.port, DETECTIONS, client_id="kill-test")
    outbox = tmp_path / "ob.sqlite3"
    local = tmp_path / "local.jsonl"
    broker.stop()  # the first run never reaches the broker: everything stays in its outbox
    args = mqtt_args(model_dir, video, broker.port, outbox, "--loop", "--max-fps", "50")
    first = start_daemon(*args, "--publish", "file", "--set", f"publish.file.path={json.dumps(str(local))}")
    try:
        assert wait_for(lambda: len(read_jsonl(local)) >= 25, timeout=30)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    written = detections_of(read_jsonl(local))
    held = Outbox(outbox, 1000, 10_000_000)
    held_seqs = [json.loads(item.payload)["seq"] for item in held.peek(1000)]
    held.close()
    assert held_seqs[: len(written)] == [m["seq"] for m in written]  # committed before the file line
    session = written[0]["session"]

    broker.start()
    assert subscriber.wait_connected(10)
    second = start_daemon(*mqtt_args(model_dir, video, broker.port, outbox), "--status-interval", "0")
    try:
        _, err = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, err
    assert wait_for(lambda: len(subscriber.snapshot()) >= len(held_seqs) + 20, timeout=15)
    time.sleep(0.3)
    received = subscriber.snapshot()
    subscriber.close()
    first_run = [m["seq"] for m in received if m["session"] == session]
    second_run = [m["seq"] for m in received if m["session"] != session]
    assert first_run == held_seqs == list(range(1, len(held_seqs) + 1))
    assert second_run == list(range(1, 21))
    assert received[: len(first_run)] == [m for m in received if m["session"] == session]  # old ones first


def test_last_will_announces_offline(broker: Broker, model_dir: Path, video: Path, tmp_path: Path):
    subscriber = Subscriber(broker.port, f"edge/{THING}/status", client_id="will-test")
    args = mqtt_args(model_dir, video, broker.port, tmp_path / "ob.sqlite3", "--loop", "--max-fps", "10")
    daemon = start_daemon(*args, "--status-interval", "0.2", "--set", "publish.mqtt.keep_alive_s=5")
    try:
        assert wait_for(lambda: any(m["state"] == "running" for m in subscriber.snapshot()), timeout=30)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        assert wait_for(lambda: subscriber.snapshot()[-1]["state"] == "offline", timeout=15)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        subscriber.close()
    will = subscriber.snapshot()[-1]
    validate_message(will)
    assert will["device"] == THING


def test_outbox_bounds_drop_oldest_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    box = Outbox(path, max_messages=5, max_bytes=10_000)
    for index in range(8):
        box.put("t", json.dumps({"seq": index}).encode())
    assert box.stats() == {"depth": 5, "bytes": sum(len(json.dumps({"seq": i})) for i in range(3, 8)), "dropped": 3}
    first = box.peek(2)
    box.ack(first[0].id)
    box.close()
    again = Outbox(path, max_messages=5, max_bytes=60)
    assert [json.loads(item.payload)["seq"] for item in again.peek(10)] == [4, 5, 6, 7]
    again.put("t", b"x" * 30)  # over 60 bytes: the oldest go
    stats = again.stats()
    assert stats["bytes"] <= 60 and stats["dropped"] > 3
    assert again.peek(10)[-1].payload == b"x" * 30
    again.close()


def test_mutual_tls_publish(model_dir: Path, video: Path, tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    tls_port = free_port()
    broker = Broker(
        require_mosquitto(),
        tmp_path / "broker",
        free_port(),
        f"listener {tls_port} 127.0.0.1\ncafile {tls['ca']}\ncertfile {tls['server']}\nkeyfile {tls['server-key']}\n"
        "require_certificate true\n",
    )
    broker.start()
    subscriber = Subscriber(broker.port, DETECTIONS, client_id="tls-test")
    try:
        args = mqtt_args(model_dir, video, tls_port, tmp_path / "ob.sqlite3", "--set", 'publish.mqtt.host="127.0.0.1"')
        for key in ("cert", "key", "ca"):
            name = {"cert": "device", "key": "device-key", "ca": "ca"}[key]
            args += ["--set", f"publish.mqtt.tls.{key}={json.dumps(str(tls[name]))}"]
        daemon = start_daemon(*args)
        _, err = daemon.communicate(timeout=60)
        assert daemon.returncode == 0, err
        assert wait_for(lambda: len(subscriber.snapshot()) >= 20, timeout=10), err
        assert [m["seq"] for m in subscriber.snapshot()] == list(range(1, 21))

        # without the device certificate the broker refuses: the messages stay in the outbox, nothing is lost
        plain = start_daemon(*mqtt_args(model_dir, video, tls_port, tmp_path / "ob2.sqlite3"))
        _, err = plain.communicate(timeout=60)
        assert plain.returncode == 0, err
        held = Outbox(tmp_path / "ob2.sqlite3", 1000, 10_000_000)
        assert held.depth == 20
        held.close()
    finally:
        subscriber.close()
        broker.stop()


def test_missing_tls_file_is_one_line(model_dir: Path, video: Path, tmp_path: Path) -> None:
    args = mqtt_args(model_dir, video, free_port(), tmp_path / "ob.sqlite3")
    args += ["--set", f"publish.mqtt.tls={json.dumps({'cert': str(tmp_path / 'none.pem'), 'key': 'k.pem'})}"]
    daemon = start_daemon(*args)
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 2
    assert err.strip().splitlines() == [
        f"edge-runtime: error: publish.mqtt.tls.cert: file not found (got {str(tmp_path / 'none.pem')!r})"
    ]
