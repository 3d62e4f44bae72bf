"""The nucleus connection: connect over IPC, bounded waits on its futures, reconnection when it goes away.

The nucleus starts each component with ``AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT`` and ``SVCUID``
(the socket and the auth token). The IPC client is injected (a ``GreengrassCoreIPCClientV2`` or anything with its
``*_async`` methods), every future is waited on with a bound, and every failure becomes a
:class:`~edge_runtime.errors.PublishError` (the client cannot be set up, or a request was refused).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from edge_runtime.errors import PublishError, PublishRefusedError
from edge_runtime.publishers.base import Problem

log = logging.getLogger(__name__)

RECONNECT_INITIAL_S = 0.5  # first wait before connecting to a nucleus that went away, doubling ...
RECONNECT_MAX_S = 5.0  # ... up to this: a restarted nucleus is back within seconds


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



def _is_timeout(error: BaseException) -> bool:
    import concurrent.futures

    return isinstance(error, (TimeoutError, concurrent.futures.TimeoutError))


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
