"""Greengrass IPC: the publisher (PublishToIoTCore, PublishToTopic) and the component-configuration bridge.

Inside a Greengrass component the nucleus is the only way out: it holds the device certificate and the
connection to AWS IoT Core, and lets a component publish only on the topics its recipe's ``accessControl``
allows. The nucleus starts each component with ``AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT`` and
``SVCUID`` (the socket and the auth token), so their presence is how the daemon knows it runs in Greengrass
(:func:`edge_runtime.greengrass.in_greengrass`).

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
from edge_runtime.errors import ConfigError, EdgeRuntimeError, PublishError, PublishRefusedError
from edge_runtime.messages import encode
from edge_runtime.publishers.base import Problem, Publisher
from edge_runtime.publishers.delivery import DurableDelivery, SendRefused, Transport
from edge_runtime.publishers.mqtt import render_topic
from edge_runtime.publishers.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)

RECONNECT_INITIAL_S = 0.5  # first wait before connecting to a nucleus that went away, doubling ...
RECONNECT_MAX_S = 5.0  # ... up to this: a restarted nucleus is back within seconds
QOS_AT_LEAST_ONCE = "1"  # awsiot.greengrasscoreipc.model.QOS.AT_LEAST_ONCE
# Component configuration keys that are not daemon settings: the nucleus' authorization policies, and the
# Install script's options (read by the recipe through {configuration:/install/...}).
NOT_RUNTIME_KEYS = ("accessControl", "install")


def connect(timeout_s: float) -> Any:
    """A connected ``GreengrassCoreIPCClientV2`` (socket and token from the environment), or PublishError."""
    try:
        from awsiot.greengrasscoreipc import connect as ipc_connect
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

        return GreengrassCoreIPCClientV2(client=ipc_connect(timeout=timeout_s))
    except Exception as error:  # KeyError (no env), TimeoutError, awscrt.exceptions.AwsCrtError
        raise PublishError(f"greengrass: cannot connect to the nucleus IPC socket ({_one_line(error)})") from None


# What to change when the nucleus refuses an operation: the recipe's accessControl policy that allows it.
ACCESS_HINTS = {
    "PublishToIoTCore": "aws.greengrass.ipc.mqttproxy",
    "PublishToTopic": "aws.greengrass.ipc.pubsub",
}


def wait(future: Any, timeout_s: float, what: str, stop: threading.Event | None = None) -> Any:
    """The result of an IPC future within ``timeout_s``, or a PublishError saying which request failed.

    The nucleus' UnauthorizedError becomes :class:`PublishRefusedError`, with the setting to fix: every later
    request of that kind would be refused too. With ``stop``, the wait also ends (PublishError) once it is set: a
    frozen nucleus cannot hold SIGTERM past its budget."""
    try:
        if stop is not None:
            deadline = time.monotonic() + timeout_s
            while not future.done() and time.monotonic() < deadline:
                if stop.is_set():
                    raise PublishError(f"greengrass: {what} abandoned: stopping")
                time.sleep(0.05)
        return future.result(timeout=timeout_s if stop is None else 0.0)
    except Exception as error:  # concurrent.futures.TimeoutError, the model's ServiceError/UnauthorizedError, ...
        reason = f"no answer in {timeout_s:.1f}s" if _is_timeout(error) else _one_line(error)
        if type(error).__name__ == "UnauthorizedError":
            refused = f"greengrass: {what} was refused, not authorized ({reason}): {_fix(what)}"
            raise PublishRefusedError(refused) from None
        raise PublishError(f"greengrass: {what} failed ({reason})") from None


def _fix(what: str) -> str:
    operation = what.split()[0]
    service = ACCESS_HINTS.get(operation)
    if service is None:
        return "the component's accessControl does not allow this operation"
    return (
        f"the recipe's accessControl ({service}) must allow aws.greengrass#{operation} on this topic (MQTT wildcards"
        " + and # match); a resource with {iot:thingName} is only expanded when the nucleus runs with"
        " interpolateComponentConfiguration: true"
    )


class IpcConnection:
    """The nucleus' IPC client, connected again with bounded backoff when the nucleus goes away.

    A nucleus restart (or a kill) closes the socket: the next request raises at once. The publisher and the
    component bridge then share one reconnect, in a thread of its own (``ipc-reconnect``), never the inference
    thread; hooks (:meth:`on_reconnect`) run on the new client, e.g. to subscribe to configuration updates again.
    Without a ``factory`` (a client injected by a test) the same client is kept.
    """

    def __init__(
        self,
        client: Any,
        factory: Callable[[], Any] | None = None,
        initial_s: float = RECONNECT_INITIAL_S,
        max_s: float = RECONNECT_MAX_S,
    ) -> None:
        self._client = client
        self.factory = factory
        self.initial_s = initial_s
        self.max_s = max_s
        self.ready = threading.Event()
        self.ready.set()
        self.reconnects = 0
        self.problem: Problem | None = None
        self._hooks: list[Callable[[Any], None]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def client(self) -> Any:
        with self._lock:
            return self._client

    def on_reconnect(self, hook: Callable[[Any], None]) -> None:
        self._hooks.append(hook)

    def lost(self, error: BaseException) -> None:
        """A request found the connection gone: reconnect in the background (once, however many callers)."""
        if self.factory is None or self._closed.is_set():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self.ready.clear()
            self.problem = Problem("greengrass", f"greengrass: lost the nucleus IPC connection ({_one_line(error)});"
                                   " reconnecting", time.time())  # fmt: skip
            log.error("%s", self.problem.reason)
            self._thread = threading.Thread(target=self._reconnect, name="ipc-reconnect", daemon=True)
            self._thread.start()

    def _reconnect(self) -> None:
        assert self.factory is not None
        delay = self.initial_s
        while not self._closed.wait(delay):
            try:
                client = self.factory()
            except Exception as error:  # PublishError from connect(): the nucleus is not back yet
                log.warning("greengrass: nucleus not reachable yet (%s); next try in %.1fs", error, delay)
                delay = min(self.max_s, delay * 2)
                continue
            with self._lock:
                if self._closed.is_set():  # closed while connecting: this client is nobody's
                    _close_quietly(client)
                    return
                old, self._client = self._client, client
            _close_quietly(old)
            self.reconnects += 1
            for hook in self._hooks:
                try:
                    hook(client)
                except Exception as error:
                    log.error("greengrass: after reconnecting: %s", _one_line(error))
            self.problem = None
            self.ready.set()
            log.info("greengrass: reconnected to the nucleus")
            return

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(1.0)
        _close_quietly(self.client)


def _close_quietly(client: Any) -> None:
    try:
        client.close(executor_wait=False)
    except Exception as error:  # already closed with its connection
        log.debug("closing an IPC client: %s", error)


def is_connection_error(error: BaseException) -> bool:
    """awsiotsdk's errors for a connection that is closed or was never there (not a refusal, not a timeout)."""
    name = type(error).__name__
    return name in ("ConnectionClosedError", "StreamClosedError") or (
        name == "AwsCrtError" and "CONNECTION_CLOSED" in str(getattr(error, "name", error))
    )


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
        from edge_runtime.access import MQTT_PROXY, PUBSUB

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


class ComponentBridge:
    """The component's side of the nucleus besides publishing: its configuration and its reported state."""

    def __init__(self, connection: IpcConnection | Any, timeout_s: float = 10.0) -> None:
        """``connection``: an :class:`IpcConnection` (or a bare client, kept as it is)."""
        self.connection = connection if isinstance(connection, IpcConnection) else IpcConnection(connection)
        self.timeout_s = timeout_s
        self.access_control: dict[str, Any] = {}  # the nucleus' policies for this component, as last read
        self._subscription: Any = None
        self._on_change: Callable[[list[str]], None] | None = None
        self.stop: threading.Event | None = None  # the running pipeline's stop event: waits end when it is set
        self.connection.on_reconnect(self._resubscribe)

    @property
    def client(self) -> Any:
        return self.connection.client

    def read_component_configuration(self) -> dict[str, Any]:
        """The whole component configuration, as the nucleus holds it (``accessControl`` included)."""
        response = wait(self.client.get_configuration_async(key_path=[]), self.timeout_s, "GetConfiguration",
                        self.stop)  # fmt: skip
        value = response.value or {}
        if not isinstance(value, dict):
            raise ConfigError(f"(component configuration): must be an object (got {type(value).__name__})")
        self.access_control = value.get("accessControl") or {}
        return value

    def read_tree(self) -> dict[str, Any]:
        """The component configuration as a daemon config tree (``accessControl`` and ``install`` left out)."""
        value = self.read_component_configuration()
        return {key: item for key, item in value.items() if key not in NOT_RUNTIME_KEYS}

    def subscribe(self, on_change: Callable[[list[str]], None]) -> None:
        """Call ``on_change(key_path)`` (in the client's executor) whenever a deployment changes the configuration."""

        def on_event(event: Any) -> None:
            update = event.configuration_update_event
            key_path = list(update.key_path or []) if update is not None else []
            try:
                on_change(key_path)
            except Exception:  # an exception here would only reach the executor's void
                log.exception("configuration update %s could not be applied", "/".join(key_path))

        def on_error(error: Exception) -> bool:
            log.error("configuration update stream: %s", _one_line(error))
            return False  # keep listening

        self._on_change = on_change
        future, self._subscription = self.client.subscribe_to_configuration_update_async(
            key_path=[], on_stream_event=on_event, on_stream_error=on_error
        )
        wait(future, self.timeout_s, "SubscribeToConfigurationUpdate", self.stop)

    def _resubscribe(self, _client: Any) -> None:
        """After a reconnect: the old subscription died with the old connection."""
        if self._on_change is not None:
            self._subscription = None
            self.subscribe(self._on_change)
            log.info("greengrass: subscribed to configuration updates again")

    def report_state(self, state: str) -> None:
        """``RUNNING`` or ``ERRORED``, shown by the nucleus (and the console) as the component's state."""
        wait(self.client.update_state_async(state=state), self.timeout_s, f"UpdateState {state}", self.stop)

    def close(self) -> None:
        if self._subscription is not None:
            try:
                self._subscription.close()
            except Exception as error:  # already closed with the connection
                log.debug("closing the configuration subscription: %s", error)
            self._subscription = None


class LiveConfig:
    """Applies a new configuration to a running pipeline: thresholds, inference interval and topics, no restart.

    Everything else (source, model, targets...) is read when a pipeline is built: a change there calls
    ``on_restart(keys)`` (the component rebuilds its pipeline, :class:`edge_runtime.greengrass.RestartRequest`), or,
    without one, is logged as waiting for the next start. A configuration that does not validate is refused as a
    whole and the daemon keeps the old one.
    """

    LIVE = ("model.score_threshold", "model.class_thresholds", "inference.interval_s", "publish.greengrass")

    def __init__(
        self,
        config: RuntimeConfig,
        pipeline: Any,
        publisher: IpcPublisher | None,
        on_restart: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.publisher = publisher
        self.on_restart = on_restart
        self._lock = threading.Lock()

    def apply(self, new: RuntimeConfig) -> list[str]:
        """Apply ``new`` where it differs; returns the dotted keys applied live."""
        with self._lock:
            old = self.config
            applied: list[str] = []
            if (new.model.score_threshold, new.model.class_thresholds) != (
                old.model.score_threshold,
                old.model.class_thresholds,
            ):
                self.pipeline.detector.set_thresholds(new.model.score_threshold, new.model.class_thresholds)
                applied += ["model.score_threshold", "model.class_thresholds"]
            if new.inference.interval_s != old.inference.interval_s:
                self.pipeline.set_inference_interval(new.inference.interval_s)
                applied.append("inference.interval_s")
            if new.publish.greengrass != old.publish.greengrass and self.publisher is not None:
                self.publisher.set_topics(new.publish.greengrass)
                applied.append("publish.greengrass")
            later = _changed_keys(_without_live(old), _without_live(new))
            if later and self.on_restart is not None:
                self.on_restart(later)
            elif later:
                log.warning("configuration changed for %s: applied at the next start", ", ".join(later))
            if applied:
                log.info("configuration applied live: %s", ", ".join(applied))
            self.config = new if not later else _merge_live(old, new)
            return applied

    def apply_tree(self, build: Callable[[], RuntimeConfig]) -> list[str]:
        """Build the new config (from the nucleus) and apply it; a bad one is logged and nothing changes."""
        try:
            return self.apply(build())
        except EdgeRuntimeError as error:
            log.error("configuration update refused, keeping the running configuration: %s", error)
            return []


def _without_live(config: RuntimeConfig) -> dict[str, Any]:
    tree = config.model_dump(mode="json")
    for dotted in LiveConfig.LIVE:
        section, key = dotted.split(".")
        tree[section].pop(key, None)
    return tree


def _merge_live(old: RuntimeConfig, new: RuntimeConfig) -> RuntimeConfig:
    """``old`` with ``new``'s live keys: what is running now."""
    model = old.model.model_copy(
        update={"score_threshold": new.model.score_threshold, "class_thresholds": new.model.class_thresholds}
    )
    publish = old.publish.model_copy(update={"greengrass": new.publish.greengrass})
    return old.model_copy(update={"model": model, "inference": new.inference, "publish": publish})


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys: list[str] = []
        for key in sorted(set(old) | set(new)):
            keys += _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return keys
    return [] if old == new else [prefix.rstrip(".")]


def _is_timeout(error: BaseException) -> bool:
    import concurrent.futures

    return isinstance(error, (TimeoutError, concurrent.futures.TimeoutError))


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
