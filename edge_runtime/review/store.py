"""The ``--record`` database: every received message, valid or not, appended to SQLite (or PostgreSQL by URL,
:mod:`edge_runtime.review.store_pg`).

Why SQLite in WAL mode: one file that survives restarts of the reviewer (a second run appends to the same table),
and readers (``review report``, ``sqlite3`` in another terminal) see committed rows while the recorder keeps
writing. Rows are never changed or deleted, and triggers refuse UPDATE and DELETE so a report always describes
what arrived. A ``meta`` table names the file's format; a file of another format is refused, not mixed into.
Oversize payloads are stored without their bytes (their size and reason are kept): a 10 MB payload should be
visible in the record, not fill the disk. A detection the broker delivered again is recorded too, as a
``duplicate`` (payload kept, ``valid`` 0): the valid rows of a review run hold each detection once, and the
record still shows every delivery.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

from edge_runtime.errors import ReviewError
from edge_runtime.review.validation import Checked

FORMAT = "edge-runtime-review/1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,          -- seconds since the epoch, the reviewer's clock
    topic TEXT NOT NULL,
    device TEXT,                        -- from the payload, when it names one
    kind TEXT,                          -- detection | status | NULL (unknown)
    schema_version TEXT,                -- the payload's "schema" field, when it has one
    valid INTEGER NOT NULL,             -- 1 when it passed its JSON Schema and was not a redelivery
    outcome TEXT NOT NULL,              -- valid | oversize | malformed | unknown_schema | invalid | duplicate
    problem TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,              -- payload bytes as received
    payload BLOB                        -- NULL for oversize payloads
);
CREATE INDEX IF NOT EXISTS messages_device_time ON messages (device, received_at);
CREATE TRIGGER IF NOT EXISTS messages_no_update BEFORE UPDATE ON messages
    BEGIN SELECT RAISE(ABORT, 'messages is append-only'); END;
CREATE TRIGGER IF NOT EXISTS messages_no_delete BEFORE DELETE ON messages
    BEGIN SELECT RAISE(ABORT, 'messages is append-only'); END;
"""


@dataclass(frozen=True)
class Row:
    id: int
    received_at: float
    topic: str
    device: Optional[str]
    kind: Optional[str]
    schema_version: Optional[str]
    valid: bool
    outcome: str
    problem: str
    size: int
    payload: Optional[bytes]


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            if not path.is_file():
                raise ReviewError(f"{path}: recording not found")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        # not mode=ro: a reader of a WAL database must be able to create its -shm file when no writer has one open
        # a short wait for a lock: a recorder kept waiting would stall the review loop; review.recording retries
        connection = sqlite3.connect(str(path), timeout=1, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout = 1000")
        return connection
    except sqlite3.Error as error:
        raise ReviewError(f"{path}: cannot open the recording ({error})") from None


def _check_format(connection: sqlite3.Connection, path: Path) -> None:
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.DatabaseError as error:
        raise ReviewError(f"{path}: not a review recording ({error})") from None
    if row is None or row[0] != FORMAT:
        raise ReviewError(f"{path}: not a review recording of format {FORMAT} (got {row[0] if row else None!r})")


class Recorder:
    """Appends checked messages; one transaction per batch, so a burst costs one fsync, not one per message."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = _connect(self.path, readonly=False)
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a crash of this process loses nothing
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise ReviewError(f"{self.path}: cannot record here ({error})") from None
        _check_format(self._db, self.path)
        self.written = 0

    def append(self, items: Iterable[Checked], payloads: Iterable[Optional[bytes]]) -> None:
        rows = [
            (
                item.received_at,
                item.topic,
                item.device,
                item.kind,
                item.schema,
                int(item.valid),
                item.outcome,
                item.problem,
                item.size,
                None if item.outcome == "oversize" else payload,
            )
            for item, payload in zip(items, payloads)
        ]
        try:
            with self._db:
                self._db.executemany(
                    "INSERT INTO messages (received_at, topic, device, kind, schema_version, valid, outcome,"
                    " problem, size, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.Error as error:
            raise ReviewError(f"{self.path}: cannot append to the recording ({error})") from None
        self.written += len(rows)

    def close(self) -> None:
        self._db.close()


def read_rows(path: str | Path, since: Optional[float] = None, device: Optional[str] = None) -> Iterator[Row]:
    """Rows in the order they were received (read-only; safe while a recorder appends); ``path`` may be a
    ``postgresql://`` URL."""
    from edge_runtime.review.store_pg import is_url, read_pg_rows

    if isinstance(path, str) and is_url(path):
        yield from read_pg_rows(path, since=since, device=device)
        return
    file = Path(path)
    db = _connect(file, readonly=True)
    try:
        _check_format(db, file)
        query = "SELECT * FROM messages WHERE received_at >= ?"
        params: list[object] = [since if since is not None else float("-inf")]
        if device is not None:
            query += " AND device = ?"
            params.append(device)
        try:
            columns = "id, received_at, topic, device, kind, schema_version, valid, outcome, problem, size, payload"
            for values in db.execute(query.replace("*", columns, 1) + " ORDER BY id", params):
                ident, at, topic, device_name, kind, schema, valid, outcome, problem, size, payload = values
                yield Row(ident, at, topic, device_name, kind, schema, bool(valid), outcome, problem, size, payload)
        except sqlite3.Error as error:
            raise ReviewError(f"{file}: cannot read the recording ({error})") from None
    finally:
        db.close()


class Recording(Protocol):
    """What the review loop records into: :class:`Recorder` (SQLite) or ``store_pg.PgRecorder`` (PostgreSQL)."""

    written: int

    def append(self, items: Iterable[Checked], payloads: Iterable[Optional[bytes]]) -> None: ...

    def close(self) -> None: ...


def open_recorder(target: str) -> Recording:
    """The recorder for ``--record``: a SQLite file (embedded, nothing to set up) or a ``postgresql://`` URL."""
    from edge_runtime.review.store_pg import PgRecorder, is_url

    return PgRecorder(target) if is_url(target) else Recorder(target)
