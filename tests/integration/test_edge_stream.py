"""A live MJPEG stream served on loopback is cut and restored, stalled, then slowed to a drip: the daemon reconnects,
says ``degraded`` (the source) while it does, and resumes."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import free_port, read_jsonl, start_daemon, wait_for  # type: ignore[import-not-found]
from edge_stream_helpers import MjpegServer  # type: ignore[import-not-found]

from edge_runtime.messages import validate_message


@pytest.fixture
def server() -> Iterator[MjpegServer]:
    running = MjpegServer(free_port())
    running.start()
    yield running
    running.cut()


def kinds(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    messages = read_jsonl(path)
    detections = [m for m in messages if m["schema"] == "edge-runtime/detection/1"]
    statuses = [m for m in messages if m["schema"] == "edge-runtime/status/1"]
    return detections, statuses


def test_stream_cut_and_stall_reconnect_and_resume(model_dir: Path, server: MjpegServer, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    daemon = start_daemon(
        "--model", str(model_dir), "--source", server.url, "--publish", "file",
        "--set", f"publish.file.path={json.dumps(str(out))}", "--status-interval", "0.25",
        "--set", "source.stall_timeout_s=1", "--set", "source.reconnect_initial_s=0.2",
        "--set", "source.reconnect_max_s=0.5",
    )  # fmt: skip
    try:
        assert wait_for(lambda: len(kinds(out)[0]) >= 10, timeout=30), daemon.stderr
        server.cut()
        assert wait_for(lambda: kinds(out)[1][-1]["source"]["state"] == "reconnecting", timeout=5)
        during_cut = len(kinds(out)[0])
        time.sleep(1.5)
        assert len(kinds(out)[0]) <= during_cut + 2  # nothing new while the camera is gone (queued frames only)
        server.start()
        resumed_from = len(kinds(out)[0])
        assert wait_for(lambda: len(kinds(out)[0]) >= resumed_from + 10, timeout=15)
        assert wait_for(lambda: kinds(out)[1][-1]["source"]["state"] == "streaming", timeout=5)

        server.stall()  # the connection stays open but no frame comes: the stall timeout must reopen it
        reconnects_before = kinds(out)[1][-1]["source"]["reconnects"]
        assert wait_for(lambda: kinds(out)[1][-1]["source"]["reconnects"] > reconnects_before, timeout=10)
        server.resume()
        stalled_at = len(kinds(out)[0])
        assert wait_for(lambda: len(kinds(out)[0]) >= stalled_at + 10, timeout=15)

        server.drip_s = 0.05  # slow drip: bytes keep coming, a frame never completes within the 1 s stall timeout
        reconnects_before = kinds(out)[1][-1]["source"]["reconnects"]
        assert wait_for(lambda: kinds(out)[1][-1]["source"]["reconnects"] > reconnects_before, timeout=10)
        assert wait_for(lambda: any(p["part"] == "source" for p in kinds(out)[1][-1].get("problems", [])), 5)
        assert kinds(out)[1][-1]["state"] == "degraded"
        server.drip_s = 0.0
        dripped_at = len(kinds(out)[0])
        assert wait_for(lambda: len(kinds(out)[0]) >= dripped_at + 10, timeout=15)  # delivery resumed by itself

        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
        assert time.monotonic() - started < 5.0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert "Traceback" not in (daemon.stderr.read() if daemon.stderr else "")
    detections, statuses = kinds(out)
    seqs = [m["seq"] for m in detections]
    assert seqs == sorted(set(seqs))  # one sequence across reconnects
    assert statuses[-1]["state"] == "stopped" and statuses[-1]["source"]["reconnects"] >= 2
    for message in detections[:5] + detections[-5:] + statuses:
        validate_message(message)


def test_a_slow_drip_frame_is_a_stall_within_the_timeout(server: MjpegServer) -> None:
    """A server that sends a frame a byte at a time never trips a per-read timeout: the frame deadline catches it."""
    import time

    from edge_runtime.errors import SourceError
    from edge_runtime.sources.base import MjpegHttpSource

    source = MjpegHttpSource(server.url, read_timeout_s=1.0)
    source.open()
    try:
        assert source.read() is not None  # a normal frame first
        server.drip_s = 0.1  # 10 bytes a second: every read returns, no frame ever completes in time
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"no complete frame within 1 s \(stalled, or sending too slowly"):
            for _ in range(20):  # frames already buffered may still come out whole
                source.read()
        assert time.monotonic() - started < 3.0
    finally:
        source.close()
