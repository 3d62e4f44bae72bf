"""Recorded messages/s of ``edge-runtime review``: SQLite vs PostgreSQL, one reviewer vs several, in one run.

    python -m benchmarks.review_store [--messages 20000,100000] [--reviewers 1,2] [--stores sqlite,postgresql]

Starts mosquitto and a PostgreSQL server (initdb in a temp folder, PostgreSQL's default durability: fsync on) on
loopback. For each store and reviewer count, that many ``edge-runtime review --share bench-ROW --record TARGET``
processes subscribe to ``edge/#`` as one MQTT 5 shared-subscription group of its own (a stopped member's kept
session would still take its share), each with its own client id and a persistent session (what a reviewer without
``--share`` gets by default), so a reconnect loses nothing (one reviewer: the same, alone in the group), then one
client publishes ``--messages`` detection messages (~700 bytes, QoS 1, up to 500 in flight, each on its device's own
topic ``edge/cam-N/detections``). The time runs from the first publish until the recording holds every message, or
until it has grown no more for 10 s (its highest id polled every 50 ms, then its rows counted); recorded messages/s
is ``recorded / time``, ``missing`` is what the broker accepted but the recording never got, ``dropped`` what the
reviewers counted and logged as dropped (the reviewer fell behind: its queue was full, or the broker's own queue
for it was), ``cpu µs/msg`` the reviewers' CPU time (user + system, all threads, from /proc) over that time per
recorded message: on a shared machine the rate one free core would allow is 1e6 / it. The publisher's own rate,
without recording, is measured first: it is the ceiling of every row. SQLite with several reviewers means several
writers of one file (WAL, one writer at a time). Ratios are to the first row of the same round. Needs mosquitto,
PostgreSQL (apt) and the console extra (psycopg).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.mosquitto import free_port, start_mosquitto
from tests.support.postgres import Postgres, find_bin_dir

REPO = Path(__file__).resolve().parents[1]
IN_FLIGHT = 500
TIMEOUT_S = 300.0
STALL_S = 10.0


def message(seq: int, session: str) -> bytes:
    boxes = [{"label": "box", "class_id": 0, "score": 0.9, "box": [10.0, 20.0, 110.0, 220.0],
              "box_normalized": [0.0156, 0.0417, 0.1719, 0.4583]}] * 3  # fmt: skip
    return json.dumps({
        "schema": "edge-runtime/detection/1", "device": f"cam-{seq % 10}", "session": session, "source": "rtsp://cam",
        "seq": seq, "captured_at": "2026-12-02T00:00:00.000Z", "published_at": "2026-12-02T00:00:00.010Z",
        "model": {"name": "demo", "version": "1"},
        "timings_ms": {"preprocess": 1.0, "inference": 12.5, "postprocess": 0.5, "total": 14.0},
        "image": {"width": 640, "height": 480}, "detections": boxes, "truncated": False,
    }).encode()  # fmt: skip


class Publisher:
    def __init__(self, port: int) -> None:
        from awscrt import mqtt5

        self.connected = threading.Event()
        self.stopped = threading.Event()
        options = mqtt5.ClientOptions(host_name="127.0.0.1", port=port)
        options.connect_options = mqtt5.ConnectPacket(client_id="bench-publisher", keep_alive_interval_sec=30)
        options.on_lifecycle_event_connection_success_fn = lambda _data: self.connected.set()
        options.on_lifecycle_event_stopped_fn = lambda _data: self.stopped.set()
        self.client: Any = mqtt5.Client(options)
        self.client.start()
        if not self.connected.wait(10):
            raise SystemExit("the benchmark publisher could not connect")

    def publish(self, items: list[tuple[str, bytes]]) -> float:
        """Seconds to publish ``(topic, payload)`` items with at most IN_FLIGHT unacknowledged."""
        from awscrt import mqtt5

        started = time.perf_counter()
        pending: list[Any] = []
        for topic, payload in items:
            pending.append(self.client.publish(mqtt5.PublishPacket(topic=topic, payload=payload,
                                                                   qos=mqtt5.QoS.AT_LEAST_ONCE)))  # fmt: skip
            if len(pending) >= IN_FLIGHT:
                pending.pop(0).result(30)
        for future in pending:
            future.result(30)
        return time.perf_counter() - started

    def close(self) -> None:
        from awscrt import mqtt5

        self.client.stop(mqtt5.DisconnectPacket())
        self.stopped.wait(5)


def count_rows(target: str, exact: bool = True) -> int:
    """The rows recorded: ``count(*)`` when ``exact``, else the highest id, which is the count while nothing failed
    (ids count up from 1 in an empty table) and costs a look at the index's end, where ``count(*)`` reads the
    whole table: polled every 50 ms, it took a core's share from the recorder and, holding SQLite readers
    open, kept the WAL from being checkpointed, so long bursts measured the poll more than the console."""
    query = "SELECT count(*) FROM messages" if exact else "SELECT max(id) FROM messages"
    try:
        if target.startswith("postgresql://"):
            import psycopg

            with psycopg.connect(target, connect_timeout=5) as db:
                row = db.execute(query).fetchone()
        else:
            with sqlite3.connect(target, timeout=5) as db:
                row = db.execute(query).fetchone()
        return int(row[0] or 0) if row else 0
    except Exception:  # not created yet
        return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(port: int, target: str, reviewers: int, messages: int, publisher: Publisher, tag: str,
             folder: Path) -> tuple[float, int, int, float]:  # fmt: skip
    """Seconds until the last row arrived, the rows recorded, the drops the reviewers counted themselves, and the
    reviewers' CPU seconds meanwhile."""
    processes = []
    outs = []
    errs = []
    for index in range(reviewers):
        out = folder / f"{tag}-{index}.out"
        outs.append(out)
        errs.append(folder / f"{tag}-{index}.err")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "edge_runtime", "review", "--share", f"bench-{tag}", "--topic", "edge/#",
             "--mqtt-port", str(port), "--record", target, "--duration", str(TIMEOUT_S + 30),
             "--max-payload", "65536", "--client-id", f"bench-{tag}-{index}", "--session-expiry", "60"],
            stdout=out.open("w"), stderr=errs[-1].open("w"), cwd=REPO,
        ))  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not all(out.stat().st_size > 0 for out in outs):  # each printed its first table: subscribed
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise SystemExit(f"{tag}: a reviewer did not start")
            time.sleep(0.05)
        items = [(f"edge/cam-{seq % 10}/detections", message(seq, tag)) for seq in range(1, messages + 1)]
        cpu_before = sum(cpu_s(process.pid) for process in processes)
        started = time.perf_counter()
        publisher.publish(items)
        deadline = time.monotonic() + TIMEOUT_S
        rows, last_row_at, last_change = 0, time.perf_counter(), time.monotonic()
        while rows < messages and time.monotonic() < deadline and time.monotonic() - last_change < STALL_S:
            time.sleep(0.05)
            now_rows = count_rows(target, exact=False)
            if now_rows != rows:
                rows, last_row_at, last_change = now_rows, time.perf_counter(), time.monotonic()
        rows = count_rows(target)  # what the recording holds (the highest id could run ahead of a gap)
        cpu = sum(cpu_s(process.pid) for process in processes) - cpu_before
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    counted = sum(max([int(n) for n in re.findall(r"(\d+) messages dropped", err.read_text())] or [0]) for err in errs)
    return last_row_at - started, rows, counted, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", default="20000,100000", help="comma-separated message counts per row")
    parser.add_argument("--reviewers", default="1,2", help="comma-separated reviewer counts (1,2)")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    counts = [int(text) for text in args.reviewers.split(",")]
    stores = args.stores.split(",")
    pg_bin = find_bin_dir()
    if "postgresql" in stores and pg_bin is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install -y postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="review-bench-"))
    broker, port = start_mosquitto(folder, "max_inflight_messages 1000\n")
    postgres = None
    try:
        if "postgresql" in stores:
            assert pg_bin is not None
            postgres = Postgres(pg_bin, folder / "pg", free_port(), durable=True)
            postgres.start()
        publisher = Publisher(port)
        sizes = [int(text) for text in args.messages.split(",")]
        alone = 20_000
        ceiling = alone / publisher.publish([("bench/nobody", message(i, "x")) for i in range(alone)])
        print(f"publisher alone (nothing subscribed): {ceiling:,.0f} messages/s")
        print(f"{'round':>5} {'messages':>8} {'store':<11} {'reviewers':>9} {'seconds':>8} {'recorded/s':>11}"
              f" {'missing':>8} {'dropped':>8} {'cpu µs/msg':>10} {'ratio':>6}")  # fmt: skip
        for round_, messages in ((r, m) for r in range(1, args.rounds + 1) for m in sizes):
            first = None
            for store in stores:
                for reviewers in counts:
                    tag = f"r{round_}-{messages}-{store}-{reviewers}"
                    if store == "sqlite":
                        target = str(folder / f"{tag}.db")
                    else:
                        assert postgres is not None
                        import psycopg

                        with psycopg.connect(postgres.url, autocommit=True) as db:
                            db.execute(f'CREATE DATABASE "{tag}"')
                        target = postgres.url.rsplit("/", 1)[0] + "/" + tag
                    seconds, rows, counted, cpu = run_case(port, target, reviewers, messages, publisher, tag, folder)
                    rate = rows / seconds
                    first = first or rate
                    per_message = cpu / max(rows, 1) * 1e6
                    print(f"{round_:>5} {messages:>8} {store:<11} {reviewers:>9} {seconds:>8.2f} {rate:>11,.0f}"
                          f" {messages - rows:>8} {counted:>8} {per_message:>10,.0f} {rate / first:>6.2f}",
                          flush=True)  # fmt: skip
        publisher.close()
    finally:
        if postgres is not None:
            postgres.stop()
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
