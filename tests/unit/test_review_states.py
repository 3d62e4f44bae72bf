"""Honest states: starting is not online, a crash (last will) is not a clean stop, a resent last will does not
move "last seen"; and a recording whose database goes away keeps its rows and catches up (review.recording)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Optional

from edge_runtime.errors import ReviewError
from edge_runtime.review.fleet import Fleet
from edge_runtime.review.recording import Resilient
from edge_runtime.review.session import Limits, ReviewSession
from edge_runtime.review.store import Recorder, read_rows
from edge_runtime.review.subscriber import ListSubscriber
from edge_runtime.review.validation import Checked
from edge_runtime.review.view import View
from tests.unit.test_review import T0, checked, detection, raw, running, status


def source(state: str) -> dict[str, Any]:
    return {"uri": "rtsp://cam", "state": state, "reconnects": 0}


def test_a_device_whose_stream_never_opened_is_starting_not_online() -> None:
    fleet = Fleet()
    fleet.add(checked(status("cam-1", "running", source=source("connecting")), T0))
    assert fleet.rows(T0)[0].state == "starting"
    fleet.add(checked(status("cam-1", "running", source=source("streaming")), T0 + 1))
    assert fleet.rows(T0 + 1)[0].state == "online"
    fleet.add(checked(status("cam-1", "running", source=source("reconnecting")), T0 + 2))
    assert fleet.rows(T0 + 2)[0].state == "starting"


def test_crash_and_clean_stop_are_told_apart() -> None:
    fleet = Fleet()
    fleet.add(checked(running("crashed"), T0))
    fleet.add(checked(running("stopped"), T0))
    fleet.add(checked(status("crashed", "offline"), T0 + 1))  # the broker's last will
    fleet.add(checked(status("stopped", "stopped"), T0 + 1))  # the daemon's own final status
    assert {r.device: r.state for r in fleet.rows(T0 + 2)} == {"crashed": "offline", "stopped": "stopped"}


def test_a_resent_last_will_does_not_move_last_seen() -> None:
    fleet = Fleet()
    fleet.add(checked(running("cam-1"), T0))
    will = status("cam-1", "offline")
    fleet.add(checked(will, T0 + 5))
    fleet.add(checked(will, T0 + 500))  # retained: delivered again on a resubscribe
    assert fleet.rows(T0 + 600)[0].last_seen == T0
    fresh = Fleet()  # a console started after the crash meets only the will: its time is the will's own
    fresh.add(checked(dict(will, at="2027-01-15T07:00:00.000Z"), T0 + 10))
    assert fresh.rows(T0 + 10)[0].last_seen == T0 - 3600


class Flaky:
    """A store that refuses while ``down`` is set, as a restarting database does."""

    def __init__(self) -> None:
        self.down = True
        self.rows: list[Checked] = []
        self.written = 0
        self.closed = False

    def append(self, items: Any, payloads: Any) -> None:
        if self.down:
            raise ReviewError("db: cannot append (terminating connection due to administrator command)")
        items = list(items)
        self.rows += items
        self.written += len(items)

    def close(self) -> None:
        self.closed = True


def test_rows_wait_through_an_outage_with_backoff_and_are_written_in_order() -> None:
    now = [0.0]
    store = Flaky()
    recording = Resilient(store, clock=lambda: now[0], backoff_s=(1.0, 4.0))
    items = [checked(detection("cam-1", i, []), T0 + i) for i in range(1, 7)]
    recording.append(items[:2], [None, None])
    health = recording.health()
    assert (health["state"], health["pending"]) == ("retrying", 2) and "terminating" in health["error"]
    recording.append(items[2:4], [None, None])  # within the backoff: not even tried
    assert store.written == 0 and recording.failures == 1
    now[0] = 1.0
    recording.flush()
    assert recording.failures == 2  # tried again, still down; the next try waits 2 s, then 4, 4, ...
    store.down = False
    now[0] = 2.5
    assert not recording.flush()
    now[0] = 3.0
    recording.append(items[4:], [None, None])
    assert recording.health()["state"] == "ok" and store.written == 6
    assert [r.message["seq"] for r in store.rows if r.message] == [1, 2, 3, 4, 5, 6]


def test_beyond_max_pending_the_oldest_rows_are_dropped_and_counted() -> None:
    store = Flaky()
    recording = Resilient(store, max_pending=3, clock=lambda: 0.0)
    recording.append([checked(detection("cam-1", i, []), T0) for i in range(1, 6)], [None] * 5)
    assert recording.health()["dropped"] == 2 and recording.pending == 3
    recording.close(timeout_s=0.1)
    assert recording.health()["dropped"] == 5 and store.closed  # what could never be written is counted, loudly


def test_a_locked_sqlite_recording_is_retried_not_fatal(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    recorder = Recorder(db)
    locker = sqlite3.connect(str(db), check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds the file past the busy timeout
    messages = [("edge/cam-1/detections", raw(detection("cam-1", i, []))) for i in range(1, 4)]
    release = threading.Timer(1.5, lambda: (locker.rollback(), locker.close()))  # type: ignore[func-returns-value]
    fleet = Fleet()
    session = ReviewSession(ListSubscriber(messages), fleet, View(), threading.Event(), recorder=recorder,
                            limits=Limits(duration_s=4.0, close_timeout_s=3.0))  # fmt: skip
    release.start()
    try:
        assert session.run() == 3
    finally:
        release.join()
    assert [r.outcome for r in read_rows(db)] == ["valid"] * 3
    health: Optional[dict[str, Any]] = fleet.summary()["health"]["recording"]
    assert health is not None and health["state"] == "ok" and health["written"] == 3
    assert session.recorder is not None and session.recorder.failures >= 1  # it was refused, then caught up


def test_the_fleet_is_capped_and_the_long_silent_make_room() -> None:
    fleet = Fleet(max_devices=2, evict_after_s=600)
    fleet.add(checked(running("old"), T0))
    fleet.add(checked(running("busy"), T0 + 500))
    fleet.add(checked(running("new-1"), T0 + 550))  # nobody silent for 600 s: not tracked, counted
    assert [r.device for r in fleet.rows(T0 + 550)] == ["busy", "old"]
    assert fleet.summary()["rejected"]["fleet_full"] == 1 and "fleet_full" in fleet.summary()["problems"][-1]
    fleet.add(checked(running("new-2"), T0 + 700))  # "old" silent 700 s: it makes room
    assert [r.device for r in fleet.rows(T0 + 700)] == ["busy", "new-2"] and fleet.summary()["evicted"] == 1


def test_ten_thousand_distinct_ids_stay_within_the_cap() -> None:
    fleet = Fleet(max_devices=100)
    for index in range(10_000):
        fleet.add(checked(running(f"id-{index}"), T0 + index * 0.01))
    assert len(fleet.rows(T0 + 100)) == 100 and fleet.summary()["rejected"]["fleet_full"] == 9_900


def test_live_updates_carry_only_what_changed() -> None:
    from edge_runtime.review.live import LiveView
    from edge_runtime.review.snapshots import SnapshotMatcher

    fleet, live = Fleet(max_devices=2, evict_after_s=60), LiveView(SnapshotMatcher())
    fleet.add(checked(running("cam-1"), T0))
    fleet.add(checked(running("cam-2"), T0))
    live.tick(fleet, T0)
    first = live.version
    assert [row["device"] for row in live.fleet()["devices"]] == ["cam-1", "cam-2"]
    fleet.add(checked(detection("cam-2", 1, [("cat", 0.9)]), T0 + 1))
    live.tick(fleet, T0 + 1)
    change = live.changes(first)
    assert [row["device"] for row in change["rows"]] == ["cam-2"] and change["removed"] == []
    second = live.version
    fleet.add(checked(running("cam-3"), T0 + 100))  # cam-1 silent 100 s: evicted for cam-3
    live.tick(fleet, T0 + 100)
    change = live.changes(second)
    assert change["removed"] == ["cam-1"] and "cam-3" in [row["device"] for row in change["rows"]]
    assert live.changes(live.version)["rows"] == []
