"""A message the nucleus refuses for good (InvalidArgumentsError: too large, a bad topic) is dropped, counted and
shown, not retried and not taken for a delivery (issue 21's audit of the IPC answers, real awsiotsdk client against
the test nucleus). Before, it was resent with backoff six times before being dropped as 'could not be sent'."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_runtime.config import GreengrassConfig
from edge_runtime.greengrass.nucleus import IpcConnection, connect
from edge_runtime.publishers.ipc import IpcPublisher
from edge_runtime.publishers.outbox import Outbox
from tests.support.gg_ipc_server import GreengrassIpcServer
from tests.support.waiting import wait_until

THING = "cam-gg-size"


@pytest.fixture
def nucleus(monkeypatch: pytest.MonkeyPatch) -> Iterator[GreengrassIpcServer]:
    with (
        tempfile.TemporaryDirectory(prefix="gg-", dir="/tmp") as folder,  # a short path: a unix socket's limit
        GreengrassIpcServer(Path(folder) / "ipc.sock", "svcuid-test", {}, "ssd.ObjectDetector",
                            max_payload=2000) as server,  # fmt: skip
    ):
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        yield server


def test_a_message_the_nucleus_refuses_is_dropped_once_and_counted(
    nucleus: GreengrassIpcServer, tmp_path: Path, caplog: Any
) -> None:
    connection = IpcConnection(connect(10.0))
    publisher = IpcPublisher(connection, THING, GreengrassConfig(), Outbox(tmp_path / "ob.sqlite3", 1000, 10**7))
    try:
        with caplog.at_level(logging.WARNING):
            for seq in range(20):
                publisher.publish("detection", {"seq": seq})
                if seq % 5 == 0:
                    publisher.publish("snapshot", {"seq": seq, "jpeg": "x" * 5000})  # refused: above 2000 bytes
            assert wait_until(lambda: publisher.outbox_stats()["depth"] == 0, 15)
            problems = publisher.problems()
    finally:
        publisher.close(2.0)
        connection.close()
    published = [r.payload for r in nucleus.of("PublishToIoTCore")]
    assert sum(1 for p in published if "topicName" in p and p["topicName"].endswith("/snapshot")) == 4  # once each
    assert publisher.outbox_stats()["dropped"] == 4
    assert publisher.transport.fatal() is None  # the message's fault, not the component's authorization
    assert any("nucleus refuses a message of" in p.reason and "/snapshot" in p.reason for p in problems), problems
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
