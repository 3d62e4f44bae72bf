"""Where the review's messages come from: the awscrt MQTT5 subscriber, and an in-repo fake that replays a list.

The MQTT client is built by :func:`edge_runtime.publishers.mqtt.build_mqtt5_client` from the same
``publish.mqtt`` config
section as the daemon's publisher (host, port, mutual TLS files, keep-alive, reconnect backoff), so whatever
reaches a broker or AWS IoT Core for a device reaches it for the reviewer. Its publish callback runs on awscrt's
event-loop thread, so it only measures the payload and hands it over; a payload over the size limit is handed
over as its size alone (counted and skipped without parsing, and not held in memory).

The session is clean unless ``session_expiry_s`` is set (``--session-expiry``, with a fixed ``--client-id``): then
the broker keeps the subscriptions and queues QoS 1 messages for that long after a disconnect, and the client
rejoins the session, so what is published while the reviewer is cut off or stopped reaches it when it is back
(within the broker's limits, e.g. mosquitto's max_queued_messages). The topics are subscribed on every start (a kept
session's earlier subscriptions stay too); after a reconnect they are subscribed again from the review loop
(:meth:`MqttSubscriber.maintain`) only when the broker did not keep the session. Either way QoS 1 is at least
once: a message may arrive twice, which :mod:`edge_runtime.review.redelivery` deals with.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from edge_runtime.config import MqttConfig
from edge_runtime.errors import PublishError, ReviewError

log = logging.getLogger(__name__)

# the QoS 1 messages the broker may send before the console acknowledges them (MQTT 5 Receive Maximum). awscrt
# queues each PUBACK behind every one not yet written, a walk of the whole queue per message: with the broker's
# window (65,535 by default, mosquitto's max_inflight_messages) that walk took the MQTT thread 14 s of CPU for
# 60,000 messages, 7 s with this; a window of 100 still keeps a loopback or LAN broker streaming
RECEIVE_MAXIMUM = 100


@dataclass(frozen=True)
class Received:
    """One payload as it arrived; ``payload`` is None when it was over the size limit (``size`` says how big)."""

    topic: str
    payload: Optional[bytes]
    size: int
    received_at: float


Deliver = Callable[[Received], None]


class Subscriber:
    """The seam: something that delivers :class:`Received` payloads until closed."""

    topics: list[str]  # what it subscribed to, for the view

    def start(self, deliver: Deliver) -> None:
        raise NotImplementedError

    def maintain(self) -> None:
        """Called on every turn of the review loop: repair what a reconnect undid. Must return quickly."""

    def state(self) -> dict[str, Any]:
        """The broker connection for the page: ``state`` connected | connecting | disconnected | replay, ``error``."""
        return {"state": "replay", "error": None}

    def close(self, timeout_s: float) -> None:
        """Stop delivering, within ``timeout_s``."""


class ListSubscriber(Subscriber):
    """A fake for tests: delivers ``(topic, payload)`` pairs with times from ``clock`` when started."""

    def __init__(
        self, messages: Sequence[tuple[str, bytes]], clock: Callable[[], float] = time.time, max_bytes: int = 1 << 30
    ) -> None:
        self.messages = list(messages)
        self.topics = ["(replay)"]
        self.clock = clock
        self.max_bytes = max_bytes
        self.closed = False

    def start(self, deliver: Deliver) -> None:
        for topic, payload in self.messages:
            big = len(payload) > self.max_bytes
            deliver(Received(topic, None if big else payload, len(payload), self.clock()))

    def close(self, timeout_s: float) -> None:
        self.closed = True


def default_client_id() -> str:
    return f"edge-runtime-review-{uuid.uuid4().hex[:8]}"


class MqttSubscriber(Subscriber):
    def __init__(
        self,
        mqtt: MqttConfig,
        topics: Sequence[str],
        max_bytes: int,
        connect_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        session_expiry_s: int = 0,
    ) -> None:
        self.mqtt = mqtt
        self.topics = list(topics)
        self.max_bytes = max_bytes
        self.connect_timeout_s = connect_timeout_s
        self.clock = clock
        self.session_expiry_s = session_expiry_s
        self.client_id = mqtt.client_id or default_client_id()
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self._subscribed = False
        self._was_connected = False
        self.last_failure: Optional[str] = None
        self._deliver: Optional[Deliver] = None
        self._client: Any = None

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        try:
            self._client = _build(self)
        except PublishError as error:  # the shared builder speaks of publish.mqtt.tls; the cause is the same
            raise ReviewError(str(error)) from None
        self._client.start()
        if not self.connected.wait(self.connect_timeout_s):
            self._client.stop()
            where = f"{self.mqtt.host}:{self.mqtt.port}"
            why = f" ({self.last_failure})" if self.last_failure else ""
            raise ReviewError(f"cannot connect to the broker {where} within {self.connect_timeout_s:g}s{why}")
        self._subscribe()

    def _subscribe(self) -> None:
        from awscrt import mqtt5

        qos = mqtt5.QoS.AT_LEAST_ONCE
        packet = mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(t, qos=qos) for t in self.topics])
        try:
            suback = self._client.subscribe(packet).result(timeout=self.connect_timeout_s)
        except Exception as error:  # timeout, or the connection dropped under the subscribe
            raise ReviewError(
                f"cannot subscribe to {', '.join(self.topics)} ({error or type(error).__name__})"
            ) from None
        for topic, code in zip(self.topics, getattr(suback, "reason_codes", [])):
            if int(code) >= 0x80:
                raise ReviewError(f"the broker refused the subscription to {topic!r} (reason code {int(code):#x})")
        self._subscribed = True

    def state(self) -> dict[str, Any]:
        if self.connected.is_set():
            return {"state": "connected", "error": None, "session_expiry_s": self.session_expiry_s}
        return {"state": "disconnected" if self._was_connected else "connecting", "error": self.last_failure,
                "session_expiry_s": self.session_expiry_s}  # fmt: skip

    def maintain(self) -> None:
        if self.connected.is_set() and not self._subscribed:
            log.info("review: resubscribing after reconnect")
            self._subscribe()

    # callbacks on awscrt's event-loop thread: measure, hand over, flip events
    def _on_publish(self, data: Any) -> None:
        if threading.get_ident() not in _PINNED:
            _pin_thread_state()
        packet = data.publish_packet
        payload = bytes(packet.payload or b"")
        size = len(payload)
        deliver = self._deliver
        if deliver is not None:
            deliver(Received(str(packet.topic), None if size > self.max_bytes else payload, size, self.clock()))

    def _on_connected(self, data: Any) -> None:
        connack = getattr(data, "connack_packet", None)
        if not getattr(connack, "session_present", False):
            self._subscribed = False  # a clean or expired session: the broker forgot our subscriptions
        self._was_connected = True
        self.connected.set()

    def _on_connection_failure(self, data: Any) -> None:
        from edge_runtime.publishers.mqtt import describe_connection_failure  # the daemon's words for the same

        self.last_failure = describe_connection_failure(data, self.mqtt)
        # before the first connection, start() reports the failure in one line; after it, each retry is news
        level = logging.WARNING if self._was_connected else logging.DEBUG
        log.log(level, "review: %s", self.last_failure)

    def _on_disconnected(self, data: Any) -> None:
        self.last_failure = f"disconnected ({getattr(data, 'exception', None) or 'unknown'})"
        log.warning("review: %s", self.last_failure)
        self.connected.clear()

    def _on_stopped(self, _data: Any) -> None:
        self.connected.clear()
        self.stopped.set()

    def close(self, timeout_s: float) -> None:
        from awscrt import mqtt5

        self._deliver = None
        if self._client is not None:
            self._client.stop(mqtt5.DisconnectPacket())
            self.stopped.wait(timeout_s)


_PINNED: set[int] = set()


def _pin_thread_state() -> None:
    """Keep this native thread's Python thread state for good: awscrt takes the GIL for each message with
    ``PyGILState_Ensure`` and lets go with ``PyGILState_Release``, which on a thread Python did not start creates a
    thread state (and maps its frame stack) for every message and destroys it after. One more ``Ensure``, never
    released, keeps the count above zero, so each message only takes the GIL."""
    import ctypes

    ctypes.pythonapi.PyGILState_Ensure.restype = ctypes.c_int
    ctypes.pythonapi.PyGILState_Ensure()
    _PINNED.add(threading.get_ident())


def _build(subscriber: MqttSubscriber) -> Any:
    from edge_runtime.publishers.mqtt import build_mqtt5_client

    return build_mqtt5_client(
        subscriber.mqtt,
        subscriber.client_id,
        on_connected=subscriber._on_connected,
        on_connection_failure=subscriber._on_connection_failure,
        on_disconnected=subscriber._on_disconnected,
        on_stopped=subscriber._on_stopped,
        on_publish=subscriber._on_publish,
        session_expiry_s=subscriber.session_expiry_s,
        receive_maximum=RECEIVE_MAXIMUM,
    )
