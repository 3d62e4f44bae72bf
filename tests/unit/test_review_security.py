"""The console as an attacker meets it: cookies that are not the token, DNS rebinding, framing, sniffing, query
values that are not numbers, and a token that never shows in output (Starlette's TestClient, the real app)."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pytest

pytest.importorskip("starlette")
with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 for its TestClient; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from edge_runtime.cli import main
from edge_runtime.errors import ReviewError
from edge_runtime.review.guard import COOKIE, Sessions, host_name, script_hashes
from edge_runtime.review.serve import TOKEN_ENV, Listen, allowed_hosts, read_token
from edge_runtime.review.web import create_app, page
from tests.unit.test_review_console import TOKEN, fleet_messages, replay


def app(**options: object) -> TestClient:
    live, _ = replay(fleet_messages())
    return TestClient(create_app(live, **options), base_url="http://127.0.0.1:8080")  # type: ignore[arg-type]


def test_the_cookie_is_a_session_not_the_token() -> None:
    client = app(token=TOKEN)
    link = client.get(f"/?token={TOKEN}", follow_redirects=False)
    cookie = link.cookies[COOKIE]
    assert link.status_code == 303 and TOKEN not in link.headers["set-cookie"] and len(cookie) >= 40
    assert client.get("/api/fleet").status_code == 200
    stranger = app(token=TOKEN)
    stranger.cookies.set(COOKIE, TOKEN)  # the old cookie format: the raw token is no longer a session
    assert stranger.get("/api/fleet").status_code == 401
    stranger.cookies.set(COOKIE, cookie)  # a session of another console process means nothing here
    assert stranger.get("/api/fleet").status_code == 401


def test_sessions_end_and_are_bounded() -> None:
    now = [0.0]
    sessions = Sessions(lifetime_s=10.0, clock=lambda: now[0])
    ident = sessions.new()
    assert sessions.valid(ident) and not sessions.valid("") and not sessions.valid(None)
    now[0] = 11.0
    assert not sessions.valid(ident)
    first = sessions.new()
    for _ in range(1000):
        sessions.new()
    assert not sessions.valid(first)


def test_security_headers_on_every_response() -> None:
    client = app(token=TOKEN)
    for response in (client.get("/"), client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})):
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        assert script_hashes(page())[0] in csp  # the page's own script, by its hash, and nothing else


def test_dns_rebinding_is_refused() -> None:
    client = app(allowed_hosts=allowed_hosts(Listen()))
    assert client.get("/api/fleet").status_code == 200
    assert client.get("/api/fleet", headers={"Host": "localhost:8080"}).status_code == 200
    evil = client.get("/api/fleet", headers={"Host": "evil.example:8080"})
    assert evil.status_code == 421 and evil.headers["x-frame-options"] == "DENY"


def test_allowed_hosts_defaults() -> None:
    assert allowed_hosts(Listen("0.0.0.0", token=TOKEN)) is None
    assert "console.example" in (allowed_hosts(Listen("0.0.0.0", allow_hosts=("console.example",))) or [])
    assert "10.0.0.2" in (allowed_hosts(Listen("10.0.0.2")) or []) and "evil" not in (allowed_hosts(Listen()) or [])
    assert [host_name(h) for h in ("[::1]:80", "Localhost:8080", "a.b")] == ["::1", "localhost", "a.b"]


@pytest.mark.parametrize("query", ["span=nan", "span=inf", "span=-inf", "span=x", "span=1e999"])
def test_a_query_that_is_not_a_finite_number_is_400(query: str) -> None:
    response = app().get(f"/api/devices/cam-1?{query}")
    assert response.status_code == 400 and "finite number" in response.json()["error"]


@pytest.mark.parametrize("query", ["min_score=nan", "since=inf", "until=NaN", "limit=nan"])
def test_the_filter_refuses_non_finite_numbers(query: str) -> None:
    assert app().get(f"/api/detections?{query}").status_code == 400


def test_read_token_sources_and_errors(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    assert read_token(None, str(file), {}) == TOKEN
    assert read_token(None, None, {TOKEN_ENV: TOKEN}) == TOKEN
    assert read_token(None, None, {}) is None
    for given, path in ((TOKEN, str(file)), (None, str(tmp_path / "missing")), (None, str(tmp_path))):
        with pytest.raises(ReviewError) as caught:
            read_token(given, path, {})
        assert TOKEN not in str(caught.value)


def test_the_token_from_the_environment_works_and_is_never_printed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's way used to fail as 'console_token: unknown key (got <the token>)'. Now the config never sees
    it: the command gets as far as the (absent) broker, and nothing it prints holds the token."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    code = main(["review", "serve", "--bind", "0.0.0.0", "--port", "0", "--mqtt-port", "1", "--connect-timeout", "1"])
    out, err = capsys.readouterr()
    assert code == 2 and re.search(r"cannot connect to the broker 127\.0\.0\.1:1\b", err), err
    assert TOKEN not in out + err
    assert TOKEN_ENV not in os.environ  # read once, then out of the environment


def test_a_short_token_is_refused_by_its_length_only(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "hunter2")
    assert main(["review", "serve", "--bind", "0.0.0.0", "--mqtt-port", "1"]) == 2
    err = capsys.readouterr().err
    assert "at least 16 characters (got 7)" in err and "hunter2" not in err


def test_metrics_in_prometheus_text_format() -> None:
    client = app(token=TOKEN)
    assert client.get("/metrics").status_code == 401  # the gate holds here too (Prometheus sends a bearer token)
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = dict(line.rsplit(" ", 1) for line in response.text.splitlines() if not line.startswith("#"))
    assert samples['edge_console_devices{state="online"}'] == "1"
    assert samples['edge_console_devices{state="degraded"}'] == "1"
    assert samples['edge_console_messages_total{kind="detection"}'] == "3"
    assert samples['edge_console_rejected_total{reason="bad_image"}'] == "2"
    assert samples['edge_console_broker_connected'] == "1"  # the replay subscriber stands for a connection
    assert {'edge_console_dropped_total{where="queue"}', "edge_console_ingest_lag_seconds"} <= set(samples)
