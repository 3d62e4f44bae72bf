"""One daemon per outbox: an exclusive ``flock`` on ``<outbox>.lock``, held as long as the outbox is open.

Two daemons on one outbox (the same ``state_dir``, or the same ``publish.outbox.path``) both send the same rows and
both delete them: measured, 23-184 duplicates per daemon, an outbox depth of -753 in status (invalid against its own
schema) and 82 messages that never arrived. SQLite's own locking keeps the file consistent but not the queue's
meaning, so the second daemon is refused at start, in one line naming the folder and the daemon that holds it.

``flock`` (not SQLite's POSIX locks, which a process silently shares with itself) on a separate file: the kernel
drops it when the process dies, however it dies, so a SIGKILLed daemon never leaves a stale lock behind; the pid
written into the file is only for the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from edge_runtime.errors import PublishError


class OutboxLock:
    """The exclusive lock of one outbox file (:meth:`acquire` raises PublishError when another process holds it)."""

    def __init__(self, outbox: str | Path) -> None:
        self.outbox = Path(outbox)
        self.path = self.outbox.with_name(self.outbox.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise PublishError(
                f"{self.outbox.parent}: the outbox {self.outbox.name} is in use by another edge-runtime daemon ({who});"
                " one daemon per outbox: stop that one, or give this one its own state_dir or thing_name"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
