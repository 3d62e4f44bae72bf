"""The on-disk outbox: QoS 1 messages wait here, in order, until the broker acknowledges them.

"Never lose a detection" across broker outages and daemon restarts means a message is written to disk before
the pipeline moves on, and removed only after its PUBACK. sqlite in WAL mode gives that with one file and
atomic commits: a SIGKILL between ``put`` and ``ack`` leaves the message in the file for the next run (it is
then sent again: at least once, as QoS 1 promises). The outbox is bounded in messages and bytes; beyond either
bound the oldest messages are dropped and counted (the count persists too), so a long outage cannot fill the
device's disk.

A full disk (or any storage error) never kills the sender nor the caller: ``put`` then drops the oldest message to
make room (or, when even that cannot be written, the new one), counts and logs it; a delivered message whose DELETE
fails is remembered as delivered (it is not sent again) and deleted once writes succeed again; reads that fail return
nothing for now. :meth:`Outbox.problem` says what is wrong, for the status message's ``degraded`` state.
When the outbox drains, the WAL is checkpointed and truncated and freed pages are returned (``auto_vacuum``), so
the files shrink back after an outage instead of keeping their largest size.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge_runtime.errors import PublishError
from edge_runtime.publishers.base import path_problem
from edge_runtime.publishers.outbox_lock import OutboxLock

log = logging.getLogger(__name__)
SHRINK_INTERVAL_S = 10.0  # a drained outbox gives its space back at most this often
WAL_LIMIT_BYTES = 256 << 10  # after any checkpoint SQLite truncates the WAL to this (journal_size_limit)
WAL_CHECKPOINT_PAGES = 16  # fold the WAL into the file every 16 pages (64 KB), not SQLite's 1000 (4 MB)
# By default the outbox never takes the last RESERVE_BYTES of its filesystem (publish.outbox.reserve_bytes): beyond that
# it drops its oldest message to store a
# new one. Measured on a 256 KB tmpfs without it: the WAL took the whole disk, and then neither a delete (it needs WAL
# room too) nor a checkpoint (it needs room in the file) could run, so a full outbox could never drain.
RESERVE_BYTES = 64 << 10
ERROR_LOG_INTERVAL_S = 30.0  # a storage error is logged at most this often (with how many happened meanwhile)
RECLAIM_INTERVAL_S = 1.0  # on a full disk, the WAL's space is taken back at most this often

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
"""


@dataclass(frozen=True)
class OutboxItem:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    """A bounded FIFO of (topic, payload) in a sqlite file; safe to share between threads."""

    def __init__(
        self,
        path: str | Path,
        max_messages: int,
        max_bytes: int,
        reserve_bytes: int = RESERVE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.clock = clock  # every interval (a wall clock stepped back 3600 s kept a drop warning for an hour)
        self.wall_clock = wall_clock  # only for the `since` a status shows
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self._lock = threading.Lock()
        moved_aside: str | None = None
        self._owner = OutboxLock(self.path)  # one daemon per outbox, for as long as this one has it open
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._owner.acquire()
            try:
                self._db, depth, size = self._open()
            except sqlite3.DatabaseError as error:
                if not _is_corrupt(error):
                    raise
                # a torn write (power lost on an SD card): keep the file for a post-mortem, start afresh, say so
                moved_aside = self._move_aside(error)
                self._db, depth, size = self._open()
        except OSError as error:
            self._owner.release()
            raise PublishError(f"{self.path}: cannot use as the outbox ({path_problem(self.path, error)})") from None
        except sqlite3.Error as error:
            self._owner.release()
            raise PublishError(f"{self.path}: cannot use as the outbox ({error})") from None
        self._depth = int(depth)
        self._bytes = int(size)
        self._delivered: set[int] = set()  # acknowledged, but the DELETE failed (disk full): never resent
        self._errors = 0
        self._last_error_log = -ERROR_LOG_INTERVAL_S
        self._last_shrink = -SHRINK_INTERVAL_S
        self._last_reclaim = -RECLAIM_INTERVAL_S
        self._dropped_seen = 0
        self._problem: tuple[str, float] | None = None  # (reason, since): a storage error not yet recovered from
        self._unstored_drops = 0  # dropped while even the counter could not be written
        self._last_drop: tuple[str, float, float] | None = None  # (why, wall time, clock) of the latest drop
        self._drops_unlogged = 0
        self._last_drop_log = -ERROR_LOG_INTERVAL_S
        if moved_aside is not None:
            self._last_drop = (moved_aside, self.wall_clock(), self.clock())

    def _open(self) -> tuple[sqlite3.Connection, int, int]:
        """The connection, set up (WAL, bounds), and the depth and bytes the file holds."""
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file: freed pages can shrink it
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            db.execute("PRAGMA synchronous=NORMAL")  # durable against process death; fsync per checkpoint
            db.executescript(SCHEMA)
            depth, size = db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages").fetchone()
        except BaseException:
            db.close()
            raise
        return db, int(depth), int(size)

    def _move_aside(self, error: sqlite3.Error) -> str:
        """Rename a corrupt outbox (and its WAL and shared-memory files) to ``*.corrupt-<UTC time>``."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                os.replace(source, aside.with_name(aside.name + suffix))
        what = f"the outbox file was corrupt ({error}): moved to {aside.name}, its messages are not sent"
        log.error("%s: %s", self.path, what)
        return what

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Store a message (committed before returning); drop the oldest beyond the bounds. Returns its id, or -1
        when it was dropped itself: larger than the byte bound, or not storable (a full disk, a storage error) even
        after dropping the oldest. Never raises: every drop is counted (:meth:`stats`) and logged at a bounded rate."""
        with self._lock:
            if len(payload) > self.max_bytes:  # could never fit: drop it rather than empty the outbox
                self._count_drop(f"a message of {len(payload)} bytes is larger than max_bytes")
                return -1
            why = self._low_on_space(len(payload))  # keep the reserve: store it in the oldest's place
            if why is None:
                try:
                    item_id = self._insert(topic, payload, qos, retain, make_room=0)
                    self._problem = None
                    return item_id
                except sqlite3.Error as error:
                    self._rollback()
                    self._storage_error("store a message in", error)
                    self._reclaim()
                    why = str(error)
            try:  # a full disk: the oldest message's pages are the room a new one can take (policy: oldest first)
                item_id = self._insert(topic, payload, qos, retain, make_room=1, why=why)
            except sqlite3.Error:
                self._rollback()
                self._count_drop(f"the newest: cannot store it ({why})")
                return -1
            self._problem = None
            return item_id

    def _insert(self, topic: str, payload: bytes, qos: int, retain: bool, make_room: int, why: str = "") -> int:
        """Drop the oldest beyond the bounds (and ``make_room`` more) and insert, in one transaction (lock held)."""

        def must_drop(count: int, freed: int) -> bool:
            return (
                count < make_room
                or self._depth - count + 1 > self.max_messages
                or self._bytes - freed + len(payload) > self.max_bytes
            )

        self._db.execute("BEGIN IMMEDIATE")
        oldest: list[tuple[int]] = []
        freed = 0
        if must_drop(0, 0):
            for item_id, size in self._db.execute("SELECT id, LENGTH(payload) FROM messages ORDER BY id"):
                if not must_drop(len(oldest), freed):
                    break
                oldest.append((int(item_id),))
                freed += int(size)
        # delivered ones whose DELETE failed earlier go first and are no loss: only the others count as dropped
        lost = [row for row in oldest if row[0] not in self._delivered]
        if oldest:
            self._db.executemany("DELETE FROM messages WHERE id = ?", oldest)
            self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (len(lost),))
        cursor = self._db.execute(
            "INSERT INTO messages (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
            (topic, sqlite3.Binary(payload), qos, int(retain)),
        )
        unstored = self._unstored_drops  # counted in memory while even the counter could not be written
        if unstored:
            self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (unstored,))
        self._db.execute("COMMIT")
        self._unstored_drops -= unstored
        self._depth += 1 - len(oldest)
        self._bytes += len(payload) - freed
        self._delivered -= {row[0] for row in oldest}
        if lost:
            bound = f"at its bound ({self.max_messages} messages, {self.max_bytes} bytes)"
            self._note_drops(len(lost), "oldest dropped: " + (why if make_room else bound))
        return int(cursor.lastrowid or 0)

    def _count_drop(self, why: str) -> None:
        """Count one message that could not be stored: in the file if it can still be written, else in memory."""
        try:
            self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'dropped'")
        except sqlite3.Error:
            self._unstored_drops += 1
        self._note_drops(1, why)

    def _note_drops(self, count: int, why: str) -> None:
        """Remember the latest drop (for :meth:`problem`) and log drops at a bounded rate, with the count since."""
        self._last_drop = (why, self.wall_clock(), self.clock())
        self._drops_unlogged += count
        now = time.monotonic()
        if now - self._last_drop_log >= ERROR_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.warning("%s: %d message(s) dropped (%s)", self.path, self._drops_unlogged, why)
            self._drops_unlogged = 0

    def peek(self, limit: int = 1) -> list[OutboxItem]:
        """The oldest ``limit`` messages not yet delivered, oldest first, left in place ([] on a storage error)."""
        with self._lock:
            try:
                self._retry_deletes()
            except sqlite3.Error as error:  # still full: reading works, and delivery must go on
                self._storage_error("delete a delivered message from", error)
            try:
                rows = self._db.execute(
                    "SELECT id, topic, payload, qos, retain FROM messages ORDER BY id LIMIT ?",
                    (limit + len(self._delivered),),
                ).fetchall()
            except sqlite3.Error as error:
                self._storage_error("read", error)
                return []
        items = [OutboxItem(int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), bool(r[4])) for r in rows]
        return [item for item in items if item.id not in self._delivered][:limit]

    def ack(self, item_id: int) -> None:
        """Remove a delivered message; never raises. One the bound dropped while it was in flight arrived after
        all: its drop is taken back from the count (it was counted lost: 87 such over-counted in one outage)."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                if item_id not in self._delivered and self._db.execute(
                    "SELECT 1 FROM messages WHERE id = ?", (item_id,)
                ).fetchone() is None:
                    self._db.execute("UPDATE counters SET value = MAX(0, value - 1) WHERE name = 'dropped'")
                    return
            self._delivered.add(item_id)
            try:
                self._retry_deletes()
            except sqlite3.Error as error:
                self._storage_error("delete a delivered message from", error)
                if self._reclaim():
                    with contextlib.suppress(sqlite3.Error):
                        self._retry_deletes()

    def drop(self, item_id: int) -> None:
        """Remove a message the far end refused for good, counted as dropped; never raises."""
        with self._lock:
            self._delivered.add(item_id)  # gone for good either way: never sent again
            try:
                self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'dropped'")
            except sqlite3.Error:
                self._unstored_drops += 1
            try:
                self._retry_deletes()
            except sqlite3.Error as error:
                self._storage_error("delete a refused message from", error)

    def _retry_deletes(self) -> None:
        """Delete every delivered message still stored; shrink the files once nothing waits. Caller holds the lock."""
        for item_id in sorted(self._delivered):
            row = self._db.execute("SELECT LENGTH(payload) FROM messages WHERE id = ?", (item_id,)).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM messages WHERE id = ?", (item_id,))
                self._depth -= 1
                self._bytes -= int(row[0])
            self._delivered.discard(item_id)
            self._problem = None
        if self._depth == 0:
            self._shrink()

    def _low_on_space(self, size: int) -> str | None:
        """Why storing ``size`` more bytes would eat into the filesystem's reserve, or None."""
        try:
            stat = os.statvfs(self.path.parent)
        except OSError:
            return None  # cannot tell: let SQLite find out
        free = stat.f_bavail * stat.f_frsize
        if free - size * 2 >= self.reserve_bytes:  # the row and its WAL frame
            return None
        return f"disk almost full ({free >> 10} KB free on {self.path.parent}, {self.reserve_bytes >> 10} KB kept free)"

    def _reclaim(self) -> bool:
        """A full disk: fold the WAL back into the database file and truncate it, which frees the space it took (a
        delete needs room in the WAL too, so without this a full outbox could neither shrink nor grow). At most
        every :data:`RECLAIM_INTERVAL_S`; True when it ran and completed."""
        now = time.monotonic()
        if now - self._last_reclaim < RECLAIM_INTERVAL_S:
            return False
        self._last_reclaim = now
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return not busy
        except sqlite3.Error:
            return False

    def _shrink(self, now_or_never: bool = False) -> None:
        """Give the disk back once drained: freed pages and the WAL. Not per message (a drained outbox is the
        steady state): at most every :data:`SHRINK_INTERVAL_S`, and at :meth:`close` (a daemon stopped within
        that interval of draining left its largest size, 9.1 MB). A file made before ``auto_vacuum`` (it is 0 there:
        incremental_vacuum does nothing) is vacuumed whole once, while it is empty."""
        now = time.monotonic()
        if now - self._last_shrink < SHRINK_INTERVAL_S and not now_or_never:
            return
        self._last_shrink = now
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0:
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("VACUUM")  # empty: quick; it also makes the setting take effect
        # executescript runs it to the end: execute() frees one page of thousands (the drained outbox stayed 9.1 MB)
        self._db.executescript("PRAGMA incremental_vacuum;")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _storage_error(self, what: str, error: sqlite3.Error) -> None:
        self._errors += 1
        if self._problem is None:
            self._problem = (f"cannot {what} the outbox: {error}", time.time())
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            log.error("%s: cannot %s the outbox (%s; %d storage error(s) so far); delivery resumes when it can",
                      self.path, what, error, self._errors)  # fmt: skip

    @property
    def storage_errors(self) -> int:
        """How many reads and writes failed so far (a full disk, an I/O error)."""
        with self._lock:
            return self._errors

    @property
    def depth(self) -> int:
        with self._lock:
            return self._depth

    def stats(self) -> dict[str, int]:
        with self._lock:
            try:
                dropped = int(self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0])
            except sqlite3.Error:
                dropped = self._dropped_seen  # unreadable just now: the last count read
            self._dropped_seen = dropped
            self._log_pending_drops(ERROR_LOG_INTERVAL_S)  # a burst's last drops are logged even if none follow
            waiting = self._depth - len(self._delivered)
            return {"depth": waiting, "bytes": self._bytes, "dropped": dropped + self._unstored_drops}

    def problem(self, recent_s: float = 60.0) -> tuple[str, float] | None:
        """(reason, since) while the outbox cannot store or delete, or has dropped messages in the last
        ``recent_s``: what makes the device's status ``degraded``."""
        with self._lock:
            if self._problem is not None:
                return self._problem
            if self._last_drop is not None and self.clock() - self._last_drop[2] < recent_s:
                return (f"outbox dropping messages ({self._last_drop[0]})", self._last_drop[1])
            return None

    def close(self) -> None:
        with self._lock:
            self._log_pending_drops(0.0)
            if self._depth == 0:
                with contextlib.suppress(sqlite3.Error):
                    self._shrink(now_or_never=True)
            self._db.close()
            self._owner.release()

    def _log_pending_drops(self, interval_s: float) -> None:
        """Log the drops counted since the last drop line, once ``interval_s`` has passed (lock held)."""
        if self._drops_unlogged and self._last_drop and time.monotonic() - self._last_drop_log >= interval_s:
            self._last_drop_log = time.monotonic()
            log.warning("%s: %d message(s) dropped (%s)", self.path, self._drops_unlogged, self._last_drop[0])
            self._drops_unlogged = 0

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")


def _is_corrupt(error: sqlite3.Error) -> bool:
    """SQLite's words for a file that is not (or no longer) a database."""
    text = str(error).lower()
    return "not a database" in text or "malformed" in text
