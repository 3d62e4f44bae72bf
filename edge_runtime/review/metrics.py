"""``GET /metrics``: the console's numbers in Prometheus' text format, for the dashboards operators already have
(Grafana reads Prometheus). Built from the same fleet document as the page, so the two never disagree:

- ``edge_console_devices{state}``                 devices by state (online, starting, degraded, stale, stopped, offline)
- ``edge_console_messages_total{kind}``           valid messages by kind (detection, status, snapshot)
- ``edge_console_rejected_total{reason}``         skipped messages by reason (malformed, wrong_device, duplicate, ...)
- ``edge_console_dropped_total{where}``           messages lost: ``queue`` (the review fell behind), ``recording``
- ``edge_console_ingest_lag_seconds``             how long the last batch waited between arrival and being shown
- ``edge_console_broker_connected``               1 while the MQTT connection is up
- ``edge_console_recording_pending``              rows waiting for the database (0 when it keeps up)
"""

from __future__ import annotations

from typing import Any

from edge_runtime.review.fleet import STATES


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(document: dict[str, Any]) -> str:
    summary = document.get("summary", {})
    health = summary.get("health", {}) or {}
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    states = dict.fromkeys(STATES, 0)
    for row in document.get("devices", []):
        states[row["state"]] = states.get(row["state"], 0) + 1
    family("edge_console_devices", "gauge", "Devices by state.",
           [(f'{{state="{_label(s)}"}}', n) for s, n in states.items()])  # fmt: skip
    family("edge_console_messages_total", "counter", "Valid messages by kind.",
           [(f'{{kind="{_label(k)}"}}', n) for k, n in sorted((summary.get("kinds") or {}).items())])  # fmt: skip
    family("edge_console_rejected_total", "counter", "Messages counted and skipped, by reason.",
           [(f'{{reason="{_label(r)}"}}', n) for r, n in (summary.get("rejected") or {}).items()])  # fmt: skip
    recording = health.get("recording") or {}
    family("edge_console_dropped_total", "counter", "Messages lost: the review fell behind, or the recording.",
           [('{where="queue"}', health.get("dropped", 0)), ('{where="recording"}', recording.get("dropped", 0))])
    family("edge_console_ingest_lag_seconds", "gauge", "Wait of the last batch between arrival and being shown.",
           [("", health.get("ingest_lag_s", 0.0))])  # fmt: skip
    broker = (health.get("broker") or {}).get("state")
    family("edge_console_broker_connected", "gauge", "1 while the MQTT connection is up.",
           [("", 1.0 if broker in ("connected", "replay") else 0.0)])  # fmt: skip
    family("edge_console_recording_pending", "gauge", "Rows waiting for the database.",
           [("", recording.get("pending", 0))])  # fmt: skip
    return "\n".join(lines) + "\n"
