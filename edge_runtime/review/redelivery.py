"""Redelivered detections: QoS 1 is at least once, so the consumer, not MQTT, has to drop the second copy.

A broker that sent a detection but stopped before the subscriber's PUBACK reached it sends the message again
when the subscriber's persistent session resumes, and MQTT 5 (4.3.2) requires a QoS 1 receiver to treat it as
new whatever its DUP flag says (awscrt does not even expose the flag). The daemon numbers its detections
1, 2, 3... per session (a random id per run), publishes them in that order (even with several inference threads)
and its outbox keeps one message in flight, so they arrive in order: a detection whose ``seq`` is not above the
highest seen for its (device, session) is one already delivered. Status messages carry no sequence and are
never called duplicates (a retained status is sent again on every subscribe, on purpose). Memory is bounded: the
least recently heard of sessions are forgotten first, and a redelivery from a forgotten session would be taken
as new, which needs 10,000 newer sessions in between.
"""

from __future__ import annotations

import collections
import dataclasses

from edge_runtime.review.snapshots import SNAPSHOT_REJECTIONS
from edge_runtime.review.validation import REJECTIONS, Checked

DUPLICATE = "duplicate"
UNHANDLED = "unhandled"  # a message that passed every check yet failed to fold in: skipped, counted, logged
SKIPPED = (*REJECTIONS, *SNAPSHOT_REJECTIONS, DUPLICATE, UNHANDLED)  # every outcome counted and skipped (fleet, report)
MAX_SESSIONS = 10_000


class Redeliveries:
    """The highest detection ``seq`` per (device, session), for the most recently heard of ``max_sessions``."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1 (got {max_sessions})")
        self.max_sessions = max_sessions
        self._highest: collections.OrderedDict[tuple[str, str], int] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._highest)

    def seen(self, device: str, session: str, seq: int) -> bool:
        """True when ``seq`` is not above the highest seen for (device, session); otherwise remember it."""
        key = (device, session)
        highest = self._highest.get(key)
        if highest is not None:
            self._highest.move_to_end(key)
            if seq <= highest:
                return True
        self._highest[key] = seq
        if len(self._highest) > self.max_sessions:
            self._highest.popitem(last=False)
        return False

    def check(self, item: Checked) -> Checked:
        """``item`` itself, or, for a valid detection already delivered, the same message as a ``duplicate``."""
        message = item.message
        if not item.valid or item.kind != "detection" or message is None:
            return item
        device, session, seq = str(message["device"]), str(message["session"]), int(message["seq"])
        if not self.seen(device, session, seq):
            return item
        problem = f"redelivery of seq {seq} of session {session} (MQTT QoS 1 is at least once)"
        return dataclasses.replace(item, outcome=DUPLICATE, message=None, problem=problem[:200])
