"""The publisher seam: :class:`Publisher` and the local adapters (stdout, rotating JSON-lines file, recording fake).

The pipeline hands each message to every configured publisher with its kind (``detection`` or ``status``); an
adapter decides where that goes (MQTT maps kinds to topics, see :mod:`edge_runtime.publishers.mqtt`). ``close`` takes a
time bound because shutdown has one (Greengrass expects the component to stop within seconds).
"""

from __future__ import annotations

import abc
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edge_runtime.errors import PublishError, PublishRefusedError
from edge_runtime.messages import encode, iso_utc

KINDS = ("detection", "status", "snapshot")  # snapshot: snapshot.schema.json, only when snapshots.enabled


@dataclass(frozen=True)
class Problem:
    """Why a part cannot do its job now: one entry of the status message's ``problems`` (status.schema.json)."""

    part: str
    reason: str
    since: float  # epoch seconds

    def to_dict(self) -> dict[str, str]:
        return {"part": self.part, "reason": self.reason, "since": iso_utc(self.since)}


class Publisher(abc.ABC):
    name: str

    @abc.abstractmethod
    def publish(self, kind: str, message: dict[str, Any]) -> None:
        """Send or durably queue ``message``; raise PublishError if it cannot be accepted at all."""

    def close(self, timeout_s: float) -> None:  # noqa: B027 - optional hook: most publishers hold nothing
        """Flush what is pending within ``timeout_s`` and release resources."""

    def outbox_stats(self) -> dict[str, int] | None:
        """Depth, bytes and dropped count of an outbox, for publishers that have one."""
        return None

    def problems(self) -> list[Problem]:
        """What keeps this publisher from delivering now (the status message's ``degraded`` reasons)."""
        return []

    def fatal(self) -> PublishRefusedError | None:
        """A refusal every later message would meet too (e.g. not authorized): the daemon stops with it."""
        return None

    def first_outcome(self, timeout_s: float, stop: threading.Event | None = None) -> Problem | None:
        """``--fail-fast``: wait up to ``timeout_s`` (or until ``stop`` is set) for the first connection attempt;
        its problem if it failed."""
        return None


class StdoutPublisher(Publisher):
    """One JSON object per line on stdout (logs go to stderr, so stdout can be piped to another program)."""

    name = "stdout"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def publish(self, kind: str, message: dict[str, Any]) -> None:
        stream = self.stream or sys.stdout
        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError) as error:  # closed pipe or stream
                raise PublishError(f"stdout: cannot write ({error})") from None


class JsonlFilePublisher(Publisher):
    """Appends JSON lines to ``path``; at ``max_bytes`` the file is rotated to ``path.1`` (older ones shift up).

    Whether it can be written is checked at start (a bad path is one line and exit 2), but the file is made with
    the first message: a run that publishes nothing (a folder of unreadable images) leaves no empty file behind."""

    name = "file"

    def __init__(self, path: str | Path, max_bytes: int, backups: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        problem = _unwritable(self.path)
        if problem is not None:
            raise PublishError(f"{self.path}: cannot open for writing ({problem})")

    def _open(self) -> IO[bytes]:
        if self._file is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("ab")
            except OSError as error:
                raise PublishError(f"{self.path}: cannot open for writing ({path_problem(self.path, error)})") from None
        return self._file

    def publish(self, kind: str, message: dict[str, Any]) -> None:
        data = encode(message) + b"\n"
        with self._lock:
            self._open()
            assert self._file is not None
            try:
                if self._file.tell() > 0 and self._file.tell() + len(data) > self.max_bytes:
                    self._rotate()
                self._file.write(data)
                self._file.flush()
            except OSError as error:
                raise PublishError(f"{self.path}: cannot write ({error.strerror})") from None

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        if self.backups == 0:
            self.path.unlink()
        else:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("ab")

    def close(self, timeout_s: float) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()


class RecordingPublisher(Publisher):
    """Keeps every message in memory (for tests); ``fail`` makes publish raise, as a broken output would."""

    name = "recording"

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.closed = False
        self.fail = False
        self._lock = threading.Lock()

    def publish(self, kind: str, message: dict[str, Any]) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown message kind {kind!r}")
        if self.fail:
            raise PublishError("recording: scripted failure")
        with self._lock:
            self.messages.append((kind, message))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [message for k, message in self.messages if k == kind]

    def close(self, timeout_s: float) -> None:
        self.closed = True


def _unwritable(path: Path) -> str | None:
    """Why ``path`` could not be created or appended to by this process (None: it can), making nothing."""
    if path.exists():
        if path.is_dir():
            return "it is a folder"
        return None if os.access(path, os.W_OK) else path_problem(path, PermissionError())
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            return None if os.access(parent, os.W_OK | os.X_OK) else path_problem(path, PermissionError())
    return None


def path_problem(path: Path, error: OSError) -> str:
    """What is wrong with a path to be written, in words: a parent that is a file, a folder not ours, or the OS's."""
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a folder"
    if isinstance(error, PermissionError):
        folder = next((parent for parent in path.parents if parent.exists()), path.parent)
        return f"permission denied: this process (uid {os.geteuid()}) may not write in {folder}"
    return error.strerror or str(error)
