"""Every open and read of a source has a deadline, and a file FFmpeg cannot read is our one line, not FFmpeg's."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_helpers import start_daemon  # type: ignore[import-not-found]

from edge_runtime.errors import SourceError
from edge_runtime.sources.base import MjpegHttpSource


@pytest.fixture
def header_dripper() -> Iterator[str]:
    """An HTTP server on loopback that answers every request with its status line and then a header byte every
    0.3 s, for a minute: each read gets a byte well within any per-read timeout, the headers never end."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.2)
    done = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\n")
                for _ in range(200):
                    if done.wait(0.3):
                        return
                    conn.sendall(b"X")
            except OSError:
                return

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/stream.mjpg"
    finally:
        done.set()
        thread.join(2)
        server.close()


def test_a_server_that_drips_its_headers_cannot_hang_open(header_dripper: str) -> None:
    source = MjpegHttpSource(header_dripper, read_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"no response within 1 s \(source.stall_timeout_s\)"):
        source.open()
    assert time.monotonic() - started < 3.0


def test_a_bad_mp4_is_our_one_line_only(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(range(256)) * 20)
    daemon = start_daemon("--model", str(model_dir), "--source", str(bad))
    out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 2 and out == ""
    assert err.strip().splitlines() == [f"edge-runtime: error: {bad}: cannot open file source (not a video FFmpeg can"
                                        " read?)"]  # fmt: skip
