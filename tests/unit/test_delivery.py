"""The durable delivery path and its outbox under failures a real far end produces (issue 14, review findings).

A fake transport stands in for MQTT or IPC here; the real ones are in tests/integration.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge_runtime.greengrass.nucleus import IpcConnection, wait
from edge_runtime.publishers.delivery import MAX_FAILED_SENDS, DurableDelivery, Transport
from edge_runtime.publishers.outbox import Outbox, OutboxItem
from tests.support.waiting import wait_until


class FakeTransport(Transport):
    """Acknowledges every message at once, except those whose payload starts with ``bad``: their send fails (as a
    request the far end can never take, e.g. above its packet size, fails)."""

    name = "fake"

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self._lock = threading.Lock()

    def ready(self) -> bool:
        return True

    def window(self) -> int:
        return 4

    def send(self, item: OutboxItem) -> concurrent.futures.Future[Any]:
        with self._lock:
            self.sent.append(item.payload)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if item.payload.startswith(b"bad"):
            future.set_exception(RuntimeError("AWS_ERROR_SOMETHING_UNSENDABLE"))
        else:
            future.set_result(True)
        return future




def test_an_unsendable_message_is_dropped_after_bounded_retries_and_never_blocks_the_rest(tmp_path: Path) -> None:
    transport = FakeTransport()
    delivery = DurableDelivery(Outbox(tmp_path / "ob.sqlite3", 100, 10**6), transport, ack_timeout_s=5.0)
    try:
        delivery.put("t", b"bad: never sendable")
        for seq in range(10):
            delivery.put("t", f"good {seq}".encode())
        good = [f"good {seq}".encode() for seq in range(10)]
        assert wait_until(lambda: all(payload in transport.sent for payload in good), 5)  # not held up behind it
        assert any(problem.reason.startswith("fake: sends fail") for problem in delivery.problems())
        assert wait_until(lambda: delivery.stats()["depth"] == 0, 20)  # backed off, then dropped
        assert transport.sent.count(b"bad: never sendable") == MAX_FAILED_SENDS  # bounded: no busy loop
        assert delivery.stats()["dropped"] == 1
        (problem,) = delivery.problems()
        assert f"could not be sent {MAX_FAILED_SENDS} times" in problem.reason
    finally:
        delivery.close(1.0)
    reopened = Outbox(tmp_path / "ob.sqlite3", 100, 10**6)
    assert reopened.stats()["dropped"] == 1  # the count survives a restart
    reopened.close()


def test_drops_are_all_logged_by_close_even_after_the_last_line(tmp_path: Path, caplog: Any) -> None:
    outbox = Outbox(tmp_path / "ob.sqlite3", max_messages=2, max_bytes=10**6)
    with caplog.at_level(logging.WARNING, logger="edge_runtime.publishers.outbox"):
        for seq in range(12):
            outbox.put("t", f"m{seq}".encode())
        outbox.close()
    logged = [int(r.getMessage().split(": ")[1].split(" ")[0]) for r in caplog.records if "dropped" in r.getMessage()]
    assert sum(logged) == 10  # the first drop at once, the other nine when the outbox closed


def test_a_corrupt_outbox_is_moved_aside_and_a_fresh_one_used(tmp_path: Path, caplog: Any) -> None:
    path = tmp_path / "ob.sqlite3"
    path.write_bytes(os.urandom(8192))  # a torn write after power loss
    with caplog.at_level(logging.ERROR):
        outbox = Outbox(path, 100, 10**6)
    try:
        assert outbox.put("t", b"x") > 0
        problem = outbox.problem()
        assert problem is not None and "the outbox file was corrupt" in problem[0]
        (aside,) = tmp_path.glob("ob.sqlite3.corrupt-*")
        assert aside.stat().st_size == 8192 and aside.name in caplog.text
    finally:
        outbox.close()


def test_a_reconnect_finishing_after_close_closes_its_client() -> None:
    connected = threading.Event()
    release = threading.Event()

    class Client:
        def __init__(self) -> None:
            self.closed = 0

        def close(self, executor_wait: bool = False) -> None:
            self.closed += 1

    old, new = Client(), Client()

    def factory() -> Client:
        connected.set()
        release.wait(5)  # the nucleus answers only after the daemon was told to stop
        return new

    connection = IpcConnection(old, factory=factory, initial_s=0.01, max_s=0.01)
    connection.lost(ConnectionError("closed"))
    assert connected.wait(5)
    closer = threading.Thread(target=connection.close)
    closer.start()
    time.sleep(0.1)
    release.set()
    closer.join(5)
    assert wait_until(lambda: new.closed == 1, 5) and old.closed == 1
    assert connection.client is old  # the late client was never installed


def test_an_ipc_wait_ends_when_the_stop_event_is_set() -> None:
    from edge_runtime.errors import PublishError

    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(PublishError, match="UpdateState RUNNING abandoned: stopping"):
        wait(concurrent.futures.Future(), 10.0, "UpdateState RUNNING", stop)  # a frozen nucleus never answers
    assert time.monotonic() - started < 1.0


def test_the_filesystem_reserve_is_a_setting(tmp_path: Path) -> None:
    from edge_runtime.config import validate

    assert validate({}).publish.outbox.reserve_bytes == 64 << 10
    outbox = Outbox(tmp_path / "ob.sqlite3", 100, 10**6, reserve_bytes=10**15)  # more than any disk has free
    try:
        for seq in range(3):
            assert outbox.put("t", f"m{seq}".encode()) > 0  # stored, each in the place of the one before
        assert outbox.stats()["depth"] == 1 and outbox.stats()["dropped"] == 2
        problem = outbox.problem()
        assert problem is not None and "disk almost full" in problem[0]
        assert [item.payload for item in outbox.peek(5)] == [b"m2"]  # the newest kept: oldest first out
    finally:
        outbox.close()


def test_a_drop_warning_ends_on_time_though_the_wall_clock_steps_back(tmp_path: Path) -> None:
    """Intervals run on the monotonic clock: a wall clock stepped back 3600 s (NTP, an RTC-less Pi getting its time)
    kept the drop warning, timed with time.time(), for an hour; the `since` shown stays wall time."""
    mono, wall = [1000.0], [1_800_000_000.0]
    outbox = Outbox(tmp_path / "ob.sqlite3", max_messages=1, max_bytes=10**6,
                    clock=lambda: mono[0], wall_clock=lambda: wall[0])  # fmt: skip
    try:
        outbox.put("t", b"m1")
        outbox.put("t", b"m2")  # beyond max_messages: the oldest dropped
        problem = outbox.problem()
        assert problem is not None and problem[1] == 1_800_000_000.0  # since: wall time, for the status message
        wall[0] -= 3600.0
        mono[0] += 30.0
        assert outbox.problem() is not None  # still within the 60 s it is shown for
        mono[0] += 31.0
        assert outbox.problem() is None  # 61 s later, whatever the wall clock says
    finally:
        outbox.close()


def test_a_message_dropped_at_the_bound_while_in_flight_that_arrives_is_not_counted_lost(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "ob.sqlite3", max_messages=2, max_bytes=10**6)
    try:
        first = outbox.put("t", b"m1")
        (in_flight,) = outbox.peek(1)  # sent, its PUBACK not back yet
        outbox.put("t", b"m2")
        outbox.put("t", b"m3")  # beyond the bound: m1 dropped while in flight
        assert outbox.stats()["dropped"] == 1
        outbox.ack(in_flight.id)  # ... and then its PUBACK came: it arrived
        assert in_flight.id == first and outbox.stats() == {"depth": 2, "bytes": 4, "dropped": 0}
        outbox.ack(outbox.peek(1)[0].id)  # an ordinary delivery changes no count
        assert outbox.stats() == {"depth": 1, "bytes": 2, "dropped": 0}
    finally:
        outbox.close()


def test_a_drained_outbox_gives_its_disk_back_by_close(tmp_path: Path) -> None:
    """Drained and closed within SHRINK_INTERVAL_S (a daemon stopped soon after an outage), the files shrink too;
    so does a file made without auto_vacuum (an earlier version's)."""
    import sqlite3

    path = tmp_path / "ob.sqlite3"
    from edge_runtime.publishers.outbox import SCHEMA

    legacy = sqlite3.connect(path)  # an earlier version's file: its tables made with auto_vacuum off
    legacy.execute("PRAGMA journal_mode=WAL")
    legacy.executescript(SCHEMA)
    legacy.close()
    outbox = Outbox(path, max_messages=100_000, max_bytes=10**8)
    for _ in range(2):  # two rounds: the second drain comes within SHRINK_INTERVAL_S of the first
        for seq in range(400):
            outbox.put("t", os.urandom(10_000) + str(seq).encode())
        while outbox.stats()["depth"]:
            for item in outbox.peek(100):
                outbox.ack(item.id)
    outbox.close()
    size = sum(path.with_name(path.name + suffix).stat().st_size
               for suffix in ("", "-wal") if path.with_name(path.name + suffix).exists())  # fmt: skip
    assert size < 200_000, size  # 4 MB went through it
