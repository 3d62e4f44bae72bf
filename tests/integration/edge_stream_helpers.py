"""A small MJPEG-over-HTTP server on loopback that a test can cut, stall and restore, like a flaky IP camera."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "frameboundary"


def jpeg(index: int, size: tuple[int, int] = (160, 120)) -> bytes:
    image = np.full((size[1], size[0], 3), (index * 7) % 256, dtype=np.uint8)
    cv2.putText(image, str(index), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 255, 255), 2)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return bytes(data)


class MjpegServer:
    """Serves ``/stream`` at about ``fps``; :meth:`cut` closes everything, :meth:`stall` stops sending."""

    def __init__(self, port: int, fps: float = 20.0, max_frames: int = 100_000) -> None:
        self.port = port
        self.fps = fps
        self.max_frames = max_frames
        self.sent = 0
        self.stalled = threading.Event()
        self.drip_s: float = 0.0  # > 0: every byte of a frame alone, this far apart (a slow-drip server)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/stream":
                    self.send_error(404)
                    return
                with owner._lock:
                    owner._connections.append(self.connection)
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                for _ in range(owner.max_frames):  # bounded
                    if owner.stalled.is_set():
                        time.sleep(0.05)  # connection open, nothing sent: a stalled camera
                        continue
                    data = jpeg(owner.sent)
                    part = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                            + data + b"\r\n")  # fmt: skip
                    try:
                        if owner.drip_s > 0:
                            for index in range(min(len(part), 2000)):  # bounded: a few hundred seconds at most
                                self.wfile.write(part[index : index + 1])
                                self.wfile.flush()
                                time.sleep(owner.drip_s)
                            return
                        self.wfile.write(part)
                        self.wfile.flush()
                    except OSError:
                        return
                    owner.sent += 1
                    time.sleep(1.0 / owner.fps)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Stop listening and drop every open connection (the camera went away)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()
        if self._thread is not None:
            self._thread.join(5)

    def stall(self) -> None:
        self.stalled.set()

    def resume(self) -> None:
        self.stalled.clear()
