"""A real mosquitto broker on a free loopback port, a persistent QoS 1 subscriber (awscrt MQTT5), and the review."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import REPO  # type: ignore[import-not-found]


def require_mosquitto() -> str:
    """The mosquitto binary; skip (fail under CI=true) when it is not installed."""
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if binary is None:
        reason = "mosquitto is not installed (apt-get install -y mosquitto)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true requires the broker tests to run")
        pytest.skip(reason)
    return binary


class Broker:
    """mosquitto with persistence in a temp folder, stoppable and restartable on the same port."""

    def __init__(self, binary: str, folder: Path, port: int, extra_config: str = "") -> None:
        self.binary = binary
        self.folder = folder
        self.port = port
        self.config = folder / "mosquitto.conf"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder / 'data'}/\nautosave_interval 1\nmax_queued_messages 100000\n"
            # as root mosquitto would drop to user "mosquitto", who cannot write in a private temp folder
            f"user {getpass.getuser()}\n" + extra_config
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.folder / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {(self.folder / 'mosquitto.log').read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


class Subscriber:
    """A persistent-session QoS 1 subscriber that records every payload it receives, in arrival order."""

    def __init__(self, port: int, topic: str, client_id: str = "test-subscriber") -> None:
        from awscrt import mqtt5

        self.messages: list[dict[str, Any]] = []
        self.topics: list[str] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopped = threading.Event()
        options = mqtt5.ClientOptions(host_name="127.0.0.1", port=port)
        options.connect_options = mqtt5.ConnectPacket(
            client_id=client_id, keep_alive_interval_sec=10, session_expiry_interval_sec=3600
        )
        options.session_behavior = mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS
        options.min_reconnect_delay_ms = 100
        options.max_reconnect_delay_ms = 500
        options.on_publish_callback_fn = self._on_publish
        options.on_lifecycle_event_connection_success_fn = lambda _data: self._connected.set()
        options.on_lifecycle_event_disconnection_fn = lambda _data: self._connected.clear()
        options.on_lifecycle_event_stopped_fn = lambda _data: self._stopped.set()
        self.client = mqtt5.Client(options)
        self.client.start()
        if not self._connected.wait(10):
            raise TimeoutError("subscriber did not connect")
        self.client.subscribe(
            mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic_filter=topic, qos=mqtt5.QoS.AT_LEAST_ONCE)])
        ).result(timeout=10)

    def _on_publish(self, data: Any) -> None:
        with self._lock:
            self.topics.append(data.publish_packet.topic)
            self.messages.append(json.loads(bytes(data.publish_packet.payload)))

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        from awscrt import mqtt5

        self.client.stop(mqtt5.DisconnectPacket())
        self._stopped.wait(5)


class Review:
    """``edge-runtime review --json`` as a subprocess, its stdout events collected by a reader thread."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge_runtime", "review", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.events.append(json.loads(line))

    def snapshot(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["event"] == event]

    def states(self) -> dict[str, str]:
        """Each device's latest state as the review reported it."""
        return {e["device"]: e["state"] for e in self.snapshot("state")}

    def stop(self, timeout: float = 15) -> tuple[int, str]:
        """SIGTERM, as a service manager stops it: the exit code and stderr, within ``timeout``."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._reader.join(5)
        return code, self.process.stderr.read() if self.process.stderr else ""


def make_tls_files(folder: Path) -> dict[str, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1 and a device certificate, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.pem" for name in ("ca", "ca-key", "server", "server-key", "device", "device-key")}

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", str(files["ca-key"]), "-out", str(files["ca"]))  # fmt: skip
    for name, subject, extension in (
        ("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1"),
        ("device", "/CN=dev-test", "extendedKeyUsage=clientAuth"),
    ):
        request = folder / f"{name}.csr"
        ext = folder / f"{name}.ext"
        ext.write_text(extension + "\n")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", str(files[f"{name}-key"]),
            "-out", str(request))  # fmt: skip
        run("x509", "-req", "-in", str(request), "-CA", str(files["ca"]), "-CAkey", str(files["ca-key"]),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(files[name]))  # fmt: skip
    return files


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
