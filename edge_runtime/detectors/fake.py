"""The in-repo fake behind the detector seam: scripted detections, no network, for pipeline and CLI tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from edge_runtime.detectors.base import Detection, DetectionResult, Detector
from edge_runtime.model import ModelInfo


def fake_model_info() -> ModelInfo:
    return ModelInfo(
        folder=Path("fake"),
        name="fake",
        version="0.0.0",
        image_size=64,
        mean=(0.0, 0.0, 0.0),
        num_classes=1,
        class_names=("thing",),
        layout="deploy-folder",
    )


class FakeDetector(Detector):
    """Returns scripted detections (or none) without a network; records the image sizes it was given.

    Thread-safe like the real backends: each call gets the next call index (for ``script`` and ``delay_s``,
    which may be a function of it, so a test can make a later frame finish first) and ``max_concurrent`` records
    how many calls ever overlapped.
    """

    backend = "fake"

    def __init__(
        self,
        info: ModelInfo | None = None,
        script: Callable[[int], list[Detection]] | None = None,
        delay_s: float | Callable[[int], float] = 0.0,
    ) -> None:
        super().__init__(info or fake_model_info(), score_threshold=0.0, concurrency=8)
        self.script = script
        self.delay_s = delay_s
        self.calls: list[tuple[int, int]] = []
        self.thresholds: list[tuple[float, dict[str, float]]] = []  # every live update, in order
        self.max_concurrent = 0
        self._lock = threading.Lock()
        self._started = 0
        self._running = 0

    def forward(self, batch: np.ndarray) -> Any:
        return None

    def rows(self, outputs: Any, min_score: Optional[float] = None) -> np.ndarray:
        return np.full((0, 6), -1.0, dtype=np.float32)

    def set_thresholds(self, score_threshold: float, class_thresholds: Mapping[str, float]) -> None:
        self.thresholds.append((score_threshold, dict(class_thresholds)))

    def detect(self, image_bgr: np.ndarray) -> DetectionResult:
        height, width = image_bgr.shape[:2]
        with self._lock:
            call = self._started
            self._started += 1
            self._running += 1
            self.max_concurrent = max(self.max_concurrent, self._running)
        delay = self.delay_s(call) if callable(self.delay_s) else self.delay_s
        try:
            if delay:
                time.sleep(delay)
            detections = self.script(call) if self.script else []
        finally:
            with self._lock:
                self._running -= 1
                self.calls.append((width, height))
        timings = {"preprocess": 0.0, "inference": delay * 1000.0, "postprocess": 0.0}
        return DetectionResult(width=width, height=height, detections=detections, timings_ms=timings)
