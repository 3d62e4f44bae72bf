"""Device sampling: the policies and caps on literal detections and a fake clock, the spool on a real folder
(bounds, drop-oldest, restart, crash leftovers), the sampler on real frames, the uploader's order and retries."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from edge_runtime.detectors.base import Detection, DetectionResult
from edge_runtime.frames import Frame
from edge_runtime.samples import SAMPLE_SCHEMA, Sampler
from edge_runtime.samples.config import SamplesConfig
from edge_runtime.samples.policy import Caps, Policy
from edge_runtime.samples.spool import Spool
from edge_runtime.samples.uploader import Uploader, object_key


def det(label: str, score: float) -> dict:
    return {"label": label, "score": score}


def config(**changes) -> SamplesConfig:
    base = {"enabled": True, "bucket": "bkt", "uncertain_min": None, "rare_share": None, "disagreement": False}
    return SamplesConfig(**{**base, **changes})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_config_is_off_by_default_and_strict() -> None:
    assert SamplesConfig().enabled is False
    with pytest.raises(ValidationError, match="bucket is required"):
        SamplesConfig(enabled=True)
    with pytest.raises(ValidationError, match="uncertain_min must not be above"):
        SamplesConfig(uncertain_min=0.7, uncertain_max=0.6)
    with pytest.raises(ValidationError, match="extra"):
        SamplesConfig.model_validate({"bucket_name": "x"})


def test_uncertainty_band_includes_its_ends_only() -> None:
    policy = Policy(config(uncertain_min=0.3, uncertain_max=0.6))
    assert policy.reasons("s", [det("a", 0.3)]) == ["uncertain"]
    assert policy.reasons("s", [det("a", 0.6)]) == ["uncertain"]
    assert policy.reasons("s", [det("a", 0.61), det("b", 0.29)]) == []
    assert policy.reasons("s", []) == []


def test_rare_class_counts_only_after_enough_detections() -> None:
    policy = Policy(config(rare_share=0.2, rare_after=10))
    for _ in range(9):
        assert policy.reasons("s", [det("common", 0.9)]) == []
    assert policy.reasons("s", [det("odd", 0.9)]) == []  # 9 seen before: shares do not count yet
    assert policy.reasons("s", [det("odd", 0.9)]) == ["rare"]  # 1 of 10 = 0.1 < 0.2
    assert policy.reasons("s", [det("common", 0.9)]) == []


def test_disagreement_is_per_source_and_needs_a_previous_frame() -> None:
    policy = Policy(config(disagreement=True))
    assert policy.reasons("a", [det("x", 0.9)]) == []
    assert policy.reasons("b", []) == []  # another source's first frame
    assert policy.reasons("a", [det("x", 0.8), det("x", 0.9)]) == []  # same labels (a set), more boxes
    assert policy.reasons("a", [det("y", 0.9)]) == ["disagreement"]
    assert policy.reasons("a", [det("y", 0.9)]) == []


def test_random_one_in_n_takes_about_one_in_n() -> None:
    policy = Policy(config(random_one_in=10), rng=random.Random(7))
    taken = sum(bool(policy.reasons("s", [])) for _ in range(2000))
    assert 150 <= taken <= 250


def test_caps_per_hour_and_per_day_on_the_clock() -> None:
    clock = Clock()
    caps = Caps(per_hour=3, per_day=5, clock=clock)
    assert [caps.admit() for _ in range(4)] == [True, True, True, False]
    clock.now += 3599
    assert caps.admit() is False
    clock.now += 1  # the first three leave the hour
    assert [caps.admit() for _ in range(3)] == [True, True, False]  # the day holds 5
    clock.now += 86400 - 3600  # the first three leave the day
    assert [caps.admit() for _ in range(4)] == [True, True, True, False]
    assert Caps(0, 10, clock).admit() is False


def test_spool_drops_oldest_counts_and_survives_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_files=3, max_bytes=10_000)
    for index in range(5):
        spool.add(f"2026{index:02d}", b"j" * 100, b"{}")
    assert spool.dropped == 2 and spool.depth == 3
    kept = [f"2026{i:02d}{suffix}" for i in (2, 3, 4) for suffix in (".jpg", ".json")]
    assert sorted(p.name for p in tmp_path.iterdir()) == kept
    (tmp_path / "202605.jpg").write_bytes(b"orphan: the crash came before its sidecar")
    (tmp_path / "202606.json.tmp").write_bytes(b"{")
    again = Spool(tmp_path, max_files=3, max_bytes=10_000)
    oldest = again.oldest()
    assert again.depth == 3 and oldest is not None and oldest.stem == "202602"
    assert not (tmp_path / "202605.jpg").exists() and not (tmp_path / "202606.json.tmp").exists()
    bytes_bound = Spool(tmp_path / "b", max_files=100, max_bytes=250)
    for index in range(3):
        bytes_bound.add(f"{index}", b"j" * 100, b"{}")
    assert bytes_bound.depth == 2 and bytes_bound.dropped == 1 and bytes_bound.size_bytes == 204
    bytes_bound.remove("1")
    assert bytes_bound.size_bytes == 102
    bytes_bound.add("huge", b"j" * 300, b"{}")  # bigger than the whole spool: refused, the others kept
    assert bytes_bound.depth == 1 and bytes_bound.dropped == 2


def frame(seq: int) -> Frame:
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[10:30, 10:40] = (255, 120, 0)
    return Frame(image=image, seq=seq, captured_at=1_764_851_200.5 + seq)


def result(*scores: float) -> DetectionResult:
    detections = [Detection("blue box", 0, s, (10.0, 10.0, 40.0, 30.0), (0.15, 0.2, 0.62, 0.6)) for s in scores]
    return DetectionResult(64, 48, detections)


def test_sampler_writes_full_resolution_jpeg_and_sidecar_and_counts_caps(tmp_path: Path) -> None:
    import cv2

    spool = Spool(tmp_path, 100, 10_000_000)
    model = {"name": "demo", "version": "1", "digest": "ab" * 32, "classes": ["blue box", "yellow box"]}
    sampler = Sampler(config(uncertain_min=0.3, max_per_hour=2), "cam-1", model, spool, None,
                      caps=Caps(2, 10, Clock()))
    outcomes = [sampler.offer(frame(i), result(score), "rtsp://cam/1") for i, score in
                enumerate([0.9, 0.45, 0.5, 0.55], start=1)]
    assert outcomes == [None, ["uncertain"], ["uncertain"], None]
    assert (sampler.offered, sampler.sampled, sampler.capped) == (4, 2, 1)
    item = spool.oldest()
    assert item is not None
    stem = item.stem
    jpeg, sidecar = spool.read(stem)
    meta = json.loads(sidecar)
    assert meta["schema"] == SAMPLE_SCHEMA and meta["device"] == "cam-1" and meta["seq"] == 2
    assert meta["captured_at"] == "2025-12-04T12:26:42.500Z" and meta["reasons"] == ["uncertain"]
    assert meta["model"] == model and meta["image"] == {"file": f"{stem}.jpg", "width": 64, "height": 48}
    assert meta["detections"][0]["score"] == 0.45 and meta["detections"][0]["box"] == [10.0, 10.0, 40.0, 30.0]
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (48, 64, 3)
    assert object_key("samples/", meta, stem, ".jpg") == f"samples/cam-1/2025-12-04/{stem}.jpg"


class FlakyPutter:
    """Records puts; fails the first ``failures`` calls as a dead network would."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.keys: list[str] = []

    def put(self, key: str, body: bytes, content_type: str, timeout_s: float) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("connection refused")
        self.keys.append(key)


def test_uploader_sends_oldest_first_image_before_sidecar_and_retries_with_backoff(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 100, 10_000_000)
    for stem in ("b", "a"):
        spool.add(stem, b"jpeg", json.dumps({"device": "d", "captured_at": "2026-12-04T00:00:00.000Z"}).encode())
    putter = FlakyPutter(failures=3)
    stop = threading.Event()
    uploader = Uploader(spool, putter, "p", stop, timeout_s=1, backoff_initial_s=0.01, backoff_max_s=0.02)
    uploader.start()
    from tests.support.waiting import wait_until

    assert wait_until(lambda: spool.depth == 0, 10)
    stop.set()
    assert uploader.close(5)
    assert putter.keys == ["p/d/2026-12-04/a.jpg", "p/d/2026-12-04/a.json", "p/d/2026-12-04/b.jpg",
                           "p/d/2026-12-04/b.json"]
    assert uploader.failures == 3 and uploader.uploaded == 2


def test_an_upload_without_credentials_says_what_the_component_needs(tmp_path: Path, monkeypatch) -> None:
    import os

    from edge_runtime.samples.s3put import S3Put, UploadError

    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no profile
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # and no instance metadata: nothing leaves loopback
    with pytest.raises(UploadError, match=r"no AWS credentials .* aws\.greengrass\.TokenExchangeService"):
        S3Put("bkt-x", "us-east-1", "http://127.0.0.1:9").put("k.jpg", b"x", "image/jpeg", 5)
