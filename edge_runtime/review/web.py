"""The console's web side: a Starlette app serving one page, a JSON API and live updates (server-sent events).

Routes (all read-only; the review loop is the only writer, through :class:`~edge_runtime.review.live.LiveView`):

- ``GET /``                         the page (``static/console.html``: the fleet, a device, the filter)
- ``GET /api/fleet``                every device's row (state, last seen, fps, p95, outbox, degraded reasons) and the
                                    rejected messages by reason
- ``GET /api/devices/{name}``       one device: its row, detections per class over the last ``span`` seconds (the
                                    chart), its latest snapshots with their detections' boxes and labels, and its
                                    most recent events (tracked objects, newest first)
- ``GET /api/snapshots/{id}.jpg``   one snapshot's JPEG as the device sent it (boxes are drawn by the page)
- ``GET /api/detections``           the filter: ``device``, ``label``, ``min_score``, ``since``, ``until`` (epoch s)
- ``GET /api/events``               ``text/event-stream``: a ``fleet`` event (the whole fleet) first, then a ``rows``
                                    event whenever anything shown changes: the rows that changed, the devices
                                    removed and the summary
- ``GET /metrics``                  Prometheus text format (:mod:`edge_runtime.review.metrics`)

With a token (required off loopback, see :mod:`edge_runtime.review.serve`) every request must carry it: the header
``Authorization: Bearer TOKEN``, or the session cookie the page gets by opening ``/?token=TOKEN`` once (the
browser's EventSource cannot send headers). The gate, the Host allowlist and the security headers are
:mod:`edge_runtime.review.guard`'s. A query value that is not a finite number is a 400, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from importlib import resources
from typing import Any, Callable, Optional

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp

from edge_runtime.review.guard import Guard, TokenGate, content_security_policy
from edge_runtime.review.live import Filter, LiveView

EVENT_POLL_S = 0.25
KEEPALIVE_S = 15.0


def page() -> str:
    return resources.files("edge_runtime.review").joinpath("static/console.html").read_text(encoding="utf-8")


def _number(request: Request, name: str, default: Optional[float] = None) -> Optional[float]:
    text = request.query_params.get(name)
    if text in (None, ""):
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{name}: not a finite number (got {str(text)[:40]!r})")
    return value


def create_app(
    live: LiveView,
    token: Optional[str] = None,
    clock: Callable[[], float] = time.time,
    allowed_hosts: Optional[list[str]] = None,
) -> ASGIApp:
    """The console app; ``allowed_hosts`` None answers any Host header (serve passes the names it is reached by)."""
    html = page()

    async def index(_request: Request) -> Response:
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def fleet(_request: Request) -> Response:
        return JSONResponse(live.fleet())

    async def device(request: Request) -> Response:
        try:
            span = _number(request, "span", 600.0) or 600.0
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        found = live.device(request.path_params["name"], clock(), span_s=min(max(span, 10.0), 86_400.0))
        if found is None:
            return JSONResponse({"error": f"no device {request.path_params['name']!r}"}, status_code=404)
        return JSONResponse(found)

    async def snapshot(request: Request) -> Response:
        data = live.snapshot_jpeg(int(request.path_params["ident"]))
        if data is None:
            return PlainTextResponse("no such snapshot (the console keeps the latest few per device)\n", 404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    async def detections(request: Request) -> Response:
        params = request.query_params
        try:
            where = Filter(
                device=params.get("device") or None,
                label=params.get("label") or None,
                min_score=_number(request, "min_score", 0.0) or 0.0,
                since=_number(request, "since"),
                until=_number(request, "until"),
                limit=int(min(max(_number(request, "limit", 500.0) or 500.0, 1), 5000)),
            )
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse({"detections": live.detections(where)})

    async def events(request: Request) -> Response:
        async def stream() -> Any:
            sent = -1
            quiet_since = time.monotonic()
            while sent == -1 or not live.closed.is_set():  # the fleet at least once, then every change
                if await request.is_disconnected():
                    return
                if live.version != sent:
                    # the whole fleet first, then only what changed since the last event
                    document = live.fleet() if sent == -1 else live.changes(sent)
                    kind = "fleet" if sent == -1 or document.get("full") else "rows"
                    sent = int(document["version"])
                    yield f"event: {kind}\ndata: {json.dumps(document, separators=(',', ':'))}\n\n"
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > KEEPALIVE_S:  # proxies drop silent streams
                    yield ": keep-alive\n\n"
                    quiet_since = time.monotonic()
                await asyncio.sleep(EVENT_POLL_S)
            yield "event: closed\ndata: {}\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def metrics(_request: Request) -> Response:
        from edge_runtime.review.metrics import render

        return PlainTextResponse(render(live.fleet()), media_type="text/plain; version=0.0.4")

    app: ASGIApp = Starlette(
        routes=[
            Route("/", index),
            Route("/metrics", metrics),
            Route("/api/fleet", fleet),
            Route("/api/devices/{name:str}", device),
            Route("/api/snapshots/{ident:int}.jpg", snapshot),
            Route("/api/detections", detections),
            Route("/api/events", events),
        ]
    )
    gated = TokenGate(app, token) if token else app
    return Guard(gated, allowed_hosts, content_security_policy(html))
