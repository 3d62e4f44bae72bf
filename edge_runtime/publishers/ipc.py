"""Greengrass IPC: the publisher (PublishToIoTCore, PublishToTopic), the transport only.

Inside a Greengrass component the nucleus is the only way out: it holds the device certificate and the
connection to AWS IoT Core, and lets a component publish only on the topics its recipe's ``accessControl``
allows. The nucleus starts each component with ``AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT`` and
``SVCUID`` (the socket and the auth token), so their presence is how the daemon knows it runs in Greengrass
(:func:`edge_runtime.greengrass.in_greengrass`). The connection, the configuration bridge and live
configuration live in :mod:`edge_runtime.greengrass`.

The IPC client is injected (a ``GreengrassCoreIPCClientV2`` or anything with its ``*_async`` methods), every
future is waited on with a bound, and every failure becomes a :class:`~edge_runtime.errors.PublishError`
(the client cannot be set up, or a request was refused) or a :class:`~edge_runtime.errors.ConfigError`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from edge_runtime.config import GreengrassConfig, RuntimeConfig
from edge_runtime.errors import PublishRefusedError
from edge_runtime.greengrass.nucleus import IpcConnection, _fix, _one_line, is_connection_error
from edge_runtime.messages import encode
from edge_runtime.publishers.base import Problem, Publisher
from edge_runtime.publishers.delivery import DurableDelivery, SendRefused, Transport
from edge_runtime.publishers.mqtt import render_topic
from edge_runtime.publishers.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)

QOS_AT_LEAST_ONCE = "1"  # awsiot.greengrasscoreipc.model.QOS.AT_LEAST_ONCE


class GreengrassTopics:
    """The rendered topics of ``publish.greengrass`` (IoT Core, and local pub/sub when set); changed live."""

    def __init__(self, thing_name: str, settings: GreengrassConfig) -> None:
        self.thing_name = thing_name
        self._lock = threading.Lock()
        self._topics: dict[str, tuple[str, str | None]] = {}
        self.set(settings)

    def set(self, settings: GreengrassConfig) -> None:
        """Render the topic templates; a bad one raises PublishError and the old topics stay."""
        local = settings.local_topic
        detection_local = render_topic(local, self.thing_name) if local else None
        topics = {
            "detection": (render_topic(settings.topic, self.thing_name), detection_local),
            "status": (
                render_topic(settings.status_topic, self.thing_name),
                f"{detection_local}/status" if detection_local else None,
            ),
            "snapshot": (
                render_topic(settings.snapshot_topic, self.thing_name),
                f"{detection_local}/snapshot" if detection_local else None,
            ),
        }
        with self._lock:
            self._topics = topics

    def all(self) -> dict[str, tuple[str, str | None]]:
        with self._lock:
            return dict(self._topics)

    def access_needed(self, status: bool = True, snapshots: bool = False) -> list[tuple[str, str, str]]:
        """(IPC service, operation, topic) for every topic this publisher will publish to (``status``: the status
        topics too, unless ``status.interval_s`` is 0; ``snapshots``: the snapshot topics, when enabled)."""
        from edge_runtime.greengrass.access import MQTT_PROXY, PUBSUB

        needed = []
        for kind, (iot_topic, local_topic) in self.all().items():
            if (kind == "status" and not status) or (kind == "snapshot" and not snapshots):
                continue
            needed.append((MQTT_PROXY, "PublishToIoTCore", iot_topic))
            if local_topic:
                needed.append((PUBSUB, "PublishToTopic", local_topic))
        return needed


class IpcTransport(Transport):
    """PublishToIoTCore (QoS 1) as a transport: the nucleus has a message once it answers the request."""

    name = "greengrass"

    def __init__(self, connection: IpcConnection, max_in_flight: int) -> None:
        self.connection = connection
        self.max_in_flight = max_in_flight
        self._fatal: PublishRefusedError | None = None

    def ready(self) -> bool:
        return self.connection.ready.is_set()

    def window(self) -> int:
        return self.max_in_flight

    def send(self, item: OutboxItem) -> concurrent.futures.Future[Any]:
        answered: concurrent.futures.Future[Any] = concurrent.futures.Future()
        request = self.connection.client.publish_to_iot_core_async(
            topic_name=item.topic, qos=QOS_AT_LEAST_ONCE, payload=item.payload
        )

        def on_done(sent: concurrent.futures.Future[Any]) -> None:
            error = sent.exception()
            if error is None:
                answered.set_result(True)
            elif type(error).__name__ == "UnauthorizedError":
                refused = f"greengrass: PublishToIoTCore on {item.topic} was refused, not authorized" \
                    f" ({_one_line(error)}): {_fix('PublishToIoTCore')}"
                self.refused(refused)
                answered.set_exception(SendRefused(refused))
            elif type(error).__name__ == "InvalidArgumentsError":  # this message never (too large, bad topic)
                why = f"greengrass: the nucleus refuses a message of {len(item.payload)} bytes on {item.topic}"
                answered.set_exception(SendRefused(f"{why} ({_one_line(error)})"))
            else:
                if is_connection_error(error):
                    self.connection.lost(error)
                answered.set_exception(error)

        request.add_done_callback(on_done)
        return answered

    def lost(self, error: BaseException) -> None:
        if is_connection_error(error):  # anything else (a bad request) is the message's problem, not the socket's
            self.connection.lost(error)

    def refused(self, reason: str) -> None:
        """The nucleus refused a request as not authorized: every later one would be too (the first is kept)."""
        self._fatal = self._fatal or PublishRefusedError(reason)

    def problem(self) -> Problem | None:
        return self.connection.problem

    def fatal(self) -> PublishRefusedError | None:
        return self._fatal


class IpcPublisher(Publisher):
    """Detections to AWS IoT Core through the nucleus (QoS 1, through the outbox), and to local pub/sub when set.

    Detections take the durable path (:class:`~edge_runtime.publishers.delivery.DurableDelivery`): the nucleus
    spools for IoT Core while the cloud is away, the outbox covers the nucleus itself being away (restarted,
    killed, frozen). Status messages and local pub/sub copies are sent at once and not waited for (a newer status
    supersedes one that is lost; local subscribers live in the nucleus too). Topics can be changed live
    (:meth:`set_topics`).
    """

    name = "greengrass"

    def __init__(self, connection: IpcConnection, thing_name: str, settings: GreengrassConfig, outbox: Outbox) -> None:
        self.connection = connection
        self.topics = GreengrassTopics(thing_name, settings)
        self.transport = IpcTransport(connection, settings.max_in_flight)
        self.delivery = DurableDelivery(outbox, self.transport, settings.timeout_s)
        self._pending: list[concurrent.futures.Future[Any]] = []
        self._last_error_log = float("-inf")

    @classmethod
    def from_config(cls, config: RuntimeConfig, connection: IpcConnection, outbox_path: str | Path) -> IpcPublisher:
        GreengrassTopics(config.thing_name, config.publish.greengrass)  # a bad template fails before any file exists
        box = config.publish.outbox
        outbox = Outbox(outbox_path, box.max_messages, box.max_bytes, box.reserve_bytes)
        return cls(connection, config.thing_name, config.publish.greengrass, outbox)

    def set_topics(self, settings: GreengrassConfig) -> None:
        self.topics.set(settings)

    def access_needed(self, status: bool = True, snapshots: bool = False) -> list[tuple[str, str, str]]:
        return self.topics.access_needed(status, snapshots)

    def publish(self, kind: str, message: dict[str, Any]) -> None:
        iot_topic, local_topic = self.topics.all()[kind]
        if kind != "status":  # detections and snapshots: durable
            self.delivery.put(iot_topic, encode(message), qos=1)
        else:
            self._send_now(
                f"PublishToIoTCore on {iot_topic}",
                lambda client: client.publish_to_iot_core_async(
                    topic_name=iot_topic, qos=QOS_AT_LEAST_ONCE, payload=encode(message)
                ),
            )
        if local_topic:
            from awsiot.greengrasscoreipc.model import JsonMessage, PublishMessage

            local = PublishMessage(json_message=JsonMessage(message=message))
            self._send_now(
                f"PublishToTopic on {local_topic}",
                lambda client: client.publish_to_topic_async(topic=local_topic, publish_message=local),
            )

    def _send_now(self, what: str, request: Callable[[Any], concurrent.futures.Future[Any]]) -> None:
        """A best-effort request, not waited for: a failure is logged (bounded), a refusal is fatal."""
        if not self.connection.ready.is_set():
            return
        try:
            future = request(self.connection.client)
        except Exception as error:  # the connection is gone: reconnect; this one is superseded
            if is_connection_error(error):
                self.connection.lost(error)
            self._log_failure(what, error)
            return

        def on_done(sent: concurrent.futures.Future[Any]) -> None:
            error = sent.exception()
            if error is None:
                return
            if type(error).__name__ == "UnauthorizedError":
                refused = f"greengrass: {what} was refused, not authorized ({_one_line(error)}): {_fix(what)}"
                self.transport.refused(refused)
            elif is_connection_error(error):
                self.connection.lost(error)
            self._log_failure(what, error)

        future.add_done_callback(on_done)
        self._pending = [*[f for f in self._pending if not f.done()][-16:], future]

    def _log_failure(self, what: str, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= 30.0:
            self._last_error_log = now
            log.warning("greengrass: %s failed (%s)", what, _one_line(error))

    def outbox_stats(self) -> dict[str, int]:
        return self.delivery.stats()

    def problems(self) -> list[Problem]:
        return self.delivery.problems()

    def fatal(self) -> PublishRefusedError | None:
        return self.transport.fatal()

    def close(self, timeout_s: float) -> None:
        """Flush the outbox and the last status while the budget allows; the connection stays (the bridge's)."""
        deadline = time.monotonic() + timeout_s
        for future in list(self._pending):
            try:
                future.result(timeout=max(0.0, min(1.0, deadline - time.monotonic() - 0.5)))
            except Exception:  # best effort
                break
        self.delivery.close(max(0.0, deadline - time.monotonic()))

