"""One durable delivery path for every remote publisher: the outbox, a window of sends in flight, and their acks.

A remote publisher (MQTT, Greengrass IPC, any later one) is a :class:`Transport`: it knows how to send one stored
message and whether it can send now. :class:`DurableDelivery` does the rest, the same way for all of them:

- ``put`` only stores the message in the :class:`~edge_runtime.publishers.outbox.Outbox` (a full disk is counted
  there, never raised): the inference thread never waits on a network, a broker or the nucleus.
- one ``<name>-sender`` thread sends the oldest stored messages, up to the transport's window in flight at once
  (MQTT: the broker's Receive Maximum), in the order they were stored, so throughput does not fall with the
  round-trip time; each acknowledged one is removed. A send that fails or is not acknowledged within
  ``ack_timeout_s`` stays stored and is sent again (at least once): after a reconnect the sender resumes with the
  oldest unacknowledged message.
- nothing the transport or the disk does can end the thread: errors are logged at a bounded rate and retried.
- :meth:`DurableDelivery.close` flushes while the stop budget allows and leaves the rest on disk for the next run.
"""

from __future__ import annotations

import abc
import concurrent.futures
import logging
import threading
import time
from typing import Any

from edge_runtime.errors import PublishError, PublishRefusedError
from edge_runtime.publishers.base import Problem
from edge_runtime.publishers.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often the sender looks at its window when nothing wakes it
ERROR_LOG_INTERVAL_S = 30.0
REFUSAL_SHOWN_S = 60.0  # a refusal keeps the status degraded this long after the last one, though others get through
FLUSH_STALL_S = 1.0  # stopping: flushing ends once nothing was acknowledged this long (a far end connected but silent)
MAX_FAILED_SENDS = 6  # a message whose send fails this often in a row while connected is undeliverable: dropped


class SendRefused(PublishError):
    """Raised by a transport's send future when the far end refused the message for good: it is dropped, counted."""


class Transport(abc.ABC):
    """How one remote publisher reaches its far end. Everything here is called from the sender thread only,
    except :meth:`problem` and :meth:`fatal` (any thread)."""

    name: str

    @abc.abstractmethod
    def ready(self) -> bool:
        """True when a send can be attempted now (connected)."""

    @abc.abstractmethod
    def window(self) -> int:
        """How many messages may be in flight at once now (at least 1)."""

    @abc.abstractmethod
    def send(self, item: OutboxItem) -> concurrent.futures.Future[Any]:
        """Start sending ``item``; the future resolves when the far end has it, raises :class:`SendRefused` when
        it refused it for good, or raises anything else to have it sent again. May raise (the connection is gone):
        the item is sent again later."""

    def lost(self, error: BaseException) -> None:  # noqa: B027 - optional: transports that reconnect themselves
        """A send raised ``error`` synchronously: the connection is gone (reconnect, if that is this side's job)."""

    def problem(self) -> Problem | None:
        """What stops delivery now (connection refused, TLS, DNS...), for the ``degraded`` status."""
        return None

    def fatal(self) -> PublishRefusedError | None:
        """A refusal that every later message would meet too (not authorized): the daemon stops with it."""
        return None

    def stop(self, timeout_s: float) -> None:  # noqa: B027 - optional hook
        """Disconnect within ``timeout_s``."""


class DurableDelivery:
    """The outbox and its sender thread for one :class:`Transport`."""

    def __init__(self, outbox: Outbox, transport: Transport, ack_timeout_s: float) -> None:
        self.outbox = outbox
        self.transport = transport
        self.ack_timeout_s = ack_timeout_s
        self.refused = 0  # dropped as refused or undeliverable (also in the outbox's dropped count): for the log
        self._in_flight: dict[int, tuple[concurrent.futures.Future[Any], float]] = {}
        self._closing = threading.Event()
        self._wakeup = threading.Event()
        self._last_error_log = -ERROR_LOG_INTERVAL_S
        self._unanswered_since: float | None = None  # sends time out (a frozen far end) and none succeeded since
        self._refusing: Problem | None = None  # the far end refused a message for good (e.g. not authorized) ...
        self._last_refusal = float("-inf")  # ... last at this (monotonic) time: shown for REFUSAL_SHOWN_S after it
        self._failing: Problem | None = None  # sends fail (not a refusal, not a lost connection) and none succeeded
        self._failures: dict[int, int] = {}  # item id -> failed sends in a row
        self._retry_at: dict[int, float] = {}  # item id -> not before (monotonic): a failing message backs off
        self._last_refusal_log = -ERROR_LOG_INTERVAL_S
        self._refusals_unlogged = 0
        self._sender = threading.Thread(target=self._send_loop, name=f"{transport.name}-sender", daemon=True)
        self._sender.start()

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Store one message for delivery (never raises: a message the outbox cannot keep is counted as dropped)."""
        self.outbox.put(topic, payload, qos, retain)
        self._wakeup.set()

    def stats(self) -> dict[str, int]:
        stats = self.outbox.stats()  # refused and undeliverable messages are in its (persistent) dropped count
        stats["in_flight"] = len(self._in_flight)
        return stats

    def problems(self) -> list[Problem]:
        problems = []
        transport = self.transport.problem()
        if transport is not None:
            problems.append(transport)
        elif self._unanswered_since is not None:
            reason = f"{self.transport.name}: sent messages are not acknowledged within {self.ack_timeout_s:g}s"
            problems.append(Problem(self.transport.name, reason, self._unanswered_since))
        if self._refusing is not None and time.monotonic() - self._last_refusal < REFUSAL_SHOWN_S:
            problems.append(self._refusing)
        if self._failing is not None:
            problems.append(self._failing)
        stored = self.outbox.problem()
        if stored is not None:
            problems.append(Problem("outbox", f"{self.transport.name}: {stored[0]}", stored[1]))
        return problems

    def _send_loop(self) -> None:
        while not self._closing.is_set():
            try:
                self._step()
            except Exception as error:  # a bug must not end delivery for the daemon's life: log it, pause, go on
                self._log_error("sender loop error; retrying", error)
                self._closing.wait(POLL_S)

    def _step(self) -> None:
        """Fill the window, then collect what completed (or wait for a new message)."""
        if not self.transport.ready():
            self._in_flight.clear()  # whatever was in flight is sent again after the reconnect, oldest first
            self._closing.wait(POLL_S)
            return
        room = self.transport.window() - len(self._in_flight)
        if room > 0:
            now = time.monotonic()
            for item in self.outbox.peek(room + len(self._in_flight) + len(self._retry_at)):
                if item.id in self._in_flight or room <= 0 or self._retry_at.get(item.id, now) > now:
                    continue
                try:
                    future = self.transport.send(item)
                except Exception as error:  # the connection is gone under us (or the client refused the request)
                    self._log_error("send failed; will resend", error)
                    self.transport.lost(error)
                    self._closing.wait(POLL_S)  # never a busy loop, whatever the transport does
                    return
                self._in_flight[item.id] = (future, time.monotonic() + self.ack_timeout_s)
                room -= 1
        if not self._in_flight:
            self._wakeup.wait(POLL_S * 4)
            self._wakeup.clear()
            return
        futures = [future for future, _ in self._in_flight.values()]
        concurrent.futures.wait(futures, timeout=POLL_S, return_when=concurrent.futures.FIRST_COMPLETED)
        self._collect()

    def _collect(self) -> None:
        now = time.monotonic()
        for item_id, (future, deadline) in sorted(self._in_flight.items()):
            if not future.done():
                if now > deadline:
                    del self._in_flight[item_id]
                    self._unanswered_since = self._unanswered_since or time.time()
                    self._log_error(f"no acknowledgement within {self.ack_timeout_s:.1f}s; will resend", None)
                continue
            del self._in_flight[item_id]
            error = future.exception()
            if error is None:
                self.outbox.ack(item_id)
                self._delivered_one(item_id)
            elif isinstance(error, SendRefused):
                self._drop(item_id, str(error))
            else:
                self._failed(item_id, error)

    def _delivered_one(self, item_id: int) -> None:
        self._unanswered_since = None
        self._forget_failures(item_id)

    def _forget_failures(self, item_id: int) -> None:
        self._failures.pop(item_id, None)
        self._retry_at.pop(item_id, None)
        if not self._failures:  # no message is failing any more
            self._failing = None

    def _drop(self, item_id: int, why: str) -> None:
        """The far end refused ``item_id`` for good (or it failed too often): remove it, count it as dropped (in
        the outbox's persistent count), say so at a bounded rate and in the status until a message gets through."""
        self.refused += 1
        self.outbox.drop(item_id)
        self._forget_failures(item_id)
        self._last_refusal = time.monotonic()  # an interval: never the wall clock, which may be stepped
        if self._refusing is None or self._refusing.reason != why:
            self._refusing = Problem(self.transport.name, why, time.time())
        self._refusals_unlogged += 1
        now = time.monotonic()
        if self.transport.fatal() is not None:  # the daemon stops on it and says it once, at exit
            return
        if now - self._last_refusal_log >= ERROR_LOG_INTERVAL_S:
            self._last_refusal_log = now
            log.error("%s; dropped (%d message(s) since the last such line, %d in all)", why,
                      self._refusals_unlogged, self.refused)  # fmt: skip
            self._refusals_unlogged = 0

    def _failed(self, item_id: int, error: BaseException) -> None:
        """A send failed without a refusal: back off (0.1 s doubling to 5 s) and resend; after
        :data:`MAX_FAILED_SENDS` in a row while connected the message cannot be delivered: drop it, counted."""
        failures = self._failures.get(item_id, 0) + 1
        detail = f"{type(error).__name__}: {error}"
        if failures >= MAX_FAILED_SENDS and self.transport.ready():
            self._drop(item_id, f"{self.transport.name}: a message could not be sent {failures} times ({detail})")
            return
        self._failures[item_id] = failures
        self._retry_at[item_id] = time.monotonic() + min(5.0, 0.1 * 2 ** (failures - 1))
        if self._failing is None:
            self._failing = Problem(self.transport.name, f"{self.transport.name}: sends fail ({detail})", time.time())
        self._log_error("send failed; will resend", error)

    def _log_error(self, what: str, error: BaseException | None) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            detail = f" ({type(error).__name__}: {error})" if error is not None else ""
            log.warning("%s: %s%s", self.transport.name, what, detail)

    def close(self, timeout_s: float) -> None:
        """Send what is stored while the budget allows, stop the sender and the transport; the rest stays on disk."""
        deadline = time.monotonic() + timeout_s
        depth, progress_at = self.outbox.stats()["depth"], time.monotonic()
        while depth and self.transport.ready() and time.monotonic() < deadline - 0.5:
            if time.monotonic() - progress_at > FLUSH_STALL_S:  # connected but silent: waiting more will not help
                log.info("%s: nothing acknowledged for %.1fs while stopping: not waiting for more",
                         self.transport.name, FLUSH_STALL_S)  # fmt: skip
                break
            self._wakeup.set()
            time.sleep(0.02)
            now_depth = self.outbox.stats()["depth"]
            if now_depth < depth:
                progress_at = time.monotonic()
            depth = now_depth
        self._closing.set()
        self._sender.join(max(0.05, min(1.0, deadline - time.monotonic() - 0.3)))
        left = self.outbox.stats()["depth"]
        if left:
            log.warning("%s: %d messages left in the outbox %s for the next run", self.transport.name, left,
                        self.outbox.path)  # fmt: skip
        self.transport.stop(max(0.05, deadline - time.monotonic()))
        if not self._sender.is_alive():
            self.outbox.close()  # also logs drops not logged yet
