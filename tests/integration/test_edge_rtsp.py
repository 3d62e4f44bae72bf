"""RTSP against a real RTSP server on loopback (GStreamer's gst-rtsp-server, tests/support/rtsp_server.py): the
daemon reads the stream, a server restarted mid-stream (a camera rebooting) is reconnected to, and a stalled stream
(the server frozen with SIGSTOP) is a stall: degraded naming the URI, then frames again once it thaws."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import REPO, free_port, read_jsonl, start_daemon, wait_for  # type: ignore[import-not-found]

from edge_runtime.messages import validate_message

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = REPO / "tests" / "support" / "rtsp_server.py"


def require_rtsp_server() -> None:
    """Skip (fail under CI=true) without Debian's gst-rtsp-server bindings (make rtsp-server installs them)."""
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
             " from gi.repository import Gst, GstRtspServer; Gst.init(None);"
             " assert Gst.ElementFactory.find('rtpjpegpay') and Gst.ElementFactory.find('jpegenc')")  # fmt: skip
    ok = Path(SYSTEM_PYTHON).exists() and subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True,
                                                         timeout=60).returncode == 0  # fmt: skip
    if not ok:
        reason = ("gst-rtsp-server is not installed (apt-get install gir1.2-gst-rtsp-server-1.0"
                  " gstreamer1.0-plugins-good python3-gi, or make rtsp-server)")  # fmt: skip
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true requires the RTSP tests to run")
        pytest.skip(reason)


class RtspServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(self.port)], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    require_rtsp_server()
    server = RtspServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def detections(out: Path) -> list[dict[str, Any]]:
    return [m for m in read_jsonl(out) if m["schema"] == "edge-runtime/detection/1"]


def statuses(out: Path) -> list[dict[str, Any]]:
    return [m for m in read_jsonl(out) if m["schema"] == "edge-runtime/status/1"]


def test_rtsp_reads_reconnects_after_a_server_restart_and_a_stall_is_a_stall(
    rtsp_server: RtspServer, model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    daemon = start_daemon(
        "--model", str(model_dir), "--source", rtsp_server.url, "--publish", "file",
        "--set", f"publish.file.path={json.dumps(str(out))}", "--status-interval", "0.3",
        "--set", "source.stall_timeout_s=2", "--set", "source.reconnect_initial_s=0.5",
        "--set", "source.reconnect_max_s=1",
    )  # fmt: skip
    try:
        assert wait_for(lambda: len(detections(out)) >= 10, timeout=60), daemon.poll()
        rtsp_server.stop()  # the camera reboots
        rtsp_server.start()
        before = len(detections(out))
        assert wait_for(lambda: len(detections(out)) >= before + 10, timeout=30)
        assert statuses(out)[-1]["sources"][0]["reconnects"] >= 1
        rtsp_server.signal(signal.SIGSTOP)  # frozen: the connection stays open, nothing comes
        frozen_at = len(statuses(out))
        stalled = lambda: any(s["state"] == "degraded" for s in statuses(out)[frozen_at:])  # noqa: E731
        assert wait_for(stalled, timeout=20)
        rtsp_server.signal(signal.SIGCONT)
        thawed = len(detections(out))
        assert wait_for(lambda: len(detections(out)) >= thawed + 10, timeout=30)
    finally:
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=15)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        elapsed = time.monotonic() - started
    assert code == 0 and elapsed < 5.0, (code, elapsed)
    messages = read_jsonl(out)
    for message in messages:
        validate_message(message)
    problems = [p["reason"] for s in statuses(out) if s["state"] == "degraded" for p in s["problems"]]
    assert problems and all(rtsp_server.url in reason for reason in problems)
    seqs = [m["seq"] for m in detections(out)]
    assert seqs == sorted(set(seqs)) and all(m["source"] == rtsp_server.url for m in detections(out))
