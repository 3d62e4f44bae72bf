"""The publishing step: every message of every source goes to the daemon's publishers through one :class:`Outlet`.

The daemon owns the publishers (built once, closed once, whatever number of sources run); each Pipeline hands its
messages forward to the outlet and never sees a publisher itself. Nothing a publisher raises ends the calling
thread: a refusal for good (here, or later from a sender thread: :meth:`Publisher.fatal`) stops the daemon with
it, anything else is counted and logged at a bounded rate.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from edge_runtime.errors import PublishError, PublishRefusedError
from edge_runtime.health import Stats
from edge_runtime.publishers.base import Problem, Publisher

log = logging.getLogger(__name__)


class Outlet:
    """The daemon's publishers, their counters (in ``stats``) and the first refusal that stopped the daemon."""

    def __init__(self, publishers: list[Publisher], stop: threading.Event, stats: Stats | None = None) -> None:
        self.publishers = publishers
        self.stop_event = stop
        self.stats = stats or Stats()
        self.fatal_error: PublishRefusedError | None = None

    def publish(self, kind: str, message: dict[str, Any]) -> None:
        """Hand ``message`` to every publisher."""
        for publisher in self.publishers:
            try:
                publisher.publish(kind, message)
                self.stats.message_published(True)
            except PublishRefusedError as error:
                self.stats.message_published(False)
                self._stop_on_refusal(error)
            except Exception as error:  # PublishError, or a publisher's bug: never the inference thread's end
                self.stats.message_published(False)
                if self.stats.publish_errors % 100 == 1:  # the first, then every 100th: no log flood
                    text = str(error) if isinstance(error, PublishError) else f"{publisher.name}: {error!r}"
                    log.error("%s (%d publish errors so far)", text, self.stats.publish_errors)
            refusal = publisher.fatal()
            if refusal is not None:
                self._stop_on_refusal(refusal)

    def _stop_on_refusal(self, error: PublishRefusedError) -> None:
        if self.fatal_error is None:  # the first refusal stops the daemon; later ones are the same news
            self.fatal_error = error  # not logged as the error here: the CLI's exit line says it, once
            log.info("publishing is refused for good: stopping (nothing can be delivered)")
            self.stop_event.set()

    def problems(self) -> list[Problem]:
        return [problem for publisher in self.publishers for problem in publisher.problems()]

    def outbox_stats(self) -> dict[str, int] | None:
        """The sum over every publisher's outbox; None when none has one."""
        outbox: dict[str, int] | None = None
        for publisher in self.publishers:
            stats = publisher.outbox_stats()
            if stats is not None:
                outbox = {key: (outbox or {}).get(key, 0) + value for key, value in stats.items()}
        return outbox

    def close(self, timeout_s: float, deadline: float) -> bool:
        """Close every publisher (flushing outboxes) by the monotonic ``deadline``; False if one failed."""
        import time

        clean = True
        for publisher in self.publishers:
            try:
                publisher.close(max(0.0, min(timeout_s, deadline - time.monotonic())))
            except PublishError as error:
                log.error("%s", error)
                clean = False
        return clean
