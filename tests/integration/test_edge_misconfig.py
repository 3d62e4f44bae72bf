"""Loud misconfiguration (issue 14): a broker the daemon cannot use says why within 5 s, and keeps every message.

Measured before: a host that does not resolve, a wrong CA or TLS to a plain port warned and retried forever, the
first TLS failure line after 10-19 s. Now, for each case against a real mosquitto on loopback: one ERROR line naming
what to fix within 5 s of start-up, status ``degraded`` with that reason (seen on stdout, the other publisher),
retries going on, SIGTERM within 5 s with every detection still in the outbox; with ``--fail-fast``, exit 2 and one
line instead.
"""

from __future__ import annotations

import getpass
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import free_port, start_daemon, wait_for  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker, make_tls_files, require_mosquitto  # type: ignore[import-not-found]

from edge_runtime.publishers.outbox import Outbox

THING = "cam-misconfig"


class Watched:
    """A daemon whose stdout (JSON lines) and stderr (log lines) are read as they come, with arrival times."""

    def __init__(self, *args: str) -> None:
        self.started = time.monotonic()
        self.process = start_daemon(*args)
        self.out: list[dict[str, Any]] = []
        self.err: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_out(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.out.append(json.loads(line))

    def _read_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                self.err.append((time.monotonic() - self.started, line.rstrip("\n")))

    def errors(self) -> list[tuple[float, str]]:
        with self._lock:
            return [(at, line) for at, line in self.err if " ERROR " in line]

    def running_at(self) -> float:
        """When the daemon said it runs (its publishers are built, their first connection attempt under way)."""
        with self._lock:
            return next(at for at, line in self.err if " running: " in line)

    def statuses(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.out if m["schema"] == "edge-runtime/status/1"]

    def detections(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.out if m["schema"] == "edge-runtime/detection/1"]

    def stop(self) -> tuple[int, float, str]:
        """SIGTERM: exit code, seconds it took, the whole stderr."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=15)
        seconds = time.monotonic() - started
        for reader in self._readers:
            reader.join(5)
        return code, seconds, "\n".join(line for _, line in self.err)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory, tls: dict[str, Path]) -> Iterator[dict[str, int]]:
    """One mosquitto: a plain port, a TLS port (our test CA), and a port that needs a password."""
    folder = tmp_path_factory.mktemp("broker")
    plain, secure, locked = free_port(), free_port(), free_port()
    passwords = folder / "passwords"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "someone", "secret"], check=True, timeout=30)
    broker = Broker(require_mosquitto(), folder, plain)
    broker.config.write_text(  # per-listener security: the plain port open, the TLS one ours, the third locked
        f"per_listener_settings true\nuser {getpass.getuser()}\n"
        f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {secure} 127.0.0.1\nallow_anonymous true\ncafile {tls['ca']}\ncertfile {tls['server']}\n"
        f"keyfile {tls['server-key']}\nrequire_certificate true\n"
        f"listener {locked} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
    )
    broker.start()
    yield {"plain": plain, "tls": secure, "locked": locked}
    broker.stop()


def daemon_args(model: Path, video: Path, outbox: Path, host: str, port: int, *extra: str) -> list[str]:
    return [
        "--model", str(model), "--source", str(video), "--loop", "--max-fps", "10", "--thing-name", THING,
        "--publish", "mqtt", "--publish", "stdout", "--status-interval", "1", "--mqtt-host", host,
        "--mqtt-port", str(port), "--set", f"publish.outbox.path={json.dumps(str(outbox))}",
        "--set", "publish.mqtt.reconnect_min_s=0.5", "--set", "publish.mqtt.reconnect_max_s=2", *extra,
    ]  # fmt: skip


def tls_flags(tls: dict[str, Path], ca: Path) -> list[str]:
    files = {"cert": tls["device"], "key": tls["device-key"], "ca": ca}
    return [arg for key, path in files.items() for arg in ("--set", f"publish.mqtt.tls.{key}={json.dumps(str(path))}")]


def wrong_ca(folder: Path) -> Path:
    other = make_tls_files(folder)  # a CA that did not sign the broker's certificate
    return other["ca"]


CASES = {
    "dns": lambda ports, tls, tmp: (("no-such-broker.invalid", ports["plain"]), [], ["cannot resolve host"]),
    "wrong-ca": lambda ports, tls, tmp: (("127.0.0.1", ports["tls"]), tls_flags(tls, wrong_ca(tmp / "other")),
                                         ["TLS handshake", "publish.mqtt.tls", "ca ", "not trusted"]),
    "tls-to-plain-port": lambda ports, tls, tmp: (("127.0.0.1", ports["plain"]), tls_flags(tls, tls["ca"]),
                                                  ["127.0.0.1:"]),
    "auth-refused": lambda ports, tls, tmp: (("127.0.0.1", ports["locked"]), [], ["refused the connection"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_misconfiguration_is_loud_and_loses_nothing(
    case: str, brokers: dict[str, int], tls: dict[str, Path], model_dir: Path, video: Path, tmp_path: Path
) -> None:
    (host, port), extra, words = CASES[case](brokers, tls, tmp_path)
    outbox = tmp_path / "ob.sqlite3"
    daemon = Watched(*daemon_args(model_dir, video, outbox, host, port, *extra))
    try:
        assert wait_for(lambda: bool(daemon.errors()), timeout=8), daemon.err
        at, line = daemon.errors()[0]
        # a refusal can be logged before the main thread's "running" line (a broker that refuses at once): wait
        assert wait_for(lambda: any(" running: " in text for _, text in list(daemon.err)), timeout=8), daemon.err
        assert at - daemon.running_at() < 5.0, (at, line)  # within 5 s of the first attempt (made just before)
        assert all(word in line for word in words), line
        assert wait_for(lambda: any(s["state"] == "degraded" for s in daemon.statuses()), timeout=5), daemon.out[-3:]
        degraded = next(s for s in daemon.statuses() if s["state"] == "degraded")
        (problem,) = degraded["problems"]
        assert problem["part"] == "mqtt" and problem["reason"] in line
        time.sleep(2.5)  # retries go on (with backoff) while detections are stored
    finally:
        code, seconds, err = daemon.stop()
    assert code == 0 and seconds < 5.0, (code, seconds, err[-2000:])
    assert "Traceback" not in err
    errors = [line for _, line in daemon.errors()]
    assert 1 <= len(errors) <= 2, errors  # the same reason is not repeated on every retry
    produced = {m["seq"] for m in daemon.detections()}
    held = Outbox(outbox, 100_000, 50_000_000)
    try:
        stored = {json.loads(item.payload)["seq"] for item in held.peek(10_000)}
        assert held.stats()["dropped"] == 0
    finally:
        held.close()
    assert produced and produced == stored  # every detection kept for when the broker is fixed


@pytest.mark.parametrize("case", ["dns", "auth-refused"])
def test_fail_fast_exits_2_in_one_line(
    case: str, brokers: dict[str, int], tls: dict[str, Path], model_dir: Path, video: Path, tmp_path: Path
) -> None:
    (host, port), extra, words = CASES[case](brokers, tls, tmp_path)
    started = time.monotonic()
    daemon = start_daemon(*daemon_args(model_dir, video, tmp_path / "ob.sqlite3", host, port, *extra, "--fail-fast"))
    out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 2 and time.monotonic() - started < 10, err
    lines = [line for line in err.strip().splitlines() if line.startswith("edge-runtime: error")]
    assert len(lines) == 1 and "publish.fail_fast" in lines[0], err
    assert all(word in lines[0] for word in words), lines
    assert "Traceback" not in err and not [m for m in map(json.loads, out.splitlines()) if "seq" in m]
