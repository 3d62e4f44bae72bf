"""``edge-runtime review serve``: the review loop feeding the web console, and uvicorn serving it.

Threads: the main thread runs the review loop (subscriber -> check -> record -> fleet -> :class:`LiveView`) under
the one stop event that SIGTERM and SIGINT set, exactly as the terminal review does; uvicorn serves the app from a
thread of its own (so it installs no signal handlers), on a socket bound here first, so a port in use is one line
and exit 2 before anything connects. When the loop ends (signal, ``--duration``, ``--max-messages``) the live view
closes, the event streams end and the server is told to exit within ``SHUTDOWN_S``.

Binding: 127.0.0.1 by default. Any address that is not loopback needs a token (``EDGE_RUNTIME_CONSOLE_TOKEN``,
``--token-file`` or ``--token``, which other users can read in ``/proc/PID/cmdline``) or HTTPS with client
certificates (``--https-client-ca``); without one the command refuses in one line (exit 2), because the console
shows what every camera saw. The token is never printed; the variable is removed from the process environment
once read, so nothing the console starts inherits it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

from edge_runtime.errors import ReviewError

log = logging.getLogger(__name__)

TOKEN_ENV = "EDGE_RUNTIME_CONSOLE_TOKEN"
START_TIMEOUT_S = 10.0
SHUTDOWN_S = 3.0
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8080
    token: Optional[str] = None
    https_cert: Optional[str] = None
    https_key: Optional[str] = None
    https_client_ca: Optional[str] = None
    allow_hosts: tuple[str, ...] = ()  # Host header names answered besides the bind address (and loopback's names)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_listen(listen: Listen) -> None:
    """Refuse, in one line, what would expose the console: a non-loopback bind without a token or client certs."""
    if listen.token is not None and len(listen.token) < MIN_TOKEN_CHARS:
        raise ReviewError(f"--token: at least {MIN_TOKEN_CHARS} characters (got {len(listen.token)})")
    if (listen.https_cert is None) != (listen.https_key is None):
        raise ReviewError("--https-cert and --https-key go together")
    if listen.https_client_ca is not None and listen.https_cert is None:
        raise ReviewError("--https-client-ca needs --https-cert and --https-key")
    if not is_loopback(listen.host) and listen.token is None and listen.https_client_ca is None:
        raise ReviewError(
            f"--bind {listen.host}: refused, a console off loopback needs --token (or {TOKEN_ENV}) or --https-client-ca"
        )


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


def allowed_hosts(listen: Listen) -> Optional[list[str]]:
    """The Host header names the console answers (DNS rebinding defence); None answers any.

    Loopback and a named address answer their own names and loopback's; a wildcard bind (``0.0.0.0``) cannot
    know the names it is reached by, so it answers any unless ``--allow-host`` lists them (it needs a token or
    client certificates anyway)."""
    if listen.host in WILDCARDS and not listen.allow_hosts:
        return None
    names = [*LOOPBACK_NAMES, *listen.allow_hosts]
    if listen.host not in WILDCARDS:
        names.append(listen.host)
    return names


def read_token(given: Optional[str], file: Optional[str], environ: dict[str, str]) -> Optional[str]:
    """The token from ``--token``, ``--token-file`` or ``$EDGE_RUNTIME_CONSOLE_TOKEN`` (in that order); errors
    name where it came from and its length, never the token."""
    if given is not None and file is not None:
        raise ReviewError("--token and --token-file: give one")
    if file is not None:
        try:
            text = open(file, encoding="utf-8").read().strip()  # noqa: SIM115 (read at once)
        except OSError as error:
            raise ReviewError(f"--token-file {file}: cannot read ({error.strerror or error})") from None
        if not text or "\n" in text:
            raise ReviewError(f"--token-file {file}: one line with the token expected")
        return text
    return given or environ.get(TOKEN_ENV) or None


def bind(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    try:
        return socket.create_server((listen.host, listen.port), family=family, backlog=64)
    except OSError as error:
        raise ReviewError(f"cannot listen on {listen.host}:{listen.port} ({error.strerror or error})") from None


def server_config(app: Any, listen: Listen) -> Any:
    import uvicorn

    options: dict[str, Any] = {}
    if listen.https_cert:
        for name in ("https_cert", "https_key", "https_client_ca"):
            path = getattr(listen, name)
            if path is not None and not os.path.isfile(path):
                raise ReviewError(f"--{name.replace('_', '-')} {path}: file not found")
        options = {"ssl_certfile": listen.https_cert, "ssl_keyfile": listen.https_key}
        if listen.https_client_ca:
            options.update(ssl_ca_certs=listen.https_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return uvicorn.Config(
        app, log_level="warning", lifespan="off", timeout_graceful_shutdown=int(SHUTDOWN_S), access_log=False,
        **options,
    )  # fmt: skip


class ConsoleServer:
    """uvicorn in a thread, on a socket bound by :func:`bind`."""

    def __init__(self, app: Any, listen: Listen) -> None:
        import uvicorn

        self.listen = listen
        self.socket = bind(listen)
        self.port = int(self.socket.getsockname()[1])
        self.server = uvicorn.Server(server_config(app, listen))
        self.thread = threading.Thread(target=self._run, name="console-http", daemon=True)
        self.error: Optional[BaseException] = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        except BaseException as error:  # SystemExit from uvicorn on a bad TLS file, for one
            self.error = error

    @property
    def url(self) -> str:
        scheme = "https" if self.listen.https_cert else "http"
        host = f"[{self.listen.host}]" if ":" in self.listen.host else self.listen.host
        return f"{scheme}://{host}:{self.port}/"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            self.stop()
            raise ReviewError(f"the console did not start on {self.url} ({self.error or 'timed out'})")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(SHUTDOWN_S + 2)
        self.socket.close()


def run_console(session: Any, live: Any, listen: Listen, topics: list[str]) -> int:
    """Serve ``live`` while ``session`` runs in this thread; returns the number of messages handled."""
    from edge_runtime.review.web import create_app

    check_listen(listen)
    server = ConsoleServer(create_app(live, listen.token, allowed_hosts=allowed_hosts(listen)), listen)
    server.start()
    print(f"edge-runtime review serve: console on {server.url} (topics {', '.join(topics)})", file=sys.stderr,
          flush=True)  # fmt: skip
    try:
        return int(session.run())
    finally:
        live.closed.set()
        server.stop()
