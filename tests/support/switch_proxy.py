"""A loopback TCP forwarder that can be switched off: an outage between the device and S3, on this machine.

While ``up`` is False every new connection is accepted and closed at once (a reset, as a dropped uplink or a
refusing firewall looks to the client) and every open one is cut; while True bytes pass both ways unchanged.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class SwitchProxy:
    def __init__(self, target_port: int, up: bool = True) -> None:
        self.target_port = target_port
        self.up = up
        self.refused = 0
        self.forwarded = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="switch-proxy", daemon=True)

    def __enter__(self) -> SwitchProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.set_up(False)
        self._listener.close()

    def set_up(self, up: bool) -> None:
        self.up = up
        if not up:
            with self._lock:
                for sock in list(self._open):
                    with contextlib.suppress(OSError):
                        sock.close()
                self._open.clear()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.up:
                self.refused += 1
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            self.forwarded += 1
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        source.settimeout(30)
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
