"""The detector seam: :class:`Detector` (what the pipeline knows), :class:`MXNetDetector` and :class:`FakeDetector`.

Pre- and post-processing are pure functions over arrays so they are tested with literal arrays, and they follow
the training contract exactly (DESIGN.md): RGB, square resize to ``image_shape``, minus the mean, NCHW float32 in;
rows ``[class_id, score, xmin, ymin, xmax, ymax]`` (normalised, ``class_id -1`` = background/suppressed) out.
"""

from __future__ import annotations

import abc
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_runtime.errors import ModelError, SourceError
from edge_runtime.model import ModelInfo, read_model_info

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
    """Turns one BGR image (as OpenCV decodes it) into detections."""

    info: ModelInfo

    @abc.abstractmethod
    def detect(self, image_bgr: np.ndarray) -> DetectionResult: ...

    def set_thresholds(self, score_threshold: float, class_thresholds: Mapping[str, float]) -> None:
        """Change the score thresholds between frames (a live configuration update); ModelError for an unknown class."""
        raise ModelError(f"{type(self).__name__}: thresholds cannot be changed while running")


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
    """Per-class thresholds keyed by label or class id (as config allows), resolved to class ids."""
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

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: cannot read as an image")
    return image


class MXNetDetector(Detector):
    """An SSD deploy graph bound ``workers`` times for a batch of one, warmed up before the first frame.

    Each binding (an MXNet executor) has its own input and intermediate arrays but all share one copy of the
    weights, so a second worker costs activations, not another 110 MB of resnet-50 weights. :meth:`detect` is
    thread-safe: each call borrows a free executor, so up to ``workers`` pipeline threads infer at once.
    """

    def __init__(
        self,
        info: ModelInfo,
        score_threshold: float = 0.5,
        class_thresholds: Mapping[str, float] | None = None,
        top_k: int = 20,
        context: str = "cpu",
        gpu_id: int = 0,
        warmup_runs: int = 1,
        workers: int = 1,
        threads: int = 0,
    ) -> None:
        from edge_runtime.mxnet_io import configure_threads

        self.threads_env = configure_threads(threads, workers)  # before MXNet loads: it reads them only then
        import mxnet as mx

        from edge_runtime.mxnet_io import load_params, load_symbol

        self.info = info
        self.score_threshold = score_threshold
        self.class_thresholds = class_thresholds_by_id(info, class_thresholds or {})
        self.top_k = top_k
        self.workers = workers
        self._thresholds_lock = threading.Lock()  # a live update swaps both thresholds between two frames
        self._mx = mx
        symbol = load_symbol(info.symbol_path)
        arg_params, aux_params = load_params(info.params_path)
        ctx = mx.gpu(gpu_id) if context == "gpu" else mx.cpu()
        shape = (1, 3, info.image_size, info.image_size)
        weights, aux = _weights_for(symbol, arg_params, aux_params, ctx, info)
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(workers):
            self._free.put(_bind(symbol, weights, aux, ctx, shape, info))
        log.debug("bound %s %d time(s): input %s; %s", info.name, workers, shape, self.threads_env)
        for _ in range(warmup_runs * workers):  # one executor after another: each allocates on its first forward
            self._forward(np.zeros(shape, dtype=np.float32))

    @classmethod
    def from_config(cls, config: Any) -> MXNetDetector:
        """From a :class:`~edge_runtime.config.ModelConfig` (whose ``path`` must be set)."""
        info = read_model_info(config.path, verify_digests=config.verify_digests)
        return cls(
            info,
            score_threshold=config.score_threshold,
            class_thresholds=config.class_thresholds,
            top_k=config.top_k,
            context=config.context,
            gpu_id=config.gpu_id,
            warmup_runs=config.warmup_runs,
            workers=config.workers,
            threads=config.threads,
        )

    def set_thresholds(self, score_threshold: float, class_thresholds: Mapping[str, float]) -> None:
        by_id = class_thresholds_by_id(self.info, class_thresholds)  # raises before anything changes
        with self._thresholds_lock:
            self.score_threshold = score_threshold
            self.class_thresholds = by_id

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """The network's output rows for one (1, 3, S, S) batch, on whichever executor is free."""
        executor = self._free.get()  # never waits long: the pipeline runs at most ``workers`` threads
        try:
            executor.forward(is_train=False, data=batch)  # copies the batch into the executor's input
            output: np.ndarray = executor.outputs[0].asnumpy()
        finally:
            self._free.put(executor)
        return output

    def detect(self, image_bgr: np.ndarray) -> DetectionResult:
        height, width = image_bgr.shape[:2]
        started = time.perf_counter()
        batch = preprocess(image_bgr, self.info.image_size, self.info.mean)
        prepared = time.perf_counter()
        rows = self._forward(batch)[0]
        inferred = time.perf_counter()
        with self._thresholds_lock:
            score_threshold, class_thresholds = self.score_threshold, self.class_thresholds
        detections = postprocess(rows, width, height, self.info.label, score_threshold, class_thresholds, self.top_k)
        done = time.perf_counter()
        timings = {
            "preprocess": (prepared - started) * 1000.0,
            "inference": (inferred - prepared) * 1000.0,
            "postprocess": (done - inferred) * 1000.0,
        }
        return DetectionResult(width=width, height=height, detections=detections, timings_ms=timings)


def _weights_for(
    symbol: Any, arg_params: Mapping[str, Any], aux_params: Mapping[str, Any], ctx: Any, info: ModelInfo
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The graph's weights and auxiliary states on ``ctx``, by name; ModelError naming what the file lacks."""
    needed = [name for name in symbol.list_arguments() if name != "data"]
    missing = [name for name in needed if name not in arg_params]
    missing += [name for name in symbol.list_auxiliary_states() if name not in aux_params]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ModelError(f"{info.params_path}: weights do not fit the graph (missing {shown})")
    weights = {name: arg_params[name].as_in_context(ctx) for name in needed}
    aux = {name: aux_params[name].as_in_context(ctx) for name in symbol.list_auxiliary_states()}
    return weights, aux


def _bind(
    symbol: Any, weights: dict[str, Any], aux: dict[str, Any], ctx: Any, shape: tuple[int, ...], info: ModelInfo
) -> Any:
    """One inference executor over the shared ``weights``, with its own input array of ``shape``."""
    import mxnet as mx

    from edge_runtime.mxnet_io import first_line, native_stderr_to_log

    try:
        with native_stderr_to_log():
            return symbol.bind(
                ctx, args={**weights, "data": mx.nd.zeros(shape, ctx=ctx)}, aux_states=aux, grad_req="null"
            )
    except Exception as error:  # MXNetError from a shape mismatch between the graph and the weights
        raise ModelError(f"{info.params_path}: weights do not fit the graph ({first_line(error)})") from None


class FakeDetector(Detector):
    """Returns scripted detections (or none) without a network; records the image sizes it was given.

    Thread-safe like :class:`MXNetDetector`: each call gets the next call index (for ``script`` and ``delay_s``,
    which may be a function of it, so a test can make a later frame finish first) and ``max_concurrent`` records
    how many calls ever overlapped.
    """

    def __init__(
        self,
        info: ModelInfo | None = None,
        script: Callable[[int], list[Detection]] | None = None,
        delay_s: float | Callable[[int], float] = 0.0,
    ) -> None:
        self.info = info or ModelInfo(
            folder=Path("fake"),
            name="fake",
            version="0.0.0",
            image_size=64,
            mean=(0.0, 0.0, 0.0),
            num_classes=1,
            class_names=("thing",),
            symbol_path=Path("fake-symbol.json"),
            params_path=Path("fake.params"),
            layout="deploy-folder",
        )
        self.script = script
        self.delay_s = delay_s
        self.calls: list[tuple[int, int]] = []
        self.thresholds: list[tuple[float, dict[str, float]]] = []  # every live update, in order
        self.max_concurrent = 0
        self._lock = threading.Lock()
        self._started = 0
        self._running = 0

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
