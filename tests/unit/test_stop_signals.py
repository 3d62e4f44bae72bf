"""The stop-signal recorder (issue 21): the handler only records, a watcher thread stops; bursts are one stop."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import pytest

from edge_runtime.stop_signals import SignalWatch, stop_on_signals


def test_a_burst_is_one_stop_logged_once(caplog: Any) -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    with caplog.at_level(logging.INFO, logger="edge_runtime.stop_signals"), stop_on_signals(stop, "test"):
        for _ in range(8):
            os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
        assert stop.wait(0.5)
    assert signal.getsignal(signal.SIGTERM) is before  # given back after the block
    assert [r.getMessage() for r in caplog.records if "stopping" in r.getMessage()] == ["test: SIGTERM: stopping"]


def test_a_signal_before_the_stop_event_exists_stops_it_when_bound() -> None:
    watch = SignalWatch()
    watch.install("start-up")
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # during start-up: nothing bound yet
        assert watch.stopping.wait(5)
        stop = threading.Event()
        watch.bind(stop)
        assert stop.is_set()  # the pipeline built afterwards stops at once
        watch.unbind(stop)
    finally:
        watch.finish()
    assert not watch.stopping.is_set() and watch.received == []


def test_release_delivers_a_pending_sigint_the_default_way() -> None:
    watch = SignalWatch()
    watch.install()
    os.kill(os.getpid(), signal.SIGINT)  # recorded, not acted on: this command does not stop on signals
    with pytest.raises(KeyboardInterrupt):
        watch.release()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_signals_of_an_earlier_block_are_not_delivered_again() -> None:
    """An in-process caller (tests calling ``main`` one after another): what one run recorded is not the next's."""
    from edge_runtime.stop_signals import WATCH

    stop = threading.Event()
    with stop_on_signals(stop, "first"):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
    WATCH.install()
    WATCH.release()  # a command that does not stop on signals: nothing pending, so nothing is raised
    assert not WATCH.stopping.is_set()
