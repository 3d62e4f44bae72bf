"""The on-disk outbox: QoS 1 messages wait here, in order, until the broker acknowledges them.

"Never lose a detection" across broker outages and daemon restarts means a message is written to disk before
the pipeline moves on, and removed only after its PUBACK. sqlite in WAL mode gives that with one file and
atomic commits: a SIGKILL between ``put`` and ``ack`` leaves the message in the file for the next run (it is
then sent again: at least once, as QoS 1 promises). The outbox is bounded in messages and bytes; beyond either
bound the oldest messages are dropped and counted (the count persists too), so a long outage cannot fill the
device's disk.

A full disk (or any storage error) never kills the sender: a delivered message whose DELETE fails is remembered
as delivered (it is not sent again) and deleted once writes succeed again; reads that fail return nothing for now.
When the outbox drains, the WAL is checkpointed and truncated and freed pages are returned (``auto_vacuum``), so
the files shrink back after an outage instead of keeping their largest size.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.errors import PublishError
from edge_runtime.publishers.base import path_problem

log = logging.getLogger(__name__)
SHRINK_INTERVAL_S = 10.0  # a drained outbox gives its space back at most this often
WAL_LIMIT_BYTES = 1 << 20  # after any checkpoint SQLite truncates the WAL to this (journal_size_limit)
ERROR_LOG_INTERVAL_S = 30.0  # a storage error is logged at most this often (with how many happened meanwhile)

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

    def __init__(self, path: str | Path, max_messages: int, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=5.0)
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file: freed pages can shrink it
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable against process death; fsync per checkpoint
            self._db.executescript(SCHEMA)
            depth, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages"
            ).fetchone()
        except OSError as error:
            raise PublishError(f"{self.path}: cannot use as the outbox ({path_problem(self.path, error)})") from None
        except sqlite3.Error as error:
            raise PublishError(f"{self.path}: cannot use as the outbox ({error})") from None
        self._depth = int(depth)
        self._bytes = int(size)
        self._delivered: set[int] = set()  # acknowledged, but the DELETE failed (disk full): never resent
        self._errors = 0
        self._last_error_log = -ERROR_LOG_INTERVAL_S
        self._last_shrink = -SHRINK_INTERVAL_S

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Store a message (committed before returning); drop the oldest beyond the bounds. Returns its id."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                dropped = 0
                if len(payload) > self.max_bytes:  # could never fit: drop it rather than empty the outbox
                    self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'dropped'")
                    self._db.execute("COMMIT")
                    return -1
                while self._depth + 1 > self.max_messages or self._bytes + len(payload) > self.max_bytes:
                    row = self._db.execute("SELECT id, LENGTH(payload) FROM messages ORDER BY id LIMIT 1").fetchone()
                    if row is None:
                        break
                    self._db.execute("DELETE FROM messages WHERE id = ?", (row[0],))
                    self._depth -= 1
                    self._bytes -= int(row[1])
                    dropped += 1
                if dropped:
                    self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (dropped,))
                cursor = self._db.execute(
                    "INSERT INTO messages (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
                    (topic, sqlite3.Binary(payload), qos, int(retain)),
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                self._rollback()
                raise PublishError(f"{self.path}: cannot store a message ({error})") from None
            self._depth += 1
            self._bytes += len(payload)
            return int(cursor.lastrowid or 0)

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
        """Remove a delivered message (a no-op if the bound already dropped it); never raises."""
        with self._lock:
            self._delivered.add(item_id)
            try:
                self._retry_deletes()
            except sqlite3.Error as error:
                self._storage_error("delete a delivered message from", error)

    def _retry_deletes(self) -> None:
        """Delete every delivered message still stored; shrink the files once nothing waits. Caller holds the lock."""
        for item_id in sorted(self._delivered):
            row = self._db.execute("SELECT LENGTH(payload) FROM messages WHERE id = ?", (item_id,)).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM messages WHERE id = ?", (item_id,))
                self._depth -= 1
                self._bytes -= int(row[0])
            self._delivered.discard(item_id)
        if self._depth == 0:
            self._shrink()

    def _shrink(self) -> None:
        """Give the disk back once drained: freed pages and the WAL. Not per message (a drained outbox is the
        steady state): at most every :data:`SHRINK_INTERVAL_S`."""
        now = time.monotonic()
        if now - self._last_shrink < SHRINK_INTERVAL_S:
            return
        self._last_shrink = now
        self._db.execute("PRAGMA incremental_vacuum")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _storage_error(self, what: str, error: sqlite3.Error) -> None:
        self._errors += 1
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            log.error("%s: cannot %s the outbox (%s; %d storage error(s) so far); delivery resumes when it can",
                      self.path, what, error, self._errors)  # fmt: skip

    @property
    def depth(self) -> int:
        with self._lock:
            return self._depth

    def stats(self) -> dict[str, int]:
        with self._lock:
            try:
                dropped = int(self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0])
            except sqlite3.Error:
                dropped = -1  # unreadable just now; the next status has it
            waiting = self._depth - len(self._delivered)
            return {"depth": waiting, "bytes": self._bytes, "dropped": dropped}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
