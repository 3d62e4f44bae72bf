"""The hand-off between the subscriber's thread and the review loop: a full inbox holds the subscriber (so the
broker keeps the backlog) and drops, counted, only after ``block_s``; nothing is lost or reordered on the way."""

from __future__ import annotations

import threading
import time
from typing import Optional

from edge_runtime.review.fleet import Fleet
from edge_runtime.review.session import Limits, ReviewSession
from edge_runtime.review.subscriber import Deliver, Received, Subscriber
from edge_runtime.review.validation import Checked
from edge_runtime.review.view import View
from tests.unit.test_review import T0, detection, raw


class ThreadSubscriber(Subscriber):
    """Delivers from a thread of its own, as awscrt's event loop does."""

    def __init__(self, payloads: list[bytes], done: threading.Event) -> None:
        self.payloads = payloads
        self.done = done  # set after the last delivery: the loop then stops and handles what is left
        self.topics = ["edge/#"]
        self.thread: Optional[threading.Thread] = None
        self.held_s = 0.0  # the longest a delivery was held

    def start(self, deliver: Deliver) -> None:
        def run() -> None:
            for payload in self.payloads:
                started = time.monotonic()
                deliver(Received("edge/cam-a/detections", payload, len(payload), T0))
                self.held_s = max(self.held_s, time.monotonic() - started)
            self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def close(self, timeout_s: float) -> None:
        assert self.thread is not None
        self.thread.join(timeout_s)


class SlowView(View):
    """A loop that falls behind: 2 ms per message."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    def message(self, item: Checked, fleet: Fleet, now: float) -> None:
        time.sleep(0.002)
        if item.message is not None:
            self.seqs.append(int(item.message["seq"]))


def run(count: int, block_s: float) -> tuple[ReviewSession, SlowView, ThreadSubscriber]:
    stop = threading.Event()
    subscriber = ThreadSubscriber([raw(detection("cam-a", n, [("cat", 0.9)])) for n in range(1, count + 1)], stop)
    view = SlowView()
    limits = Limits(duration_s=20, queue_size=10, block_s=block_s)
    session = ReviewSession(subscriber, Fleet(), view, stop, limits=limits)
    session.run()
    return session, view, subscriber


def test_a_full_inbox_holds_the_subscriber_and_loses_nothing() -> None:
    session, view, subscriber = run(200, block_s=5.0)
    assert session.dropped == 0 and view.seqs == list(range(1, 201))  # all of them, in order
    assert subscriber.held_s > 0.005  # it was held: the broker would have kept the backlog


def test_past_block_s_a_full_inbox_drops_and_counts() -> None:
    session, view, _subscriber = run(200, block_s=0.0)
    assert session.dropped > 0
    assert len(view.seqs) + session.dropped == 200 and view.seqs == sorted(view.seqs)
    assert session.fleet.health["dropped"] == session.dropped  # shown on the page and in /api/fleet
