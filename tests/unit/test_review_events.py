"""``review report`` with event messages (publish.mode events): counts, a timeline per source, redeliveries once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_runtime.cli import main
from edge_runtime.events.builder import EventStream
from edge_runtime.events.config import EventsConfig
from edge_runtime.events.tracker import Observation
from edge_runtime.review.events import event_report, render_events
from edge_runtime.review.fleet import Fleet
from edge_runtime.review.store import Recorder
from edge_runtime.review.validation import check

T0 = 1_800_000_000.0


def events_of(device: str, source: str) -> list[dict[str, Any]]:
    """A blue box for 4 s, a yellow one from 2 s that is still there when the stream is cut (no finish)."""
    stream = EventStream(EventsConfig(min_hits=2, max_age_s=1.0), device=device, session="s1", source=source)
    messages: list[dict[str, Any]] = []
    for index in range(40):
        at = T0 + index * 0.2
        seen = []
        if index < 20:
            seen.append(Observation("blue box", 0, 0.6 + index * 0.01, (0.1, 0.1, 0.3, 0.3)))
        if index >= 10:
            seen.append(Observation("yellow box", 1, 0.8, (0.6, 0.6, 0.8, 0.8)))
        messages += stream.observe(seen, at, 640, 480, index + 1)
    return messages


def record(db: Path, messages: list[dict[str, Any]]) -> None:
    recorder = Recorder(db)
    payloads = [json.dumps(m).encode() for m in messages]
    # each on its device's own topic: the console takes the device from the topic (a payload naming another is refused)
    topics = [f"edge/{m['device']}/detections" for m in messages]
    recorder.append([check(t, p, T0 + i) for i, (t, p) in enumerate(zip(topics, payloads))], payloads)
    recorder.close()


def test_report_counts_events_per_source_and_lists_the_open_one(tmp_path: Path) -> None:
    door, yard = events_of("cam-1", "door"), events_of("cam-1", "yard")
    db = tmp_path / "r.db"
    record(db, door + yard + door[:1])  # the door's first new delivered twice (QoS 1)
    report = event_report(db)
    assert sorted(report["cam-1"]) == ["door", "yard"]
    door_report = report["cam-1"]["door"]
    assert door_report["counts"] == {"new": 2, "update": 0, "end": 1}
    assert (door_report["events"], door_report["open"]) == (2, 1)
    assert door_report["labels"] == {"blue box": 1, "yellow box": 1}
    blue, yellow = door_report["timeline"]
    assert blue["label"] == "blue box" and blue["ended"] and blue["reason"] == "left"
    assert blue["duration_s"] == 3.8 and blue["best_score"] == 0.79
    assert yellow["label"] == "yellow box" and not yellow["ended"]
    text = render_events(report)
    assert "cam-1 door: 2 events (blue box 1, yellow box 1); messages: new 2, update 0, end 1; 1 open" in text


def test_review_report_prints_the_events_and_the_fleet_takes_them(tmp_path: Path, capsys: Any) -> None:
    messages = events_of("cam-2", "door")
    db = tmp_path / "r.db"
    record(db, messages)
    assert main(["review", "report", str(db)]) == 0
    out = capsys.readouterr().out
    assert "cam-2 door: 2 events" in out and "blue box, best 0.79, 0 updates, ended: left" in out
    assert main(["review", "report", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["events"]["cam-2"]["door"]["open"] == 1
    fleet = Fleet()
    for index, message in enumerate(messages):
        fleet.add(check("edge/cam-2/detections", json.dumps(message).encode(), T0 + index))
    assert fleet.valid == len(messages)
