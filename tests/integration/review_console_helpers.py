"""Real parts for the console tests: the system chromium (Playwright), a PostgreSQL server in a temp folder, the
console as a subprocess, and a raw MQTT publisher. Each ``require_*`` skips when its part is missing and fails under
CI=true, where a skipped test would hide a gap (as the broker tests do)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from edge_helpers import REPO  # type: ignore[import-not-found]
from edge_mqtt_helpers import publish_raw  # type: ignore[import-not-found]

from tests.support.postgres import Postgres, PostgresMissing, find_bin_dir

__all__ = ["Console", "Postgres", "publish_raw", "require_chromium", "require_postgres", "start_postgres"]

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")


def missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires this test to run")
    pytest.skip(reason)


def require_chromium() -> str:
    """The system chromium (apt), driven by Playwright for Python; Playwright's own browsers are never used."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("playwright is not installed (pip install playwright; make test does)")
    binary = shutil.which("chromium") or next((p for p in CHROMIUM_PATHS if Path(p).exists()), None)
    if binary is None:
        missing("chromium is not installed (apt-get install -y chromium; make test does)")
    return str(binary)


def require_postgres() -> Path:
    """The folder holding initdb and pg_ctl (apt postgresql)."""
    folder = find_bin_dir()
    if folder is None:
        missing("PostgreSQL is not installed (apt-get install -y postgresql; make test does)")
    assert folder is not None
    return folder


def start_postgres(folder: Path, port: int) -> Postgres:
    server = Postgres(require_postgres(), folder, port)
    try:
        server.start()
    except PostgresMissing as error:
        missing(str(error))
    return server


def start_again(server: Postgres) -> None:
    """Start a stopped test server on its data folder again, as ``Postgres.start`` first did (no initdb)."""
    options = f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={server.folder}" \
              " -c max_connections=50 -c fsync=off"  # fmt: skip
    server._run("pg_ctl", "-D", str(server.data), "-o", options, "-l", str(server.folder / "log"), "-w", "-t", "30",
                "start")  # fmt: skip


class Console:
    """``edge-runtime review serve`` as a subprocess; stderr collected, the URL taken from its first line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge_runtime", "review", "serve", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNTIME_")}, **(env or {})},
        )  # fmt: skip
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def stderr(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def url(self, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            for line in list(self.lines):
                if "console on " in line:
                    return line.split("console on ", 1)[1].split()[0]
            time.sleep(0.05)
        raise AssertionError(f"the console did not start: {self.stderr()}")

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._reader.join(5)
        return code
