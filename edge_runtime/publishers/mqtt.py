"""MQTT publishing with the awscrt MQTT5 client (awsiotsdk): a local broker over TCP or AWS IoT Core over mTLS.

QoS 1 detections go through the on-disk :class:`~edge_runtime.publishers.outbox.Outbox`: ``publish`` only stores them,
and
one sender thread sends the oldest, waits for its PUBACK (bounded by ``ack_timeout_s``), then removes it. One
message in flight at a time keeps the order across reconnects: after an outage the sender resumes with the
oldest unacknowledged message. The client reconnects by itself with backoff; the sender just waits for the
connection. Status messages are sent directly (newer ones supersede them) and, if configured, retained. The
last will (a retained ``offline`` status) tells the fleet when the device vanishes without a clean stop.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from edge_runtime.config import MqttConfig, RuntimeConfig
from edge_runtime.errors import PublishError
from edge_runtime.messages import encode, status_message
from edge_runtime.publishers.base import Publisher
from edge_runtime.publishers.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)

POLL_S = 0.2


def render_topic(template: str, thing_name: str) -> str:
    try:
        topic = template.format(thing_name=thing_name)
    except (KeyError, IndexError, ValueError) as error:
        raise PublishError(f"topic template {template!r}: only {{thing_name}} may be used ({error})") from None
    if not topic or "#" in topic or "+" in topic:
        raise PublishError(f"topic {topic!r}: a publish topic must be non-empty without wildcards")
    return topic


def build_mqtt5_client(
    mqtt: MqttConfig,
    client_id: str,
    *,
    on_connected: Callable[[Any], None],
    on_connection_failure: Callable[[Any], None],
    on_disconnected: Callable[[Any], None],
    on_stopped: Callable[[Any], None],
    will: Any = None,
    on_publish: Callable[[Any], None] | None = None,
    session_expiry_s: int = 0,
) -> Any:
    """An unstarted awscrt MQTT5 client for ``mqtt``: plain TCP, or mutual TLS when ``mqtt.tls`` is set.

    Shared by the daemon's publisher and ``edge-runtime review``'s subscriber, so both reach a broker (or AWS IoT
    Core) from the same config section and fail the same way on bad TLS files. The session is clean unless
    ``session_expiry_s`` > 0: then the broker keeps it (subscriptions and undelivered QoS 1 messages) for that long
    after a disconnect and the client rejoins it, from the first connection on. The daemon needs no broker session
    (its outbox keeps what is unsent); a reviewer that must not miss messages while it is away does.
    """
    from awscrt import mqtt5
    from awsiot import mqtt5_client_builder

    # REJOIN_ALWAYS, not REJOIN_POST_SUCCESS: a restarted reviewer gets what queued while it was away. awscrt's
    # caveat (the client's own unacknowledged QoS 1 publishes do not survive its restart) does not touch a client
    # that only subscribes.
    behavior = (
        mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS if session_expiry_s > 0 else mqtt5.ClientSessionBehaviorType.CLEAN
    )
    common: dict[str, Any] = {
        "endpoint": mqtt.host,
        "port": mqtt.port,
        "client_id": client_id,
        "connect_options": mqtt5.ConnectPacket(
            keep_alive_interval_sec=mqtt.keep_alive_s, session_expiry_interval_sec=session_expiry_s or None
        ),
        "session_behavior": behavior,
        "offline_queue_behavior": mqtt5.ClientOperationQueueBehaviorType.FAIL_ALL_ON_DISCONNECT,
        "min_reconnect_delay_ms": int(mqtt.reconnect_min_s * 1000),
        "max_reconnect_delay_ms": int(mqtt.reconnect_max_s * 1000),
        "ack_timeout_sec": max(1, int(mqtt.ack_timeout_s)),
        "will": will,
        "will_delay_interval_sec": 0,
        "on_publish_received": on_publish,
        "on_lifecycle_connection_success": on_connected,
        "on_lifecycle_connection_failure": on_connection_failure,
        "on_lifecycle_disconnection": on_disconnected,
        "on_lifecycle_stopped": on_stopped,
        "enable_metrics_collection": False,
    }
    if mqtt.tls is None:
        return _plain_client(mqtt5.ClientOptions(host_name=mqtt.host, port=mqtt.port), common)
    for label, path in (("cert", mqtt.tls.cert), ("key", mqtt.tls.key), ("ca", mqtt.tls.ca)):
        if path is not None and not Path(path).is_file():
            raise PublishError(f"publish.mqtt.tls.{label}: file not found (got {path!r})")
    try:
        return mqtt5_client_builder.mtls_from_path(
            cert_filepath=mqtt.tls.cert, pri_key_filepath=mqtt.tls.key, ca_filepath=mqtt.tls.ca, **common
        )
    except Exception as error:  # awscrt raises AwsCrtError for unreadable or mismatched PEM files
        raise PublishError(f"publish.mqtt.tls: cannot set up mutual TLS ({error})") from None


def _plain_client(options: Any, common: dict[str, Any]) -> Any:
    """A plain-TCP client (a local broker); the builder module only makes TLS or websocket clients."""
    from awscrt import mqtt5

    connect = common["connect_options"]
    connect.client_id = common["client_id"]
    connect.will = common["will"]
    connect.will_delay_interval_sec = common["will_delay_interval_sec"]
    options.connect_options = connect
    options.session_behavior = common["session_behavior"]
    options.offline_queue_behavior = common["offline_queue_behavior"]
    options.min_reconnect_delay_ms = common["min_reconnect_delay_ms"]
    options.max_reconnect_delay_ms = common["max_reconnect_delay_ms"]
    options.ack_timeout_sec = common["ack_timeout_sec"]
    options.on_publish_callback_fn = common["on_publish_received"]
    options.on_lifecycle_event_connection_success_fn = common["on_lifecycle_connection_success"]
    options.on_lifecycle_event_connection_failure_fn = common["on_lifecycle_connection_failure"]
    options.on_lifecycle_event_disconnection_fn = common["on_lifecycle_disconnection"]
    options.on_lifecycle_event_stopped_fn = common["on_lifecycle_stopped"]
    return mqtt5.Client(options)


class MqttPublisher(Publisher):
    name = "mqtt"

    def __init__(
        self,
        config: RuntimeConfig,
        session: str,
        outbox: Outbox,
    ) -> None:
        from awscrt import mqtt5

        self._mqtt5 = mqtt5
        mqtt = config.publish.mqtt
        self.topic = render_topic(mqtt.topic, config.thing_name)
        self.status_topic = render_topic(mqtt.status_topic, config.thing_name)
        self.qos = mqtt.qos
        self.retain_status = mqtt.retain_status
        self.ack_timeout_s = mqtt.ack_timeout_s
        self.outbox = outbox
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self.rejected = 0
        self._closing = threading.Event()
        self._wakeup = threading.Event()
        self._pending_status: list[concurrent.futures.Future[Any]] = []
        will = status_message(device=config.thing_name, session=session, state="offline", at=time.time())
        self.client = self._build_client(
            config,
            mqtt5.PublishPacket(
                topic=self.status_topic,
                payload=encode(will),
                qos=mqtt5.QoS.AT_LEAST_ONCE,
                retain=self.retain_status,
            ),
        )
        self.client.start()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()

    @classmethod
    def from_config(cls, config: RuntimeConfig, session: str) -> MqttPublisher:
        box = config.publish.outbox
        return cls(config, session, Outbox(box.path, box.max_messages, box.max_bytes))

    def _build_client(self, config: RuntimeConfig, will: Any) -> Any:
        mqtt = config.publish.mqtt
        return build_mqtt5_client(
            mqtt,
            mqtt.client_id or config.thing_name,
            will=will,
            on_connected=self._on_connected,
            on_connection_failure=self._on_connection_failure,
            on_disconnected=self._on_disconnected,
            on_stopped=self._on_stopped,
        )

    # lifecycle callbacks run on awscrt's event-loop thread: only flip events and log
    def _on_connected(self, _data: Any) -> None:
        log.info("mqtt: connected")
        self.connected.set()
        self._wakeup.set()

    def _on_connection_failure(self, data: Any) -> None:
        log.warning("mqtt: connection failed (%s)", getattr(data, "exception", "unknown"))

    def _on_disconnected(self, data: Any) -> None:
        log.warning("mqtt: disconnected (%s)", getattr(data, "exception", "unknown"))
        self.connected.clear()

    def _on_stopped(self, _data: Any) -> None:
        self.connected.clear()
        self.stopped.set()

    def publish(self, kind: str, message: dict[str, Any]) -> None:
        payload = encode(message)
        if kind == "status":
            self._publish_status(payload)
        elif self.qos == 1:
            self.outbox.put(self.topic, payload, qos=1)
            self._wakeup.set()
        elif self.connected.is_set():
            self.client.publish(self._packet(self.topic, payload, 0, False))

    def _publish_status(self, payload: bytes) -> None:
        if not self.connected.is_set():
            return  # superseded by the next one; the retained last will covers a device that stays away
        future = self.client.publish(self._packet(self.status_topic, payload, 1, self.retain_status))
        self._pending_status = [f for f in self._pending_status if not f.done()] + [future]

    def _packet(self, topic: str, payload: bytes, qos: int, retain: bool) -> Any:
        mqtt5 = self._mqtt5
        level = mqtt5.QoS.AT_LEAST_ONCE if qos == 1 else mqtt5.QoS.AT_MOST_ONCE
        return mqtt5.PublishPacket(topic=topic, payload=payload, qos=level, retain=retain)

    def _send_loop(self) -> None:
        while not self._closing.is_set():
            try:
                if not self.connected.wait(POLL_S):
                    continue
                items = self.outbox.peek(1)
                if not items:
                    self._wakeup.wait(POLL_S)
                    self._wakeup.clear()
                    continue
                if self._send(items[0]):
                    self.outbox.ack(items[0].id)
            except Exception:  # a bug must not end delivery for the daemon's life: log it, pause, go on
                log.exception("mqtt: sender loop error; retrying")
                self._closing.wait(POLL_S)

    def _send(self, item: OutboxItem) -> bool:
        """True when the broker acknowledged (or refused for good) ``item``; False to retry it."""
        try:
            future = self.client.publish(self._packet(item.topic, item.payload, item.qos, item.retain))
            result = future.result(timeout=self.ack_timeout_s)
        except concurrent.futures.TimeoutError:
            log.warning("mqtt: no PUBACK within %.1fs; will resend", self.ack_timeout_s)
            return False
        except Exception as error:  # the connection dropped under the publish: resend after reconnect
            log.debug("mqtt: publish interrupted (%s); will resend", error)
            self.connected.wait(POLL_S)
            return False
        puback = getattr(result, "puback", None)
        code = int(getattr(puback, "reason_code", 0) or 0)
        if code >= 0x80:
            self.rejected += 1
            log.error("mqtt: broker refused a message on %s (reason code %#x); dropped", item.topic, code)
        return True

    def outbox_stats(self) -> dict[str, int]:
        return self.outbox.stats()

    def close(self, timeout_s: float) -> None:
        """Send what the outbox holds while time allows, then disconnect cleanly; the rest stays on disk."""
        deadline = time.monotonic() + timeout_s
        while self.outbox.depth and self.connected.is_set() and time.monotonic() < deadline - 0.5:
            self._wakeup.set()
            time.sleep(0.02)
        for future in self._pending_status:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic() - 0.3))
            except Exception:  # timeout or disconnect: status is best effort
                break
        self._closing.set()
        self._sender.join(max(0.1, deadline - time.monotonic() - 0.2))
        left = self.outbox.depth
        if left:
            log.warning("mqtt: %d messages left in the outbox %s for the next run", left, self.outbox.path)
        self.client.stop(self._mqtt5.DisconnectPacket())
        self.stopped.wait(max(0.05, deadline - time.monotonic()))
        if not self._sender.is_alive():
            self.outbox.close()
