"""The detector seam: :class:`Detector`, what the pipeline, ``detect``, ``evaluate`` and ``bench`` know of a backend.

A backend (``edge_runtime.detectors.mxnet``, ``.onnxruntime``, ``.fake``) implements two steps:
:meth:`Detector.forward`,
the network alone on one prepared batch (what ``bench`` times as the bare forward), and :meth:`Detector.rows`, the
MultiBoxDetection rows from what ``forward`` returned. Everything around them is shared here, so every backend
prepares images and filters detections identically: pre- and post-processing are pure functions over arrays
(tested with literal arrays) and follow the training contract exactly (DESIGN.md): RGB, square resize to
``image_shape``, minus the mean, NCHW float32 in; rows ``[class_id, score, xmin, ymin, xmax, ymax]`` (normalised,
``class_id -1`` = background/suppressed) out.
"""

from __future__ import annotations

import abc
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from edge_runtime.errors import ModelError, SourceError
from edge_runtime.model import ModelInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in pixels of the original image
    box_normalized: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 4),
            "box": [round(value, 1) for value in self.box],
            "box_normalized": [round(value, 5) for value in self.box_normalized],
        }


@dataclass(frozen=True)
class DetectionResult:
    width: int
    height: int
    detections: list[Detection]
    timings_ms: dict[str, float] = field(default_factory=dict)


class Detector(abc.ABC):
    """Turns one BGR image (as OpenCV decodes it) into detections; thread-safe up to :attr:`concurrency` calls.

    Subclasses set :attr:`backend` and implement :meth:`forward` and :meth:`rows`; the registry
    (:func:`edge_runtime.detectors.create_detector`) builds them from a ``model`` configuration.
    """

    backend = "abstract"
    info: ModelInfo
    precision = "fp32"
    choice: Optional[dict[str, Any]] = None  # set by model.backend auto: the measured table and what it chose

    def __init__(
        self,
        info: ModelInfo,
        score_threshold: float = 0.5,
        class_thresholds: Mapping[str, float] | None = None,
        top_k: int = 20,
        concurrency: int = 1,
    ) -> None:
        self.info = info
        self.top_k = top_k
        self.concurrency = concurrency  # detect() calls that may run at once: the pipeline's inference threads
        self._thresholds_lock = threading.Lock()  # a live update swaps both thresholds between two frames
        self.score_threshold = score_threshold
        self.class_thresholds = class_thresholds_by_id(info, class_thresholds or {})

    @abc.abstractmethod
    def forward(self, batch: np.ndarray) -> Any:
        """The network on one (1, 3, S, S) float32 batch; its raw outputs, in whatever form :meth:`rows` takes."""

    @abc.abstractmethod
    def rows(self, outputs: Any, min_score: Optional[float] = None) -> np.ndarray:
        """The (anchors, 6) detection rows of ``forward``'s outputs. Rows scoring below ``min_score`` may come out
        as ``-1`` (a backend may skip work on rows no threshold lets through); every other row must be exact."""

    def describe(self) -> dict[str, str]:
        """How this detector runs, for the start-up line and ``bench``: backend, threads, providers, ..."""
        return {"backend": self.backend, "concurrency": str(self.concurrency)}

    def engine_status(self) -> dict[str, Any]:
        """The status message's ``engine``: what runs, and for ``auto`` the measured table it was chosen from."""
        status: dict[str, Any] = {"backend": self.backend, "precision": self.precision,
                                  "chosen_by": "auto" if self.choice else "config"}  # fmt: skip
        if self.choice:
            status["table"] = [{key: item[key] for key in ("engine", "precision", "fps", "gate")}
                               for item in self.choice["table"]]  # fmt: skip
        return status

    def set_thresholds(self, score_threshold: float, class_thresholds: Mapping[str, float]) -> None:
        """Change the score thresholds between frames (a live configuration update); ModelError for an unknown class."""
        by_id = class_thresholds_by_id(self.info, class_thresholds)  # raises before anything changes
        with self._thresholds_lock:
            self.score_threshold = score_threshold
            self.class_thresholds = by_id

    def current_thresholds(self) -> tuple[float, dict[int, float]]:
        with self._thresholds_lock:
            return self.score_threshold, self.class_thresholds

    def detections_from(self, rows: np.ndarray, width: int, height: int) -> list[Detection]:
        """Detection rows to :class:`Detection` objects in pixels of a ``width`` x ``height`` image."""
        score_threshold, class_thresholds = self.current_thresholds()
        return postprocess(rows, width, height, self.info.label, score_threshold, class_thresholds, self.top_k)

    def detect(self, image_bgr: np.ndarray) -> DetectionResult:
        height, width = image_bgr.shape[:2]
        started = time.perf_counter()
        batch = preprocess(image_bgr, self.info.image_size, self.info.mean)
        prepared = time.perf_counter()
        outputs = self.forward(batch)
        inferred = time.perf_counter()
        score_threshold, class_thresholds = self.current_thresholds()
        lowest = min([score_threshold, *class_thresholds.values()])
        rows = self.rows(outputs, min_score=lowest)
        detections = postprocess(rows, width, height, self.info.label, score_threshold, class_thresholds, self.top_k)
        done = time.perf_counter()
        timings = {
            "preprocess": (prepared - started) * 1000.0,
            "inference": (inferred - prepared) * 1000.0,
            "postprocess": (done - inferred) * 1000.0,
        }
        return DetectionResult(width=width, height=height, detections=detections, timings_ms=timings)


def preprocess(image_bgr: np.ndarray, size: int, mean: Sequence[float]) -> np.ndarray:
    """The (1, 3, size, size) float32 batch the network was trained on: RGB, square resize, minus the mean.

    It runs once per frame on the inference thread, so it is ordered for speed with the very same result: resize
    first (each channel is resized alike, so the channel swap commutes with it) and swap on the small image, then
    one contiguous float copy, so MXNet need not copy a strided array again. Converting a 1080p frame's colours
    before resizing, as a plain reading of the contract would, took about ten times longer.
    """
    import cv2

    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 BGR image (got shape {image_bgr.shape})")
    resized = cv2.resize(image_bgr, (size, size), interpolation=cv2.INTER_LINEAR)
    chw = np.ascontiguousarray(resized.transpose(2, 0, 1)[::-1], dtype=np.float32)  # BGR HWC -> RGB CHW
    chw -= np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    return chw[np.newaxis, ...]


def postprocess(
    rows: np.ndarray,
    width: int,
    height: int,
    label_of: Callable[[int], str],
    score_threshold: float,
    class_thresholds: Mapping[int, float] | None = None,
    top_k: int = 20,
) -> list[Detection]:
    """Detections from the network's (anchors, 6) rows: background dropped, thresholds applied, best ``top_k``."""
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    table = table[table[:, 0] >= 0]  # class_id -1: background or suppressed by NMS
    class_ids = table[:, 0].astype(np.int64)
    minimum = np.full(len(table), score_threshold)
    for class_id, threshold in (class_thresholds or {}).items():
        minimum[class_ids == class_id] = threshold
    table = table[table[:, 1] >= minimum]
    table = table[np.argsort(-table[:, 1], kind="stable")]
    table[:, 2:6] = np.clip(table[:, 2:6], 0.0, 1.0)
    table = table[(table[:, 4] > table[:, 2]) & (table[:, 5] > table[:, 3])]  # empty once clipped to the image
    kept: list[Detection] = []
    for row in table[:top_k].tolist():
        class_id = int(row[0])
        score = float(row[1])
        xmin, ymin, xmax, ymax = row[2:6]
        kept.append(
            Detection(
                label=label_of(class_id),
                class_id=class_id,
                score=score,
                box=(xmin * width, ymin * height, xmax * width, ymax * height),
                box_normalized=(xmin, ymin, xmax, ymax),
            )
        )
    return kept


def class_thresholds_by_id(info: ModelInfo, by_key: Mapping[str, float]) -> dict[int, float]:
    """Per-class thresholds keyed by label or class id (as config allows), resolved to class ids; none configured
    means the model's own recommendation (model.json's evaluation, :attr:`ModelInfo.recommended_thresholds`)."""
    by_key = by_key or info.recommended_thresholds
    names = {info.label(class_id): class_id for class_id in range(info.num_classes)}
    resolved: dict[int, float] = {}
    for key, value in by_key.items():
        if key in names:
            resolved[names[key]] = value
        elif key.isdigit() and int(key) < info.num_classes:
            resolved[int(key)] = value
        else:
            raise ModelError(f"model.class_thresholds: {key!r} is not a class of {info.name} ({', '.join(names)})")
    return resolved


def read_image(path: str | Path) -> np.ndarray:
    import cv2

    file = Path(path)
    if not file.is_file():  # before OpenCV, which would print a warning of its own first
        raise SourceError(f"{path}: {'is a folder, not an image' if file.is_dir() else 'no such file'}")
    data = file.read_bytes()
    # a JPEG cut short (a copy or upload that stopped) decodes to a grey-filled image with only libjpeg's warning:
    # its entropy-coded data, after the last start-of-scan marker, never reaches the end-of-image marker
    if data[:2] == b"\xff\xd8" and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise SourceError(f"{path}: truncated JPEG (no end-of-image marker after its image data): the file is"
                          " incomplete")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: cannot read as an image")
    return image




def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
