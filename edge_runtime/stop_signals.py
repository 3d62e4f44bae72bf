"""SIGTERM and SIGINT end one ordered stop, whenever they come and however many: the handler only records them.

A service manager (systemd, the Greengrass nucleus) stops a process with SIGTERM and an operator with Ctrl-C; both
should end the same ordered shutdown, not a traceback from wherever the main thread was. Supervisors relay signals
in bursts (GNU ``timeout``, a nucleus stopping a component's tree): a handler that logs or sets a
``threading.Event`` takes a lock the interrupted main thread may hold (``Event.wait`` holds its condition's lock),
and 3 of 20 daemons hung forever on 8 SIGTERMs 50 µs apart. So the Python handler here only appends the signal
number to a list (no lock, no I/O), and ``signal.set_wakeup_fd`` has the interpreter's C handler write the number
to a pipe; a watcher thread reads the pipe (and, as a fallback, polls the list) and, in an ordinary thread, logs
``NAME: SIGTERM: stopping`` once and sets every stop event bound at that moment (:func:`stop_on_signals`).

:func:`install` runs at the first line of ``main`` for the commands that stop on signals (``run``, ``review``), and
the handlers stay for the whole process: a signal during start-up (loading the model, the ``--fail-fast`` wait, a
frozen nucleus) is remembered and stops whatever binds next, and one after the stop (flushing, exiting) changes
nothing. Start-up waits that are not on a pipeline's stop event wait on :func:`requested` instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, Optional

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
WATCH_POLL_S = 0.2  # the watcher also polls the recorded list, should another library take the wake-up fd


ROOMY_SIGNAL_STACK = 256 * 1024
_signal_stacks: list[ctypes.Array[ctypes.c_char]] = []  # alternate signal stacks given out: alive for the process


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def roomy_signal_stack() -> None:
    """Give the main thread an alternate signal stack big enough for any signal frame, if it has a small one.

    OpenVINO's CPU plugin leaves the thread that loads a model with an alternate signal stack of 11,568 bytes sized
    before AMX (bf16 on Sapphire Rapids and later) was enabled; AMX's tile state makes the kernel's signal frame
    bigger than that, so the next SIGTERM to the thread is a segmentation fault instead of a stop (seen in the test
    suite after auto measured OpenVINO bf16). Linux only; a thread without an alternate stack is left as it is."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        current = _StackT()
        if libc.sigaltstack(None, ctypes.byref(current)) != 0 or current.ss_flags != 0:
            return  # none (SS_DISABLE), or the thread runs on it now (SS_ONSTACK): nothing to replace
        if current.ss_size >= ROOMY_SIGNAL_STACK:
            return
        stack = ctypes.create_string_buffer(ROOMY_SIGNAL_STACK)
        if libc.sigaltstack(ctypes.byref(_StackT(ctypes.addressof(stack), 0, ROOMY_SIGNAL_STACK)), None) == 0:
            _signal_stacks.append(stack)
    except (OSError, AttributeError) as error:  # no libc symbol: signals work as they did
        log.debug("alternate signal stack left as it is: %s", error)


class StopRequested(Exception):
    """A stop signal came while the process was still starting (nothing to stop yet): the CLI exits 0."""


class SignalWatch:
    """The process's stop signals: recorded by the handler, acted on by a watcher thread."""

    def __init__(self) -> None:
        self.received: list[int] = []  # appended by the handler only: a list append takes no lock Python code holds
        self.stopping = threading.Event()  # set (by the watcher) once any stop signal came
        self.name = "edge-runtime"
        self._handled = 0  # how many of ``received`` the watcher has acted on
        self._bound: list[threading.Event] = []
        self._lock = threading.Lock()  # taken by the watcher and by bind/unbind, never inside a handler
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._pipe: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    @property
    def installed(self) -> bool:
        return self._pipe is not None

    def install(self, name: str | None = None) -> None:
        """Take SIGTERM and SIGINT (main thread only, as ``signal.signal`` requires)."""
        if name is not None:
            self.name = name
        if self.installed or threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only: a caller in another thread (tests) keeps what it has
        self._reset()  # a fresh start: what an earlier install (in-process callers, tests) recorded is not ours
        roomy_signal_stack()
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # the C handler must never block on a full pipe
        self._pipe = (read_fd, write_fd)
        self._previous = {sig: signal.signal(sig, self._record) for sig in SIGNALS}
        self._previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, args=(read_fd,), name="stop-signals", daemon=True)
        self._thread.start()

    def uninstall(self, act: bool = True) -> None:
        """Give the signals back (main thread only); a signal recorded but not yet acted on is acted on first."""
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if act:
            self._act()
        read_fd, write_fd = self._pipe
        self._pipe = None
        os.close(write_fd)  # the watcher sees the end of the pipe and returns
        if self._thread is not None:
            self._thread.join(1.0)
        os.close(read_fd)

    def release(self) -> None:
        """For a command that does not stop on signals: give them back, and deliver any that came meanwhile the
        default way (SIGINT: KeyboardInterrupt, SIGTERM: the process ends by it)."""
        self.uninstall(act=False)
        pending = list(self.received)
        self.received.clear()
        for signum in pending:
            signal.raise_signal(signum)

    def finish(self, act: bool = False) -> None:
        """An in-process caller (``main`` from tests, a block that installed for itself) is done: the signals and
        a clean slate back."""
        self.uninstall(act=act)
        self._reset()

    def _reset(self) -> None:
        with self._lock:
            self.received.clear()
            self._handled = 0
            self._bound.clear()
        self.stopping.clear()

    def bind(self, stop: threading.Event, name: str | None = None) -> None:
        """Until :meth:`unbind`, a stop signal sets ``stop``; one that already came sets it now."""
        roomy_signal_stack()  # engines are loaded by now: see the function
        with self._lock:
            self._bound.append(stop)
            if name is not None:
                self.name = name
        self._act()
        if self.stopping.is_set():
            stop.set()

    def unbind(self, stop: threading.Event) -> None:
        with self._lock:
            if stop in self._bound:
                self._bound.remove(stop)

    def _record(self, signum: int, _frame: Optional[FrameType]) -> None:
        self.received.append(signum)  # nothing else: see the module docstring

    def _watch(self, read_fd: int) -> None:
        while True:
            try:
                ready, _, _ = select.select([read_fd], [], [], WATCH_POLL_S)
                if ready and not os.read(read_fd, 512):
                    return  # uninstalled
            except OSError:
                return
            self._act()

    def _act(self) -> None:
        """Log and stop for the signals recorded since the last call (the watcher thread, or bind/uninstall)."""
        with self._lock:
            fresh = self.received[self._handled:]
            self._handled += len(fresh)
            bound = list(self._bound)
            name = self.name
        if not fresh:
            return
        first = not self.stopping.is_set()
        self.stopping.set()
        for stop in bound:
            stop.set()
        if first:
            log.info("%s: %s: stopping", name, signal.Signals(fresh[0]).name)
        if len(fresh) > 1 or not first:
            log.debug("%s: %d more stop signals: already stopping", name, len(fresh) - (1 if first else 0))


WATCH = SignalWatch()


def install(name: str = "edge-runtime") -> None:
    """Record stop signals from now on, for the life of the process (the first line of ``main``)."""
    WATCH.install(name)


def release() -> None:
    """The command does not stop on signals: the default behaviour back (see :meth:`SignalWatch.release`)."""
    WATCH.release()


def finish() -> None:
    """``main`` was called in-process (tests): give the signals back (see :meth:`SignalWatch.finish`)."""
    WATCH.finish()


def requested() -> threading.Event:
    """Set once a stop signal came: for start-up waits that happen before any pipeline's stop event exists."""
    return WATCH.stopping


def received() -> bool:
    """True once a stop signal was recorded (even if the watcher has not acted on it yet)."""
    return bool(WATCH.received)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, name: str = "edge-runtime") -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT set ``stop`` (logged at INFO as ``NAME: SIGTERM: stopping``); one that
    came earlier (start-up) sets it at once. Installs the handlers for the block if ``main`` did not (then they are
    given back after it); if it did, they stay, so a signal while the process exits changes nothing."""
    own = not WATCH.installed
    if own:
        WATCH.install()
    WATCH.bind(stop, name)
    try:
        yield
    finally:
        WATCH.unbind(stop)
        if own:
            WATCH.finish(act=True)
