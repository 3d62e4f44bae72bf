"""MQTT publishing with the awscrt MQTT5 client (awsiotsdk): a local broker over TCP or AWS IoT Core over mTLS.

QoS 1 detections take the durable path every remote publisher shares
(:class:`~edge_runtime.publishers.delivery.DurableDelivery`): ``publish`` only stores them in the on-disk outbox; the
sender keeps up to ``max_in_flight`` of them in flight, never more than the broker's Receive Maximum, and removes each
on its PUBACK. The client reconnects by itself with backoff; the sender just waits for the connection. Status messages
are sent directly (newer ones supersede them) and, if configured, retained. The last will (a retained ``offline``
status) tells the fleet when the device vanishes without a clean stop.

A connection that fails says why at once, in one ERROR line naming what to fix (the host that does not resolve, the
CA file a TLS handshake failed with, the refusal code), and the status turns ``degraded`` with that reason; retries go
on with backoff. ``edge-runtime run --fail-fast`` exits 2 on it instead (:meth:`MqttPublisher.first_outcome`).
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
from edge_runtime.publishers.base import Problem, Publisher
from edge_runtime.publishers.delivery import DurableDelivery, SendRefused, Transport
from edge_runtime.publishers.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)

POLL_S = 0.2
# A server that accepts the TCP connection but never answers CONNECT (TLS spoken to a plain port, or the reverse) is
# a failure after this long, not after awscrt's default 20 s: the first ERROR line comes within 5 s.
CONNACK_TIMEOUT_MS = 4000
TLS_CHECK_AFTER_S = 1.5  # a TLS connection attempt still pending after this long is checked with Python's ssl
STATUS_ACK_WAIT_S = 0.5  # stopping: how long the last statuses' PUBACKs are waited for, together
FAILURE_LOG_INTERVAL_S = 60.0  # the same connection failure is logged again at most this often


def topic_level(text: str) -> str:
    """``text`` (a source id, which may be a URI or a path) as one MQTT topic level: no ``/``, ``+``, ``#``."""
    return "".join("_" if char in "/+#\0" else char for char in text) or "_"


def render_topic(template: str, thing_name: str, source: str | None = None) -> str:
    """The topic of ``template``; ``{source}`` (a detection's or snapshot's source id) only where ``source`` is
    given: a status covers every source."""
    fields = {"thing_name": thing_name, **({"source": topic_level(source)} if source is not None else {})}
    try:
        topic = template.format(**fields)
    except (KeyError, IndexError, ValueError) as error:
        allowed = " and ".join(f"{{{name}}}" for name in fields)
        raise PublishError(f"topic template {template!r}: only {allowed} may be used ({error})") from None
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
    receive_maximum: int | None = None,
) -> Any:
    """An unstarted awscrt MQTT5 client for ``mqtt``: plain TCP, or mutual TLS when ``mqtt.tls`` is set.

    Shared by the daemon's publisher and ``edge-runtime review``'s subscriber, so both reach a broker (or AWS IoT
    Core) from the same config section and fail the same way on bad TLS files. The session is clean unless
    ``session_expiry_s`` > 0: then the broker keeps it (subscriptions and undelivered QoS 1 messages) for that long
    after a disconnect and the client rejoins it, from the first connection on. The daemon needs no broker session
    (its outbox keeps what is unsent); a reviewer that must not miss messages while it is away does.
    ``receive_maximum``: the QoS 1 messages the broker may send before this client acknowledges them (MQTT 5 flow
    control; None: the broker's own limit).
    """
    from awscrt import mqtt5
    from awsiot import mqtt5_client_builder

    # REJOIN_ALWAYS, not REJOIN_POST_SUCCESS: a restarted reviewer gets what queued while it was away. awscrt's
    # caveat (the client's own unacknowledged QoS 1 publishes do not survive its restart) does not touch a client
    # that only subscribes.
    behavior = (
        mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS if session_expiry_s > 0 else mqtt5.ClientSessionBehaviorType.CLEAN
    )
    password = mqtt_password(mqtt)
    common: dict[str, Any] = {
        "username": mqtt.username,
        "password": password,
        "endpoint": mqtt.host,
        "port": mqtt.port,
        "client_id": client_id,
        "connect_options": mqtt5.ConnectPacket(
            keep_alive_interval_sec=mqtt.keep_alive_s, session_expiry_interval_sec=session_expiry_s or None,
            username=mqtt.username, password=password, receive_maximum=receive_maximum,
        ),
        "session_behavior": behavior,
        "offline_queue_behavior": mqtt5.ClientOperationQueueBehaviorType.FAIL_ALL_ON_DISCONNECT,
        "min_reconnect_delay_ms": int(mqtt.reconnect_min_s * 1000),
        "max_reconnect_delay_ms": int(mqtt.reconnect_max_s * 1000),
        "ack_timeout_sec": max(1, int(mqtt.ack_timeout_s)),
        "connack_timeout_ms": CONNACK_TIMEOUT_MS,
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
    check_tls_files(mqtt)
    try:
        return mqtt5_client_builder.mtls_from_path(
            cert_filepath=mqtt.tls.cert, pri_key_filepath=mqtt.tls.key, ca_filepath=mqtt.tls.ca, **common
        )
    except Exception as error:  # awscrt raises AwsCrtError for unreadable or mismatched PEM files
        raise PublishError(f"publish.mqtt.tls: cannot set up mutual TLS ({error})") from None


def mqtt_password(mqtt: MqttConfig) -> str | None:
    """The MQTT password: ``password``, or the first line of ``password_file`` (PublishError naming the key)."""
    if mqtt.password is not None:
        return mqtt.password.get_secret_value()
    if mqtt.password_file is None:
        return None
    try:
        lines = Path(mqtt.password_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PublishError(f"publish.mqtt.password_file: cannot read {mqtt.password_file} ({error})") from None
    if not lines or not lines[0]:
        raise PublishError(f"publish.mqtt.password_file: {mqtt.password_file} is empty (the password is line 1)")
    return lines[0]


def check_tls_files(mqtt: MqttConfig) -> None:
    """Each configured TLS file exists, or PublishError naming the key."""
    if mqtt.tls is None:
        return
    for label, path in (("cert", mqtt.tls.cert), ("key", mqtt.tls.key), ("ca", mqtt.tls.ca)):
        if path is not None and not Path(path).is_file():
            raise PublishError(f"publish.mqtt.tls.{label}: file not found (got {path!r})")


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
    options.connack_timeout_ms = common["connack_timeout_ms"]
    options.on_publish_callback_fn = common["on_publish_received"]
    options.on_lifecycle_event_connection_success_fn = common["on_lifecycle_connection_success"]
    options.on_lifecycle_event_connection_failure_fn = common["on_lifecycle_connection_failure"]
    options.on_lifecycle_event_disconnection_fn = common["on_lifecycle_disconnection"]
    options.on_lifecycle_event_stopped_fn = common["on_lifecycle_stopped"]
    if hasattr(options, "disable_metrics"):  # else awscrt appends "?SDK=..." to the user name a broker checks
        options.disable_metrics = True
    return mqtt5.Client(options)


# PUBACK reason codes (MQTT 5, 3.4.2.1) a broker refuses a message with
PUBACK_REFUSALS = {
    0x80: "unspecified error",
    0x83: "implementation specific error",
    0x87: "not authorized (the broker's ACL or the device policy's iot:Publish)",
    0x90: "topic name invalid",
    0x91: "packet identifier in use",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
}


def puback_refusal(puback: Any, item: OutboxItem) -> str | None:
    """Why the broker refused ``item`` (one line), or None when its PUBACK says it took it (0x00, 0x10).

    awscrt hands over a reason code it has no name for as ``None``, the raw value lost: mosquitto answers 0x95
    (packet too large) above its ``message_size_limit``, and None read as 0 counted 600 of 600 refused snapshots as
    delivered. For a QoS 1 message, then, only a known code below 0x80 is a delivery; anything else is a refusal."""
    if item.qos < 1:
        return None  # QoS 0 has no PUBACK
    code = getattr(puback, "reason_code", None)
    detail = getattr(puback, "reason_string", None)
    said = f"; the broker says: {detail}" if detail else ""
    if code is None:
        return (f"mqtt: the broker refuses messages on {item.topic}: a PUBACK reason code outside MQTT 5's list for"
                f" PUBACK, for a message of {len(item.payload)} bytes (mosquitto answers 0x95, packet too large, above"
                f" its message_size_limit){said}")  # fmt: skip
    if int(code) >= 0x80:
        meaning = PUBACK_REFUSALS.get(int(code), "refused")
        return f"mqtt: the broker refuses messages on {item.topic}: {meaning} (reason code {int(code):#x}){said}"
    return None


# CONNACK reason codes (MQTT 5, 3.2.2.2) that no retry will fix, with what to check
REFUSALS = {
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid (publish.mqtt.client_id)",
    0x86: "bad user name or password",
    0x87: "not authorized (the device certificate's policy must allow iot:Connect for this client id)",
    0x88: "server unavailable",
    0x8A: "banned",
    0x8C: "bad authentication method",
}


def describe_connection_failure(data: Any, mqtt: MqttConfig) -> str:
    """One line saying why a connection attempt failed and what to check: DNS, TLS (naming the files) or refusal."""
    error = getattr(data, "exception", None)
    name = str(getattr(error, "name", "") or type(error).__name__)
    connack = getattr(data, "connack_packet", None)
    code = int(getattr(connack, "reason_code", 0) or 0) if connack is not None else 0
    where = f"{mqtt.host}:{mqtt.port}"
    if code >= 0x80:
        return f"mqtt: {where} refused the connection: {refusal_advice(code, mqtt)}"
    if "DNS" in name:
        return f"mqtt: cannot resolve host {mqtt.host!r} (publish.mqtt.host; {name})"
    if "TLS" in name or "PKI" in name or "X509" in name:
        if mqtt.tls is None:
            return f"mqtt: TLS failure at {where} without publish.mqtt.tls configured ({name})"
        files = f"ca {mqtt.tls.ca or '(system trust store)'}, cert {mqtt.tls.cert}"
        return f"mqtt: TLS handshake with {where} failed ({name}): check publish.mqtt.tls ({files}) and the port"
    if "CONNACK_TIMEOUT" in name or "SOCKET_CLOSED" in name or "CONNECTION_CLOSED" in name:
        return f"mqtt: {where} accepted the connection but no MQTT answer came ({name}; {_no_answer_hint(name, mqtt)})"
    if "CONNECTION_REFUSED" in name:
        return f"mqtt: nothing listens on {where} ({name})"
    return f"mqtt: cannot connect to {where} ({name}: {error})"


TLS_PORTS = (8883, 443, 8443)


def _no_answer_hint(name: str, mqtt: MqttConfig) -> str:
    """What most likely keeps the broker silent. A TLS mismatch makes the far end close the connection at once
    (or sits on a TLS port); a connection that simply stays silent is more likely a frozen or overloaded broker or
    a network that drops packets, and was called "a TLS port spoken to without TLS?" before."""
    plain_to_tls = mqtt.tls is None and mqtt.port in TLS_PORTS
    tls_to_plain = mqtt.tls is not None and mqtt.port == 1883
    if plain_to_tls or (mqtt.tls is None and "CLOSED" in name):
        return "a TLS port spoken to without TLS? set publish.mqtt.tls"
    if tls_to_plain or (mqtt.tls is not None and "CLOSED" in name):
        return "a plain MQTT port spoken to with TLS?"
    return "the broker frozen or overloaded, or a network that drops packets; retrying"


def is_aws_iot_core(host: str) -> bool:
    """An AWS IoT Core data endpoint (``xxxx-ats.iot.REGION.amazonaws.com``): it authenticates by certificate."""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn")) and ".iot." in host


def refusal_advice(code: int, mqtt: MqttConfig) -> str:
    """A CONNACK refusal and the fix for the broker at hand: AWS IoT Core checks certificates and policies, other
    brokers (mosquitto, EMQX, HiveMQ) user names, passwords and ACLs."""
    client = f"client id {mqtt.client_id!r}" if mqtt.client_id else "client id = the thing name"
    if code in (0x86, 0x87, 0x8C):
        meaning = REFUSALS[code].split(" (")[0]
        if is_aws_iot_core(mqtt.host):
            return (f"{meaning}: AWS IoT Core checks the device certificate (publish.mqtt.tls.cert: ACTIVE, attached to"
                    f" the thing) and its policy, which must allow iot:Connect for the {client}")  # fmt: skip
        if mqtt.username is None:
            return (f"{meaning}: this broker wants a login? set publish.mqtt.username and publish.mqtt.password_file"
                    " (or password)")  # fmt: skip
        secret = f"password_file {mqtt.password_file}" if mqtt.password_file else "publish.mqtt.password"
        # mosquitto answers a wrong password with 0x87 (not authorized), not 0x86: both name the login first
        return (f"{meaning}: check publish.mqtt.username ({mqtt.username!r}) and the password ({secret}) against"
                f" the broker's users, and that it lets this user connect ({client})")  # fmt: skip
    return REFUSALS.get(code, f"reason code {code:#x}")


def probe_tls(mqtt: MqttConfig, timeout_s: float = 3.0) -> str | None:
    """One TLS handshake to the broker with the configured files (Python's ssl): the failure, or None if it works."""
    import socket
    import ssl

    assert mqtt.tls is not None
    where = f"{mqtt.host}:{mqtt.port}"
    try:
        context = ssl.create_default_context(cafile=mqtt.tls.ca)
        context.load_cert_chain(mqtt.tls.cert, mqtt.tls.key)
        with (
            socket.create_connection((mqtt.host, mqtt.port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=mqtt.host),
        ):
            return None
    except ssl.SSLCertVerificationError as error:
        ca = mqtt.tls.ca or "(system trust store)"
        untrusted = f"the broker's certificate is not trusted ({error.verify_message})"
        return f"mqtt: TLS handshake with {where} failed: {untrusted}; check publish.mqtt.tls (ca {ca})"
    except (ssl.SSLError, OSError) as error:
        files = f"ca {mqtt.tls.ca or '(system trust store)'}, cert {mqtt.tls.cert}"
        return f"mqtt: TLS handshake with {where} failed ({error}): check publish.mqtt.tls ({files}) and the port"


class MqttTransport(Transport):
    """The awscrt MQTT5 client as a transport: connection state, window from the broker's Receive Maximum."""

    name = "mqtt"

    def __init__(self, config: RuntimeConfig, will: Any) -> None:
        from awscrt import mqtt5

        self._mqtt5 = mqtt5
        self.mqtt = config.publish.mqtt
        self.max_in_flight = self.mqtt.max_in_flight
        self.fail_fast = config.publish.fail_fast
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self.first_attempt = threading.Event()  # set by the first success or failure (for --fail-fast)
        self._receive_maximum = 65535
        self._problem: Problem | None = None
        self._last_failure_log: dict[str, float] = {}
        self._stopping = False
        self.client = build_mqtt5_client(
            self.mqtt,
            self.mqtt.client_id or config.thing_name,
            will=will,
            on_connected=self._on_connected,
            on_connection_failure=self._on_connection_failure,
            on_disconnected=self._on_disconnected,
            on_stopped=self._on_stopped,
        )

    def start(self) -> None:
        self.client.start()
        if self.mqtt.tls is not None:
            threading.Thread(target=self._diagnose_slow_tls, name="mqtt-tls-check", daemon=True).start()

    def _diagnose_slow_tls(self) -> None:
        """awscrt reports some TLS failures (a server certificate our CA did not sign) only when its own timeout
        ends, 10-20 s later. If the first attempt has not ended within :data:`TLS_CHECK_AFTER_S`, one handshake
        with Python's ssl and the same files says why at once (it changes nothing when that handshake works)."""
        if self.first_attempt.wait(TLS_CHECK_AFTER_S) or self._stopping:
            return
        reason = probe_tls(self.mqtt)
        if reason is not None and not self.first_attempt.is_set():
            self._failed(reason)

    # lifecycle callbacks run on awscrt's event-loop thread: only flip events and log
    def _on_connected(self, data: Any) -> None:
        settings = getattr(data, "negotiated_settings", None)
        self._receive_maximum = int(getattr(settings, "receive_maximum_from_server", 0) or 65535)
        log.info("mqtt: connected (broker Receive Maximum %d, sending up to %d in flight)", self._receive_maximum,
                 self.window())  # fmt: skip
        self._problem = None
        self.connected.set()
        self.first_attempt.set()

    def _on_connection_failure(self, data: Any) -> None:
        if self._stopping:
            return  # our own stop ends the attempt in progress: not a failure to report
        self._failed(describe_connection_failure(data, self.mqtt))

    def _failed(self, reason: str) -> None:
        if self._problem is None or self._problem.reason != reason:
            self._problem = Problem("mqtt", reason, time.time())
        now = time.monotonic()
        if now - self._last_failure_log.get(reason, float("-inf")) >= FAILURE_LOG_INTERVAL_S:
            self._last_failure_log[reason] = now
            if self.fail_fast and not self.first_attempt.is_set():  # the daemon exits with this reason: no retries
                log.debug("%s", reason)
            else:
                log.error("%s; retrying with backoff up to %gs", reason, self.mqtt.reconnect_max_s)
        self.first_attempt.set()

    def _on_disconnected(self, data: Any) -> None:
        if self._stopping:  # our own clean stop
            self.connected.clear()
            return
        log.warning("mqtt: disconnected (%s)", getattr(data, "exception", "unknown"))
        if self.connected.is_set():
            self._problem = Problem("mqtt", f"mqtt: disconnected from {self.mqtt.host}:{self.mqtt.port}", time.time())
        self.connected.clear()

    def _on_stopped(self, _data: Any) -> None:
        self.connected.clear()
        self.stopped.set()

    def ready(self) -> bool:
        return self.connected.is_set()

    def window(self) -> int:
        return max(1, min(self.max_in_flight, self._receive_maximum))

    def problem(self) -> Problem | None:
        return self._problem

    def packet(self, topic: str, payload: bytes, qos: int, retain: bool) -> Any:
        mqtt5 = self._mqtt5
        level = mqtt5.QoS.AT_LEAST_ONCE if qos == 1 else mqtt5.QoS.AT_MOST_ONCE
        return mqtt5.PublishPacket(topic=topic, payload=payload, qos=level, retain=retain)

    def send(self, item: OutboxItem) -> concurrent.futures.Future[Any]:
        acked: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def on_done(sent: concurrent.futures.Future[Any]) -> None:
            error = sent.exception()
            if error is not None:
                name = str(getattr(error, "name", "") or type(error).__name__)
                if "VALIDATION" in name:  # awscrt will never send it (e.g. above the broker's Maximum Packet Size)
                    why = f"mqtt: a message on {item.topic} of {len(item.payload)} bytes cannot be sent ({name})"
                    error = SendRefused(why)
                acked.set_exception(error)
                return
            refusal = puback_refusal(getattr(sent.result(), "puback", None), item)
            if refusal is not None:
                acked.set_exception(SendRefused(refusal))
            else:
                acked.set_result(True)

        self.client.publish(self.packet(item.topic, item.payload, item.qos, item.retain)).add_done_callback(on_done)
        return acked

    def stop(self, timeout_s: float) -> None:
        self._stopping = True
        self.client.stop(self._mqtt5.DisconnectPacket())
        self.stopped.wait(max(0.05, timeout_s))


class MqttPublisher(Publisher):
    """QoS 1: every detection and snapshot through the outbox (:class:`DurableDelivery`). QoS 0 (at most once): sent
    when connected, else dropped and counted; no outbox."""

    name = "mqtt"

    def __init__(self, config: RuntimeConfig, session: str, outbox: Outbox | None) -> None:
        from awscrt import mqtt5

        mqtt = config.publish.mqtt
        self.thing_name = config.thing_name
        self._templates = {"detection": mqtt.topic, "snapshot": mqtt.snapshot_topic}
        self._topics: dict[tuple[str, str], str] = {}  # (kind, source id) -> topic: {source} rendered once each
        self.status_topic = render_topic(mqtt.status_topic, config.thing_name)
        self.qos = mqtt.qos if outbox is not None else 0
        self.retain_status = mqtt.retain_status
        self.not_connected_drops = 0  # QoS 0 messages dropped while not connected
        self._pending_status: list[concurrent.futures.Future[Any]] = []
        will = status_message(device=config.thing_name, session=session, state="offline", at=time.time())
        self.transport = MqttTransport(
            config,
            mqtt5.PublishPacket(
                topic=self.status_topic, payload=encode(will), qos=mqtt5.QoS.AT_LEAST_ONCE, retain=self.retain_status
            ),
        )
        self.transport.start()
        self.delivery = DurableDelivery(outbox, self.transport, mqtt.ack_timeout_s) if outbox is not None else None

    @classmethod
    def from_config(cls, config: RuntimeConfig, session: str, outbox_path: str | Path) -> MqttPublisher:
        """Topics and TLS files are checked before the outbox file is made (bad input creates nothing); QoS 0
        needs no outbox."""
        mqtt = config.publish.mqtt
        for template in (mqtt.topic, mqtt.snapshot_topic):
            render_topic(template, config.thing_name, "check")
        render_topic(mqtt.status_topic, config.thing_name)
        check_tls_files(mqtt)
        box = config.publish.outbox
        outbox = Outbox(outbox_path, box.max_messages, box.max_bytes, box.reserve_bytes) if mqtt.qos == 1 else None
        return cls(config, session, outbox)

    @property
    def outbox(self) -> Outbox:
        if self.delivery is None:
            raise PublishError("mqtt: QoS 0 has no outbox")
        return self.delivery.outbox

    @property
    def connected(self) -> threading.Event:
        return self.transport.connected

    def first_outcome(self, timeout_s: float, stop: threading.Event | None = None) -> Problem | None:
        """Wait for the first connection attempt to end; its problem when it failed (``--fail-fast``). Polled, so a
        stop signal during the wait ends it within ``POLL_S``."""
        deadline = time.monotonic() + timeout_s
        while not self.transport.first_attempt.wait(max(0.0, min(POLL_S, deadline - time.monotonic()))):
            if (stop is not None and stop.is_set()) or time.monotonic() >= deadline:
                break
        if not self.transport.first_attempt.is_set():
            return Problem("mqtt", f"mqtt: no answer from {self.transport.mqtt.host} within {timeout_s:.0f}s",
                           time.time())  # fmt: skip
        return None if self.transport.ready() else self.transport.problem()

    def publish(self, kind: str, message: dict[str, Any]) -> None:
        payload = encode(message)
        topic = self.topic_of(kind, str(message.get("source", "")))
        if kind == "status":
            self._publish_status(payload)
        elif self.delivery is not None:
            self.delivery.put(topic, payload, qos=1)
        elif self.transport.ready():
            self.transport.client.publish(self.transport.packet(topic, payload, 0, False))
        else:
            self.not_connected_drops += 1  # at most once: not connected means not sent; counted as dropped

    def topic_of(self, kind: str, source: str) -> str:
        """The detection or snapshot topic of a message from ``source`` (``{source}`` filled in)."""
        key = (kind, source)
        topic = self._topics.get(key)
        if topic is None:
            template = self._templates["snapshot" if kind == "snapshot" else "detection"]
            topic = self._topics[key] = render_topic(template, self.thing_name, source)
        return topic

    def _publish_status(self, payload: bytes) -> None:
        if not self.transport.ready():
            return  # superseded by the next one; the retained last will covers a device that stays away
        packet = self.transport.packet(self.status_topic, payload, 1, self.retain_status)
        future = self.transport.client.publish(packet)
        self._pending_status = [*[f for f in self._pending_status if not f.done()], future]

    def outbox_stats(self) -> dict[str, int]:
        if self.delivery is None:
            return {"depth": 0, "bytes": 0, "dropped": self.not_connected_drops, "in_flight": 0}
        return self.delivery.stats()

    def problems(self) -> list[Problem]:
        if self.delivery is None:
            problem = self.transport.problem()
            return [problem] if problem is not None else []
        return self.delivery.problems()

    def close(self, timeout_s: float) -> None:
        """Send what the outbox holds while time allows, then disconnect cleanly; the rest stays on disk."""
        deadline = time.monotonic() + timeout_s
        status_until = min(time.monotonic() + STATUS_ACK_WAIT_S, deadline - 0.5)  # all of them, not each
        for future in self._pending_status:
            try:
                future.result(timeout=max(0.0, status_until - time.monotonic()))
            except Exception:  # timeout or disconnect: status is best effort
                break
        if self.delivery is None:
            if self.not_connected_drops:
                log.warning("mqtt: %d QoS 0 message(s) dropped while not connected", self.not_connected_drops)
            self.transport.stop(max(0.05, deadline - time.monotonic()))
        else:
            self.delivery.close(max(0.0, deadline - time.monotonic()))
