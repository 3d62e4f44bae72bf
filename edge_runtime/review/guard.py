"""What stands between the console and a browser: the token gate with its sessions, the Host allowlist and the
security headers, as pure ASGI middleware (so the event stream is not buffered).

- **Token**: ``Authorization: Bearer TOKEN`` on every request, or a session cookie. Opening ``/?token=TOKEN`` once
  trades the token for a random session id (the cookie holds that id, never the token, so a cookie that leaks
  from a browser profile is worth one session, which ends with the console or after ``SESSION_S``). Compared in
  constant time; a wrong or missing one is a 401 with one line that never repeats what was sent.
- **Host allowlist**: a page on ``evil.example`` whose name re-resolves to 127.0.0.1 (DNS rebinding) sends
  ``Host: evil.example``; only the names the console is reached by are served, others get a 421.
- **Headers** on every response: a Content-Security-Policy that allows the page's own inline script by its hash
  (nothing else can run, and nothing may frame it), ``X-Frame-Options: DENY``, ``X-Content-Type-Options:
  nosniff`` (a snapshot is never run as something else) and ``Referrer-Policy: no-referrer`` (the ``?token=`` link
  is never sent on).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from typing import Callable, Optional

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "edge_runtime_console"
SESSION_S = 12 * 3600.0
MAX_SESSIONS = 1000  # the oldest session ends first beyond this: a loop of logins cannot grow memory


def script_hashes(html: str) -> list[str]:
    """``'sha256-...'`` of each inline ``<script>`` of ``html``, for the CSP's script-src."""
    found = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in found]


def content_security_policy(html: str) -> str:
    scripts = " ".join(script_hashes(html)) or "'none'"
    return (
        f"default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:;"
        " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


class Sessions:
    """Random session ids the token was traded for, each with its end; bounded in count."""

    def __init__(self, lifetime_s: float = SESSION_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime_s = lifetime_s
        self.clock = clock
        self._ends: collections.OrderedDict[str, float] = collections.OrderedDict()

    def new(self) -> str:
        ident = secrets.token_urlsafe(32)
        self._ends[ident] = self.clock() + self.lifetime_s
        while len(self._ends) > MAX_SESSIONS:
            self._ends.popitem(last=False)
        return ident

    def valid(self, ident: Optional[str]) -> bool:
        if not ident:
            return False
        end = self._ends.get(ident)  # a dict lookup by a random 256-bit id: nothing to learn from its timing
        if end is None:
            return False
        if end < self.clock():
            self._ends.pop(ident, None)
            return False
        return True


class TokenGate:
    """The token or a session, or 401."""

    def __init__(self, app: ASGIApp, token: str, sessions: Optional[Sessions] = None) -> None:
        self.app = app
        self.token = token.encode()
        self.sessions = sessions or Sessions()

    def _ok(self, given: Optional[str]) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        header = connection.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        if self._ok(bearer) or self.sessions.valid(connection.cookies.get(COOKIE)):
            await self.app(scope, receive, send)
            return
        if self._ok(connection.query_params.get("token")):  # the link an operator opens once: a session cookie
            response: Response = RedirectResponse(connection.url.path, status_code=303)
            response.set_cookie(COOKIE, self.sessions.new(), max_age=int(self.sessions.lifetime_s), httponly=True,
                                samesite="strict", secure=connection.url.scheme == "https")  # fmt: skip
        else:
            response = PlainTextResponse("401: this console needs its token (Authorization: Bearer, or /?token=)\n",
                                         status_code=401)  # fmt: skip
        await response(scope, receive, send)


def host_name(header: str) -> str:
    """The host of a Host header, without its port (``[::1]:8080`` -> ``::1``), lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """Host allowlist (None: any host) and the security headers on every response, the 401s included."""

    def __init__(self, app: ASGIApp, allowed_hosts: Optional[Iterable[str]], csp: str) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {host_name(h) for h in allowed_hosts}
        self.headers = {
            "Content-Security-Policy": csp,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        if self.allowed is not None:
            host = host_name(HTTPConnection(scope).headers.get("host", ""))
            if host not in self.allowed:
                response = PlainTextResponse("421: this console does not answer to that host name"
                                             " (serve --allow-host adds one)\n", status_code=421)  # fmt: skip
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)
