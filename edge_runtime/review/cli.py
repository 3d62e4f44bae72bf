"""``edge-runtime review`` and ``edge-runtime review report``: the arguments, registered by ``edge_runtime.cli``.

Broker options are the daemon's: ``--config`` (its ``publish.mqtt`` section), ``EDGE_RUNTIME_PUBLISH__MQTT__*``
variables, ``--set publish.mqtt.KEY=VALUE`` and the named flags, validated by the same strict config, so a
reviewer reaches AWS IoT Core with the same mutual TLS settings a device uses. Heavy imports (awscrt, jsonschema,
matplotlib) happen in the handlers, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from typing import Any, Optional

from edge_runtime.argtypes import int_at_least, number_in
from edge_runtime.review.validation import MAX_PAYLOAD_BYTES

EXAMPLES = """examples:
  edge-runtime review --topic 'edge/#'                                  # a local broker on 127.0.0.1:1883
  edge-runtime review --topic 'ml/object-detection/#' --mqtt-host abc-ats.iot.eu-west-1.amazonaws.com \\
      --mqtt-port 8883 --tls-cert cert.pem --tls-key key.pem --tls-ca AmazonRootCA1.pem --client-id operator-1
  edge-runtime review --record fleet.db --json --duration 60 > events.jsonl
  edge-runtime review --client-id operator-1 --session-expiry 3600 --record fleet.db  # also what came while away (1 h)
  edge-runtime review report fleet.db --since 2h --device cam-1 --png detections.png
  edge-runtime review serve --topic 'edge/#' --record fleet.db                   # the web console on 127.0.0.1:8080
  edge-runtime review serve --share reviewers --record postgresql://review@db/fleet  # one of several reviewers
"""
SERVE_EXAMPLES = """examples:
  edge-runtime review serve                                             # http://127.0.0.1:8080/, broker 127.0.0.1:1883
  edge-runtime review serve --topic 'ml/object-detection/#' --mqtt-host abc-ats.iot.eu-west-1.amazonaws.com \\
      --mqtt-port 8883 --tls-cert cert.pem --tls-key key.pem --tls-ca AmazonRootCA1.pem --client-id console-1
  EDGE_RUNTIME_CONSOLE_TOKEN=$(openssl rand -hex 16) edge-runtime review serve --bind 0.0.0.0   # open /?token=...
"""


POSITIVE = number_in(0.0, math.inf, low_open=True)  # seconds: any float above 0
DEFAULT_SESSION_EXPIRY_S = 3600
MAX_SESSION_EXPIRY_S = 0xFFFFFFFF  # MQTT 5 session expiry is a four-byte integer (and that value means "never")


def register(sub: Any) -> None:
    """Add ``review`` (with its optional ``report`` action) to the ``edge-runtime`` sub-command parsers."""
    review = sub.add_parser(
        "review",
        help="watch (and --record) what the fleet publishes over MQTT; 'review report FILE.db' summarises a recording",
        description="Subscribe to detection and status topics and show one row per device: online/offline, last seen,"
        " fps, inference ms, detections per class over a recent window, the latest labels. Messages that fail the"
        " schema are counted and skipped, and so are detections the broker delivers twice (QoS 1 is at least once).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_review_arguments(review)
    review.add_argument("--json", action="store_true", help="one JSON object per message and state change")
    review.set_defaults(handler=_review)

    actions = review.add_subparsers(dest="review_action", metavar="[ACTION]", required=False)
    serve = actions.add_parser(
        "serve",
        help="the web console: the fleet, each device's detections and snapshots, live, in a browser",
        description="Subscribe as 'review' does and serve a web page and a JSON API on --bind:--port: every device"
        " online/offline/degraded with its reasons, updated live (server-sent events); per device detections per class"
        " over time and the latest snapshots with their boxes; rejected messages by reason; a filter. Loopback only"
        " unless a --token (or client certificates) is set.",
        epilog=SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_review_arguments(serve)
    serve.add_argument("--bind", default="127.0.0.1", metavar="HOST", help="listen address (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, metavar="PORT", help="listen port (8080)")
    serve.add_argument("--token", metavar="TOKEN", help="required on every request; needed off loopback; prefer"
                       " $EDGE_RUNTIME_CONSOLE_TOKEN or --token-file (a flag shows in /proc/PID/cmdline)")  # fmt: skip
    serve.add_argument("--token-file", metavar="FILE", help="read the token from this file (one line)")
    serve.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME",
        help="also answer requests for this Host name (repeatable); others get 421 (DNS rebinding). Default: the"
        " --bind address and loopback's names; with --bind 0.0.0.0, any name unless this is given",
    )  # fmt: skip
    serve.add_argument("--https-cert", metavar="PEM", help="serve HTTPS with this certificate")
    serve.add_argument("--https-key", metavar="PEM", help="its private key")
    serve.add_argument("--https-client-ca", metavar="PEM", help="require browser client certificates from this CA")
    serve.add_argument(
        "--replay", type=number_in(0.0, math.inf), default=3600.0, metavar="S",
        help="with --record: show what it recorded in the last S seconds at start (3600; 0: nothing)",
    )
    serve.add_argument(
        "--snapshots-per-device", type=int_at_least(1), default=12, metavar="N", help="snapshots kept per device (12)"
    )
    serve.set_defaults(handler=_serve)
    _register_report(actions)


def add_review_arguments(review: argparse.ArgumentParser) -> None:
    """What ``review`` and ``review serve`` share: the broker, the topics, the recording, the limits."""
    review.add_argument(
        "--topic", action="append", metavar="FILTER", help="topic filter, repeatable (default: edge/# as the daemon)"
    )
    review.add_argument(
        "--share", metavar="GROUP",
        help="subscribe as a member of the MQTT 5 shared subscription $share/GROUP/<filter>: reviewers of one group"
        " split the messages between them (mosquitto, AWS IoT Core); give them one --record postgresql:// URL",
    )  # fmt: skip
    review.add_argument("--config", metavar="FILE", help="a daemon config file; its publish.mqtt section is used")
    review.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="e.g. publish.mqtt.port=8883")
    review.add_argument("--mqtt-host", metavar="HOST", help="broker host or AWS IoT Core endpoint")
    review.add_argument("--mqtt-port", type=int, metavar="PORT", help="1883 plain TCP, 8883 mutual TLS")
    review.add_argument("--client-id", metavar="ID", help="MQTT client id (default: edge-runtime-review-<random>)")
    review.add_argument(
        "--session-expiry", type=int_at_least(1), metavar="S",
        help="the broker keeps the MQTT session (subscriptions, queued QoS 1 messages) this long after a disconnect"
        f" or a restart, so nothing published meanwhile is lost (default {DEFAULT_SESSION_EXPIRY_S}, with a client id"
        " fixed per host, topics and --record unless --client-id names one; with --share, only with --client-id)",
    )  # fmt: skip
    review.add_argument("--clean-session", action="store_true", help="a fresh MQTT session each start, kept for none")
    review.add_argument("--tls-cert", metavar="PEM", help="certificate for mutual TLS")
    review.add_argument("--tls-key", metavar="PEM", help="private key for mutual TLS")
    review.add_argument("--tls-ca", metavar="PEM", help="CA bundle, e.g. AmazonRootCA1.pem")
    review.add_argument(
        "--record", metavar="FILE.db|URL",
        help="append every message to this SQLite file, or to PostgreSQL at a postgresql:// URL",
    )  # fmt: skip
    review.add_argument("--window", type=POSITIVE, default=60.0, metavar="S", help="count window (60)")
    review.add_argument(
        "--status-interval", type=POSITIVE, default=30.0, metavar="S",
        help="the devices' status.interval_s; a device silent for 3x this is stale (30)",
    )  # fmt: skip
    review.add_argument(
        "--max-payload", type=int_at_least(1), default=MAX_PAYLOAD_BYTES, metavar="BYTES",
        help=f"larger payloads are counted and skipped unparsed ({MAX_PAYLOAD_BYTES})",
    )  # fmt: skip
    review.add_argument(
        "--device-in-topic", type=_identity, default="any", metavar="any|N|off",
        help="the payload's device must be the thing its topic names: any level of the topic (any, the daemon's"
        " templates), level N exactly (1 is the first), or off (trust the payload); others are rejected (any)",
    )  # fmt: skip
    review.add_argument(
        "--max-devices", type=int_at_least(1), default=5000, metavar="N",
        help="devices tracked at most; a new one then replaces the longest silent for an hour, or is counted as"
        " fleet_full (5000)",
    )  # fmt: skip
    review.add_argument("--duration", type=POSITIVE, metavar="S", help="exit after this long")
    review.add_argument("--max-messages", type=int_at_least(1), metavar="N", help="exit after N messages")
    review.add_argument("--connect-timeout", type=POSITIVE, default=10.0, metavar="S", help="(10)")


def _identity(text: str) -> Any:
    from edge_runtime.review.validation import Identity

    try:
        return Identity.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _register_report(actions: Any) -> None:
    report = actions.add_parser(
        "report",
        help="per device and class: detections per hour, score distribution, gaps; --png for a chart",
        description="Summarise a --record database: per device and class, detections per hour and the score"
        " distribution; per device the gaps (stopped, last will, or silent); rejected messages by reason.",
    )
    report.add_argument("db", metavar="FILE.db")
    report.add_argument("--since", metavar="WHEN", help="a duration back from now (90m, 2h, 1d) or an ISO time")
    report.add_argument("--device", metavar="NAME", help="only this device")
    report.add_argument("--png", metavar="FILE", help="chart of detections over time (needs matplotlib)")
    report.add_argument("--json", action="store_true", help="the report as one JSON object")
    report.add_argument(
        "--gap", type=POSITIVE, default=90.0, metavar="S", help="silence longer than this is a gap (90)"
    )
    report.set_defaults(handler=_report)


def mqtt_config(args: argparse.Namespace) -> Any:
    """The ``publish.mqtt`` section from defaults < ``--config`` < environment < ``--set`` < named flags."""
    from edge_runtime.config import load_config, set_overrides, set_path

    overrides = set_overrides(args.set)
    named = {
        "publish.mqtt.host": args.mqtt_host,
        "publish.mqtt.port": args.mqtt_port,
        "publish.mqtt.client_id": args.client_id,
        "publish.mqtt.tls.cert": args.tls_cert,
        "publish.mqtt.tls.key": args.tls_key,
        "publish.mqtt.tls.ca": args.tls_ca,
    }
    for key, value in named.items():
        if value is not None:
            set_path(overrides, key, value)
    from edge_runtime.review.serve import TOKEN_ENV

    # the console's token is no config key: keep it out of the config (which would refuse it, printing it)
    environ = {name: value for name, value in os.environ.items() if name != TOKEN_ENV}
    return load_config(args.config, overrides=overrides, environ=environ).publish.mqtt


def shared_topics(topics: list[str], group: Optional[str]) -> list[str]:
    """``$share/GROUP/FILTER`` for each filter when ``group`` is set (MQTT 5 shared subscriptions)."""
    from edge_runtime.errors import ReviewError

    if group is None:
        return topics
    if not group or any(char in group for char in "/+#"):
        raise ReviewError(f"--share: a group name without '/', '+' or '#' (got {group!r})")
    return [f"$share/{group}/{topic}" for topic in topics]


def stable_client_id(topics: list[str], args: argparse.Namespace) -> str:
    """``edge-runtime-review-HOST-HASH``: the same for the same host, topics, recording and console port, so a
    restarted reviewer rejoins the session the broker kept for it, and two different reviewers do not collide."""
    import hashlib
    import socket

    what = json.dumps([topics, args.record, getattr(args, "port", None)])
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c == "-")[:32] or "host"
    return f"edge-runtime-review-{host}-{hashlib.sha256(what.encode()).hexdigest()[:8]}"


def _build_session(args: argparse.Namespace, view: Any, snapshots: Any = None) -> tuple[Any, Any]:
    """The review session for ``args`` with ``view``, and its recorder (or None)."""
    from edge_runtime.errors import ReviewError
    from edge_runtime.review.fleet import Fleet
    from edge_runtime.review.session import Limits, ReviewSession
    from edge_runtime.review.store import open_recorder
    from edge_runtime.review.subscriber import MqttSubscriber

    mqtt = mqtt_config(args)
    if args.session_expiry is not None and args.session_expiry > MAX_SESSION_EXPIRY_S:
        limit = MAX_SESSION_EXPIRY_S
        raise ReviewError(f"--session-expiry: at most {limit} s, MQTT 5's limit (got {args.session_expiry})")
    if args.session_expiry is not None and args.clean_session:
        raise ReviewError("--session-expiry and --clean-session: give one")
    if args.session_expiry is not None and not mqtt.client_id and args.share:
        # several reviewers of one group on one host would share a derived id and take each other's connection
        raise ReviewError("--session-expiry with --share needs --client-id: one per reviewer of the group")
    topics = shared_topics(args.topic or ["edge/#"], args.share)
    expiry = 0 if args.clean_session else args.session_expiry
    if expiry is None:
        expiry = DEFAULT_SESSION_EXPIRY_S if (mqtt.client_id or not args.share) else 0
    if expiry and not mqtt.client_id:  # the same console started again must find its session: a stable id
        mqtt = mqtt.model_copy(update={"client_id": stable_client_id(topics, args)})
    stop = threading.Event()
    recorder = open_recorder(args.record) if args.record else None
    session = ReviewSession(
        MqttSubscriber(
            mqtt,
            topics,
            args.max_payload,
            connect_timeout_s=args.connect_timeout,
            session_expiry_s=expiry,
        ),
        Fleet(window_s=args.window, stale_after_s=3 * args.status_interval, max_devices=args.max_devices),
        view,
        stop,
        recorder=recorder,
        limits=Limits(duration_s=args.duration, max_messages=args.max_messages, max_bytes=args.max_payload,
                      identity=args.device_in_topic),
        snapshots=snapshots,
    )
    return session, recorder


def _review(args: argparse.Namespace) -> int:
    from edge_runtime.review.view import make_view
    from edge_runtime.stop_signals import stop_on_signals

    session, recorder = _build_session(args, make_view(args.json))
    with stop_on_signals(session.stop, "review"):
        session.run()
    if recorder is not None:
        print(f"edge-runtime review: {recorder.written} messages recorded in {args.record}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from edge_runtime.review.live import LiveView
    from edge_runtime.review.serve import TOKEN_ENV, Listen, check_listen, read_token, run_console
    from edge_runtime.review.snapshots import SnapshotMatcher
    from edge_runtime.stop_signals import stop_on_signals

    token = read_token(args.token, args.token_file, dict(os.environ))
    os.environ.pop(TOKEN_ENV, None)  # read once: nothing this process starts inherits it
    listen = Listen(args.bind, args.port, token, args.https_cert, args.https_key, args.https_client_ca,
                    tuple(args.allow_host))  # fmt: skip
    check_listen(listen)  # before anything connects: a refused bind is one line and exit 2
    matcher = SnapshotMatcher()
    live = LiveView(matcher, snapshots_per_device=args.snapshots_per_device)
    session, recorder = _build_session(args, live, snapshots=matcher)
    if args.record and args.replay > 0:  # what the recording already holds, so a restart does not start blank
        from edge_runtime.review.store import read_rows

        folded = session.replay(read_rows(args.record, since=time.time() - args.replay))
        print(f"edge-runtime review serve: {folded} recorded messages of the last {args.replay:g} s shown",
              file=sys.stderr)  # fmt: skip
    with stop_on_signals(session.stop, "review serve"):
        run_console(session, live, listen, list(session.subscriber.topics))
    if recorder is not None:
        print(f"edge-runtime review serve: {recorder.written} messages recorded in {args.record}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from edge_runtime.review.report import build_report, parse_since, render_text, require_matplotlib, write_png

    if args.png:
        require_matplotlib()
    since = parse_since(args.since, time.time()) if args.since else None
    report = build_report(args.db, since=since, device=args.device, gap_s=args.gap)
    from edge_runtime.review.events import event_report, render_events  # publish.mode events: counts, timelines

    events = event_report(args.db, since=since, device=args.device)
    if args.json:
        json.dump({**report.to_dict(), "events": events}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(report) + render_events(events))
    if args.png:
        out = write_png(report, args.png)
        print(f"edge-runtime review report: chart written to {out}", file=sys.stderr)
    return 0
