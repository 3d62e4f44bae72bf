"""The PostgreSQL store and MQTT 5 shared subscriptions, with a real PostgreSQL and a real mosquitto on loopback.

PostgreSQL runs from initdb in the test's temp folder (as the ``postgres`` user when the tests run as root).
Two reviewers in one ``$share`` group split what a publisher sends: every message is recorded once in the one
database, and each reviewer took part.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from edge_helpers import free_port, wait_for  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker, Review  # type: ignore[import-not-found]
from review_console_helpers import Postgres, publish_raw, start_postgres  # type: ignore[import-not-found]

from edge_runtime.errors import ReviewError
from edge_runtime.review.fleet import Fleet
from edge_runtime.review.report import build_report
from edge_runtime.review.session import Limits, ReviewSession
from edge_runtime.review.store import open_recorder, read_rows
from edge_runtime.review.store_pg import PgRecorder, redact
from edge_runtime.review.subscriber import ListSubscriber
from edge_runtime.review.view import View

T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    server = start_postgres(tmp_path_factory.mktemp("pg"), free_port())
    yield server
    server.stop()


def fresh_database(postgres: Postgres, name: str) -> str:
    import psycopg

    with psycopg.connect(postgres.url, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    return postgres.url.rsplit("/", 1)[0] + "/" + name


def detection(device: str, seq: int, session: str = "s1") -> dict[str, Any]:
    return {
        "schema": "edge-runtime/detection/1", "device": device, "session": session, "source": "v.avi", "seq": seq,
        "captured_at": "2027-01-15T08:00:00.000Z", "published_at": "2027-01-15T08:00:00.010Z",
        "model": {"name": "m", "version": "1"},
        "timings_ms": {"preprocess": 1.0, "inference": 12.5, "postprocess": 0.5, "total": 14.0},
        "image": {"width": 160, "height": 120},
        "detections": [{"label": "cat", "class_id": 0, "score": 0.9, "box": [1, 2, 3, 4],
                        "box_normalized": [0.1, 0.1, 0.2, 0.2]}],
        "truncated": False,
    }  # fmt: skip


def test_recorded_in_postgres_and_reported(postgres: Postgres) -> None:
    import psycopg

    url = fresh_database(postgres, "report")
    messages = [("edge/cam-1/detections", json.dumps(detection("cam-1", seq)).encode()) for seq in (1, 2, 2, 3)]
    messages.append(("edge/junk", b"{not json"))
    clock = iter(T0 + i for i in range(100))
    recorder = open_recorder(url)
    assert isinstance(recorder, PgRecorder)
    ReviewSession(ListSubscriber(messages, clock=lambda: next(clock)), Fleet(), View(), threading.Event(),
                  recorder=recorder, limits=Limits(max_messages=len(messages))).run()  # fmt: skip
    rows = list(read_rows(url))
    assert [(row.outcome, row.size > 0) for row in rows] == [
        ("valid", True), ("valid", True), ("duplicate", True), ("valid", True), ("malformed", True)
    ]
    report = build_report(url).to_dict()
    assert report["valid"] == 3 and report["rejected"]["duplicate"] == 1 and report["rejected"]["malformed"] == 1
    assert report["devices"]["cam-1"]["classes"]["cat"]["count"] == 3
    with psycopg.connect(url) as db, pytest.raises(psycopg.Error, match="append-only"):
        db.execute("DELETE FROM messages")


def test_many_reviewers_create_the_schema_at_once(postgres: Postgres) -> None:
    url = fresh_database(postgres, "race")
    made: list[Any] = []
    errors: list[BaseException] = []

    def make() -> None:
        try:
            made.append(PgRecorder(url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=make) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(made) == 6
    for recorder in made:
        recorder.close()


def test_refusals_are_one_line(postgres: Postgres) -> None:
    dead = f"postgresql://someone:secret@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(ReviewError) as refused:
        PgRecorder(dead)
    assert "secret" not in str(refused.value) and "cannot connect" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact("/tmp/fleet.db") == "/tmp/fleet.db" and redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_shared_subscription_splits_the_load_into_one_database(postgres: Postgres, broker: Broker) -> None:
    url = fresh_database(postgres, "shared")
    count = 200
    reviewers = [
        Review("--share", "reviewers", "--topic", "edge/#", "--mqtt-port", str(broker.port), "--record", url,
               "--json", "--duration", "60", "--client-id", f"reviewer-{index}")
        for index in range(2)
    ]
    try:
        for review in reviewers:
            assert wait_for(lambda review=review: bool(review.snapshot("subscribed")), timeout=20)
        subscribed = reviewers[0].snapshot("subscribed")[0]["topics"]
        assert subscribed == ["$share/reviewers/edge/#"]
        publish_raw(broker.port, [("edge/cam-1/detections", json.dumps(detection("cam-1", seq)).encode())
                                  for seq in range(1, count + 1)])  # fmt: skip
        assert wait_for(lambda: sum(len(r.snapshot("message")) for r in reviewers) >= count, timeout=30)
        results = [review.stop() for review in reviewers]
        assert [code for code, _ in results] == [0, 0], results
    finally:
        for review in reviewers:
            if review.process.poll() is None:
                review.process.kill()
    taken = [len(review.snapshot("message")) for review in reviewers]
    assert sum(taken) == count and min(taken) > 0, taken  # split, not copied: each message went to one reviewer
    rows = list(read_rows(url))
    assert sorted(json.loads(row.payload or b"{}")["seq"] for row in rows) == list(range(1, count + 1))
    assert all(row.valid for row in rows)
