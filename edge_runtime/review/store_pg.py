"""The ``--record postgresql://...`` store: the same append-only table as the SQLite recording, in PostgreSQL.

Why: a fleet that outgrows one reviewer process runs several (an MQTT 5 shared subscription splits the messages
between them) and they all write to one database; SQLite allows one writer at a time, PostgreSQL many. Columns,
outcomes and the ``meta`` format row are the SQLite file's, so ``review report`` reads either. Several reviewers
starting at once create the schema under an advisory lock (``CREATE ... IF NOT EXISTS`` alone races in
PostgreSQL). A trigger refuses UPDATE and DELETE, as in SQLite. One transaction per batch, rows sent with
psycopg's pipelined ``executemany``. Imports psycopg only here (the ``console`` extra).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Optional

from edge_runtime.errors import ReviewError
from edge_runtime.review.validation import Checked

SCHEMA_LOCK = 0x16_0016  # pg_advisory_xact_lock key: one reviewer creates the schema, the others wait for it

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id BIGSERIAL PRIMARY KEY,
    received_at DOUBLE PRECISION NOT NULL,
    topic TEXT NOT NULL,
    device TEXT,
    kind TEXT,
    schema_version TEXT,
    valid BOOLEAN NOT NULL,
    outcome TEXT NOT NULL,
    problem TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    payload BYTEA
);
CREATE INDEX IF NOT EXISTS messages_device_time ON messages (device, received_at);
CREATE OR REPLACE FUNCTION messages_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'messages is append-only'; END; $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS messages_no_change ON messages;
CREATE TRIGGER messages_no_change BEFORE UPDATE OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_append_only();
"""

INSERT = (
    "INSERT INTO messages (received_at, topic, device, kind, schema_version, valid, outcome, problem, size, payload)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def is_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def _connect(url: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise ReviewError("--record postgresql://: needs psycopg (pip install 'ssd-greengrass[console]')") from None
    try:
        return psycopg.connect(url, connect_timeout=10, autocommit=True)  # transaction() blocks then commit
    except psycopg.Error as error:
        raise ReviewError(f"{redact(url)}: cannot connect ({str(error).strip().splitlines()[0]})") from None


class PgRecorder:
    """Appends checked messages to PostgreSQL; the interface of :class:`edge_runtime.review.store.Recorder`."""

    def __init__(self, url: str) -> None:
        import psycopg

        from edge_runtime.review.store import FORMAT

        self.path = redact(url)
        self._url = url
        self._db = _connect(url)
        try:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                self._db.execute(_SCHEMA)
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('format', %s) ON CONFLICT (key) DO NOTHING", (FORMAT,)
                )
            row = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except psycopg.Error as error:
            self._db.close()
            raise ReviewError(f"{self.path}: cannot record here ({str(error).strip().splitlines()[0]})") from None
        if row is None or row[0] != FORMAT:
            self._db.close()
            got = row[0] if row else None
            raise ReviewError(f"{self.path}: not a review recording of format {FORMAT} (got {got!r})")
        self.written = 0

    def append(self, items: Iterable[Checked], payloads: Iterable[Optional[bytes]]) -> None:
        import psycopg

        rows = [
            (item.received_at, item.topic, item.device, item.kind, item.schema, item.valid, item.outcome,
             item.problem, item.size, None if item.outcome == "oversize" else payload)
            for item, payload in zip(items, payloads)
        ]  # fmt: skip
        if not rows:
            return
        if self._db.closed or self._db.broken:  # the server restarted or the network dropped: a new connection
            self._db = _connect(self._url)  # ReviewError while it is still away; review.recording retries
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                cursor.executemany(INSERT, rows)
        except psycopg.Error as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ReviewError(f"{self.path}: cannot append ({reason})") from None
        self.written += len(rows)

    def close(self) -> None:
        self._db.close()


def read_pg_rows(url: str, since: Optional[float] = None, device: Optional[str] = None) -> Iterator[Any]:
    """Rows in the order they were inserted, as :func:`edge_runtime.review.store.read_rows` gives them."""
    import psycopg

    from edge_runtime.review.store import FORMAT, Row

    db = _connect(url)
    try:
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except psycopg.Error:
            row = None
        if row is None or row[0] != FORMAT:
            raise ReviewError(f"{redact(url)}: not a review recording of format {FORMAT}")
        query = ("SELECT id, received_at, topic, device, kind, schema_version, valid, outcome, problem, size, payload"
                 " FROM messages WHERE received_at >= %s")  # fmt: skip
        params: list[Any] = [since if since is not None else float("-inf")]
        if device is not None:
            query += " AND device = %s"
            params.append(device)
        # a server-side cursor (in a transaction): a big recording is streamed, not loaded
        with db.transaction(), db.cursor(name="review_rows") as cursor:
            cursor.execute(query + " ORDER BY id", params)
            for values in cursor:
                ident, at, topic, name, kind, schema, valid, outcome, problem, size, payload = values
                yield Row(ident, at, topic, name, kind, schema, bool(valid), outcome, problem, size,
                          None if payload is None else bytes(payload))  # fmt: skip
    finally:
        db.close()
