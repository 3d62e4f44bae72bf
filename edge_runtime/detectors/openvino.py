"""The OpenVINO engine: ``model.onnx`` (or ``model.int8.onnx``) compiled for the CPU, MultiBoxDetection in numpy.

Why a second engine for the same file: on the seed resnet-50/512 network OpenVINO's bf16 (where the CPU has
AVX512-BF16 or AMX) ran 6.7x ONNX Runtime fp32, and on the int8 QDQ model 10.7x (issue 25's table). Precision is
never left to OpenVINO's default (which is bf16 on such CPUs): ``model.precision`` sets the inference precision hint
(``fp32`` -> f32, ``bf16``, ``fp16`` -> f16, refused in one line where the CPU lacks it; ``int8`` reads the QDQ
model with f32 for the layers it leaves in float).

Throughput comes from streams: the compiled model runs ``streams`` inferences at once (OpenVINO's THROUGHPUT hint
picks the count for this CPU when ``model.openvino.streams`` is 0), and :attr:`concurrency` tells the daemon to run
that many inference threads, each borrowing its own infer request from a pool. The compiled blob is cached in
``state_dir/openvino-cache``, so a restart skips most of the compilation.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edge_runtime.detectors.base import Detector, usable_cores
from edge_runtime.detectors.multibox import multibox_detection
from edge_runtime.errors import ModelError
from edge_runtime.model import ModelInfo
from edge_runtime.model_format import ONNX_FILE, ONNX_INPUT, ONNX_INT8_FILE, ONNX_OUTPUTS

log = logging.getLogger(__name__)

# model.precision -> (OpenVINO's inference precision hint, the CPU capability it needs)
HINTS = {"fp32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16"), "int8": ("f32", "INT8")}
REQUEST_WAIT_S = 60.0  # a pipeline thread waits this long at most for a free infer request


def cpu_capabilities() -> tuple[str, ...]:
    """What OpenVINO's CPU plugin says this CPU can run fast (``FP32``, ``BF16``, ``FP16``, ``INT8``...)."""
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVinoDetector(Detector):
    """A compiled model with a pool of infer requests: thread-safe up to :attr:`concurrency` calls at once."""

    backend = "openvino"

    def __init__(
        self,
        info: ModelInfo,
        score_threshold: float = 0.5,
        class_thresholds: Mapping[str, float] | None = None,
        top_k: int = 20,
        precision: str = "fp32",
        workers: int = 1,
        threads: int = 0,
        streams: int = 0,
        warmup_runs: int = 1,
        cache_dir: Optional[Path] = None,
    ) -> None:
        import openvino as ov

        path = info.onnx_int8_path if precision == "int8" else info.onnx_path
        if path is None:
            wanted = ONNX_INT8_FILE if precision == "int8" else ONNX_FILE
            raise ModelError(f"{info.folder}: model.backend openvino needs {wanted}, which this folder lacks")
        hint, capability = HINTS[precision]
        core = ov.Core()
        available = tuple(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        if capability not in available:
            raise ModelError(
                f"model.precision: {precision} needs {capability} on the CPU, which OpenVINO does not find here"
                f" (it has {', '.join(available)})"
            )
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache_dir)})
        properties: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": hint}
        if streams:
            properties["NUM_STREAMS"] = streams
        if threads:
            properties["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(path))
            self._check_io(model, path)
            self._compiled = core.compile_model(model, "CPU", properties)
        except ModelError:
            raise
        except Exception as error:  # OpenVINO raises RuntimeError with pages of text: one line, which file
            text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelError(f"{path}: OpenVINO cannot compile it ({text})") from None
        requests = max(1, int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")), workers)
        super().__init__(info, score_threshold, class_thresholds, top_k, concurrency=requests)
        self.path = path
        self.precision = precision
        self.streams = int(self._compiled.get_property("NUM_STREAMS"))
        total = int(self._compiled.get_property("INFERENCE_NUM_THREADS")) or usable_cores()
        self.threads = max(1, total // max(1, self.streams))  # per stream, as the other engines count per worker
        self._outputs = [self._compiled.output(name) for name in ONNX_OUTPUTS]
        self._requests: queue.Queue[Any] = queue.Queue()
        for _ in range(requests):
            self._requests.put(self._compiled.create_infer_request())
        shape = (1, 3, info.image_size, info.image_size)
        blank = np.zeros(shape, dtype=np.float32)
        cls_prob, _, anchors = self._run(blank, all_outputs=True)
        if cls_prob.ndim != 3 or cls_prob.shape[1] != info.num_classes + 1:
            raise ModelError(f"{path}: the graph's class count differs from model.json's {info.num_classes}")
        self.anchors: np.ndarray = np.ascontiguousarray(anchors[0], dtype=np.float32)
        for _ in range(max(0, warmup_runs - 1)):
            self.forward(blank)

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.backend,
            "file": self.path.name,
            "precision": self.precision,
            "streams": str(self.streams),
            "infer_requests": str(self.concurrency),
            "threads": str(self.threads),
        }

    def _run(self, batch: np.ndarray, all_outputs: bool = False) -> list[np.ndarray]:
        try:
            request = self._requests.get(timeout=REQUEST_WAIT_S)
        except queue.Empty:
            raise ModelError(f"openvino: no infer request free within {REQUEST_WAIT_S:.0f}s") from None
        try:
            request.infer({ONNX_INPUT: batch})
            wanted = self._outputs if all_outputs else self._outputs[:2]
            return [np.array(request.get_tensor(port).data, copy=True) for port in wanted]
        finally:
            self._requests.put(request)

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cls_prob, loc_pred = self._run(batch)
        return cls_prob[0], loc_pred[0]

    def rows(self, outputs: Any, min_score: Optional[float] = None) -> np.ndarray:
        cls_prob, loc_pred = outputs
        nms = self.info.nms
        return multibox_detection(
            cls_prob, loc_pred, self.anchors,
            threshold=nms.score_threshold, clip=nms.clip, variances=nms.variances,
            nms_threshold=nms.threshold, force_suppress=nms.force_suppress, nms_topk=nms.topk, min_score=min_score,
        )  # fmt: skip

    @staticmethod
    def _check_io(model: Any, path: Path) -> None:
        inputs = [port.get_any_name() for port in model.inputs]
        outputs = {name for port in model.outputs for name in port.get_names()}
        if inputs != [ONNX_INPUT] or not set(ONNX_OUTPUTS) <= outputs:
            raise ModelError(
                f"{path}: not an SSD export of this project (inputs {inputs}, outputs {sorted(outputs)}; expected"
                f" input {ONNX_INPUT!r} and outputs {', '.join(ONNX_OUTPUTS)})"
            )


def create(info: ModelInfo, config: Any, precision: str, state_dir: Optional[Path] = None) -> OpenVinoDetector:
    """The registry's factory (:mod:`edge_runtime.detectors.registry`)."""
    if config.context == "gpu":
        log.warning("model.context gpu: the openvino engine runs on the CPU here (use onnxruntime for CUDA/TensorRT)")
    settings = config.openvino
    cache = (Path(state_dir) / "openvino-cache") if state_dir is not None and settings.cache else None
    return OpenVinoDetector(
        info, score_threshold=config.score_threshold, class_thresholds=config.class_thresholds, top_k=config.top_k,
        precision=precision, workers=config.workers, threads=config.threads, streams=settings.streams,
        warmup_runs=config.warmup_runs, cache_dir=cache,
    )  # fmt: skip
