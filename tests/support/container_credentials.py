"""The Greengrass Token Exchange Service's credentials endpoint, served on loopback the way the nucleus serves it.

With ``aws.greengrass.TokenExchangeService`` as a dependency, the nucleus gives a component
``AWS_CONTAINER_CREDENTIALS_FULL_URI=http://localhost:PORT/2016-11-01/credentialprovider/`` and
``AWS_CONTAINER_AUTHORIZATION_TOKEN``; a GET with that token in ``Authorization`` returns the role alias's
credentials as JSON (``AccessKeyId``, ``SecretAccessKey``, ``Token``, ``Expiration``), anything else is refused
with 403. Each request is recorded (path, token) so a test can tell the credentials came from here.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
from typing import Any

PATH = "/2016-11-01/credentialprovider/"


class CredentialsEndpoint:
    def __init__(self, access_key: str = "ASIATESTTESEXCHANGE", secret_key: str = "tes-secret",
                 session_token: str = "tes-session-token") -> None:
        self.token = secrets.token_hex(16)
        self.body = json.dumps({"AccessKeyId": access_key, "SecretAccessKey": secret_key, "Token": session_token,
                                "Expiration": "2099-01-01T00:00:00Z"}).encode()
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                given = self.headers.get("Authorization")
                outer.requests.append((self.path, given))
                ok = self.path == PATH and given == outer.token
                body = outer.body if ok else b'{"message":"Unauthorized"}'
                self.send_response(200 if ok else 403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="tes", daemon=True)

    @property
    def environ(self) -> dict[str, str]:
        """What the nucleus puts in a component's environment (localhost, as Greengrass writes it)."""
        return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://localhost:{self.server.server_port}{PATH}",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": self.token}

    def __enter__(self) -> CredentialsEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
