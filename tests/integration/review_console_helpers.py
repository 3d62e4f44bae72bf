"""Real parts for the console tests: the system chromium (Playwright), a PostgreSQL server in a temp folder, the
console as a subprocess, and a raw MQTT publisher. Each ``require_*`` skips when its part is missing and fails under
CI=true, where a skipped test would hide a gap (as the broker tests do)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import REPO  # type: ignore[import-not-found]

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium")
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


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
    for folder in PG_BIN_DIRS:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    missing("PostgreSQL is not installed (apt-get install -y postgresql; make test does)")
    raise AssertionError("unreachable")


class Postgres:
    """initdb + pg_ctl in ``folder`` on 127.0.0.1:``port`` (as the user ``postgres`` when run as root: PostgreSQL
    refuses to run as root), trust auth on loopback only. ``url`` is what ``--record`` takes."""

    def __init__(self, bin_dir: Path, folder: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.port = port
        self.data = folder / "data"
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.url = f"postgresql://{self.user}@127.0.0.1:{port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd="/")
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                missing("no 'postgres' user to run PostgreSQL as (apt-get install -y postgresql creates it)")
            shutil.chown(self.folder, self.user)
            for parent in self.folder.parents:  # the user must reach its folder (pytest's temp dirs are 0700)
                if str(parent) in ("/", "/tmp"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder}" \
                  " -c fsync=off -c max_connections=50"  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "-t", "30",
                  "start")  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop")


class Console:
    """``edge-runtime review serve`` as a subprocess; stderr collected, the URL taken from its first line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge_runtime", "review", "serve", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNTIME_")},
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


def publish_raw(port: int, items: list[tuple[str, bytes]], client_id: str = "raw-publisher") -> None:
    """Publish arbitrary payloads (QoS 1, acknowledged), as a misbehaving client would."""
    from awscrt import mqtt5

    connected = threading.Event()
    stopped = threading.Event()
    options = mqtt5.ClientOptions(host_name="127.0.0.1", port=port)
    options.connect_options = mqtt5.ConnectPacket(client_id=client_id, keep_alive_interval_sec=10)
    options.on_lifecycle_event_connection_success_fn = lambda _data: connected.set()
    options.on_lifecycle_event_stopped_fn = lambda _data: stopped.set()
    client: Any = mqtt5.Client(options)
    client.start()
    try:
        assert connected.wait(10)
        for topic, payload in items:
            client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)).result(30)
    finally:
        client.stop(mqtt5.DisconnectPacket())
        stopped.wait(5)
