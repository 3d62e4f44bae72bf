"""The closing summary the daemon logs at the end of a run."""

from __future__ import annotations

from edge_runtime.health import Stats


def test_summary_counts_frames_rate_and_detections_per_label() -> None:
    now = [100.0]
    stats = Stats(clock=lambda: now[0])
    stats.frame_done(30.0, ["blue box", "yellow box"])
    stats.frame_done(50.0, ["blue box"])
    stats.frame_done(40.0, [])
    now[0] = 102.0
    assert stats.summary() == (
        "3 frames in 2.0 s (1.5 fps), inference p50 40.0 ms p95 50.0 ms; detections: blue box 2, yellow box 1"
    )


def test_summary_of_an_empty_run() -> None:
    assert Stats(clock=lambda: 5.0).summary() == "0 frames in 0.0 s (0.0 fps); detections: none"
