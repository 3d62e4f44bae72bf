"""Snapshots: JPEG under the message budget, the per-minute limit, the ring folder, and the pipeline's call."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import cv2
import numpy as np
import pytest

from edge_runtime.config import ConfigError, load_config
from edge_runtime.detectors.base import Detection
from edge_runtime.detectors.fake import FakeDetector
from edge_runtime.messages import encode, validate_message
from edge_runtime.publishers.base import Publisher
from edge_runtime.snapshots import (
    RateLimiter,
    RingFolder,
    SnapshotConfig,
    Snapshotter,
    encode_jpeg,
    fit_snapshot,
)
from edge_runtime.sources.base import FakeSource
from tests.support.assembly import one_source_daemon


def detection(seq: int = 7, width: int = 640, height: int = 480, boxes: int = 1) -> dict[str, Any]:
    box = {"label": "box", "class_id": 0, "score": 0.9, "box": [10.0, 20.0, 100.0, 200.0],
           "box_normalized": [0.015, 0.041, 0.156, 0.416]}  # fmt: skip
    return {
        "schema": "edge-runtime/detection/1", "device": "cam-1", "session": "abc123", "seq": seq,
        "captured_at": "2026-12-02T00:00:00.000Z", "image": {"width": width, "height": height},
        "detections": [box] * boxes,
    }  # fmt: skip


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random pixels: the worst case for JPEG, so the budget has to bite."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_jpeg_round_trip_keeps_colour_order() -> None:
    image = np.zeros((32, 48, 3), np.uint8)
    image[:, :, 2] = 255  # pure red in BGR
    data, width, height = encode_jpeg(image, 95)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert (width, height) == (48, 32) and decoded.shape == (32, 48, 3)
    assert decoded[..., 2].mean() > 240 and decoded[..., 0].mean() < 15
    rgb, _, _ = encode_jpeg(image[:, :, ::-1].copy(), 95, order="rgb")
    assert cv2.imdecode(np.frombuffer(rgb, np.uint8), cv2.IMREAD_COLOR)[..., 2].mean() > 240


def test_jpeg_refuses_what_is_not_a_colour_frame() -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_jpeg(np.zeros((8, 8), np.uint8), 80)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_jpeg(np.zeros((8, 8, 3), np.float32), 80)


def test_small_frame_fits_at_first_quality_and_is_valid() -> None:
    message = fit_snapshot(noise(48, 64), detection(), SnapshotConfig(enabled=True))
    assert message is not None
    validate_message(message)
    assert message["image"] == {"format": "jpeg", "width": 64, "height": 48, "quality": 80,
                                "bytes": len(base64.b64decode(message["data"]))}  # fmt: skip
    assert (message["session"], message["seq"], message["frame"]) == ("abc123", 7, {"width": 640, "height": 480})


def test_noisy_full_hd_frame_is_brought_under_the_budget() -> None:
    config = SnapshotConfig(enabled=True, max_bytes=100_000)
    message = fit_snapshot(noise(1080, 1920), detection(width=1920, height=1080), config)
    assert message is not None
    assert len(encode(message)) <= 100_000
    # noise does not fit at 1280 px wide at any quality: it had to scale further down, keeping the aspect ratio
    assert message["image"]["width"] < 1280
    assert abs(message["image"]["width"] / message["image"]["height"] - 1920 / 1080) < 0.02
    validate_message(message)


def test_lower_quality_is_tried_before_downscaling() -> None:
    image = noise(200, 300)
    first, _, _ = encode_jpeg(image, 90)
    budget = len(first) * 4 // 3 + 600 - 2000  # the message at quality 90 is just over; 75 fits at full size
    message = fit_snapshot(image, detection(), SnapshotConfig(enabled=True, quality=90, min_quality=30,
                                                              max_bytes=max(8_000, budget)))  # fmt: skip
    assert message is not None
    assert message["image"]["width"] == 300 and message["image"]["quality"] < 90


def test_nothing_fits_returns_none() -> None:
    config = SnapshotConfig(enabled=True, max_bytes=8_000)
    # a session id as long as the whole budget: no picture, however small, can fit beside it
    assert fit_snapshot(noise(20, 20), dict(detection(), session="s" * 8_000), config) is None


def test_config_is_strict_and_off_by_default() -> None:
    assert load_config(environ={}).snapshots.enabled is False
    config = load_config(environ={"EDGE_RUNTIME_SNAPSHOTS__ENABLED": "true", "EDGE_RUNTIME_SNAPSHOTS__PER_MINUTE": "2"})
    assert config.snapshots.enabled and config.snapshots.per_minute == 2
    with pytest.raises(ConfigError, match=r"snapshots.max_bytes: .*\(got 200000\)"):
        load_config(environ={}, overrides={"snapshots": {"max_bytes": 200_000}})
    with pytest.raises(ConfigError, match="snapshots: min_quality must not be above quality"):
        load_config(environ={}, overrides={"snapshots": {"quality": 50, "min_quality": 60}})
    with pytest.raises(ConfigError, match=r"snapshots\.colour: unknown key"):
        load_config(environ={}, overrides={"snapshots": {"colour": 1}})


def test_rate_limiter_spreads_the_minute() -> None:
    """6 a minute from a 10 fps stream with detections in every frame: one every 10 s, not 6 frames in a row."""
    now = [0.0]
    limiter = RateLimiter(6, clock=lambda: now[0])
    allowed = []
    for frame in range(1800):  # 3 minutes at 10 fps
        now[0] = frame / 10
        if limiter.allow():
            allowed.append(now[0])
    gaps = [b - a for a, b in zip(allowed, allowed[1:])]
    assert len(allowed) == 18 and all(10.0 <= gap <= 10.1 for gap in gaps)
    for start in allowed:  # any minute holds at most the limit
        assert sum(start <= at < start + 60 for at in allowed) <= 6


def test_rate_limiter_after_a_quiet_spell_lets_the_next_one_through() -> None:
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    assert [limiter.allow() for _ in range(3)] == [True, False, False]  # never a burst
    now[0] = 19.9
    assert limiter.allow() is False
    now[0] = 20.0
    assert limiter.allow() is True
    now[0] = 500.0
    assert limiter.allow() is True


def test_ring_folder_keeps_the_newest(tmp_path) -> None:
    ring = RingFolder(tmp_path / "snaps", max_files=3)
    for seq in range(1, 6):
        ring.write(dict(detection(seq), data="x"), b"\xff\xd8jpeg")
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == [
        f"abc123-{seq:08d}.{ext}" for seq in (3, 4, 5) for ext in ("jpg", "json")
    ]
    assert b'"data"' not in (tmp_path / "snaps" / "abc123-00000005.json").read_bytes()
    again = RingFolder(tmp_path / "snaps", max_files=3)  # a restart: the bound still holds
    again.write(dict(detection(6), data="x"), b"\xff\xd8")
    assert len(list((tmp_path / "snaps").glob("*.jpg"))) == 3


def test_snapshotter_skips_empty_frames_and_counts_the_rate(tmp_path) -> None:
    now = [0.0]
    snapper = Snapshotter(SnapshotConfig(enabled=True, per_minute=2, folder=str(tmp_path / "ring")),
                          clock=lambda: now[0])  # fmt: skip
    image = noise(40, 40)
    assert snapper.take(image, detection(boxes=0)) is None
    taken = []
    for seq, at in ((1, 0.0), (2, 29.0), (3, 30.0)):  # 2 a minute: one at most every 30 s
        now[0] = at
        taken.append(snapper.take(image, detection(seq)))
    assert [m is not None for m in taken] == [True, False, True]
    assert (snapper.counts.sent, snapper.counts.rate_limited) == (2, 1)
    assert len(list((tmp_path / "ring").glob("*.jpg"))) == 2
    assert snapper.take(np.zeros((4, 4), np.uint8), detection(9)) is None
    assert snapper.counts.failed == 0 and snapper.counts.rate_limited == 2  # the limit comes before encoding


class AnyKind(Publisher):
    """Records every kind (the shared RecordingPublisher knows only the kinds the publishers route)."""

    name = "any"

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def publish(self, kind: str, message: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append((kind, message))


def boxes_on_odd(call: int) -> list[Detection]:
    return [Detection("thing", 0, 0.9, (1.0, 2.0, 30.0, 40.0), (0.01, 0.04, 0.46, 0.83))] if call % 2 else []


@pytest.mark.parametrize("enabled", [True, False])
def test_pipeline_publishes_a_snapshot_after_a_detection_with_boxes(enabled: bool) -> None:
    out = AnyKind()
    stop = threading.Event()
    pipeline = one_source_daemon(FakeSource(count=12), FakeDetector(script=boxes_on_odd), [out], stop, device="dev-1",
                        status_interval_s=0, snapshots=SnapshotConfig(enabled=enabled, per_minute=3))  # fmt: skip
    pipeline.start()
    deadline = time.monotonic() + 10
    while not pipeline.finished.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pipeline.stop(2.0)
    kinds = [kind for kind, _ in out.messages]
    snaps = [message for kind, message in out.messages if kind == "snapshot"]
    if not enabled:
        assert "snapshot" not in kinds and len(kinds) == 12
        return
    assert len(snaps) == 1  # six frames had boxes within a second; three a minute is one at most every 20 s
    by_seq = {m["seq"]: m for kind, m in out.messages if kind == "detection"}
    for snap in snaps:
        validate_message(snap)
        assert by_seq[snap["seq"]]["detections"] and snap["session"] == pipeline.session.id
        # each snapshot follows its own detection message
        assert kinds[out.messages.index(("snapshot", snap)) - 1] == "detection"
