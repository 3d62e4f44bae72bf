"""The ONNX Runtime backend: ``model.onnx`` (or ``model.int8.onnx``) and MultiBoxDetection in numpy.

This is what devices run: ONNX Runtime publishes x86_64 and aarch64 wheels for every current Python and works
with numpy 1 and 2, where MXNet installs on neither Python 3.12+ nor a Raspberry Pi. The graph
(:mod:`edge_runtime.model_format`) ends where MXNet's MultiBoxDetection begins; :mod:`.multibox` does the rest.
"""

from __future__ import annotations

import ctypes.util
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from edge_runtime.detectors.base import Detector, usable_cores
from edge_runtime.detectors.multibox import multibox_detection
from edge_runtime.errors import ModelError
from edge_runtime.model import ModelInfo
from edge_runtime.model_format import ONNX_FILE, ONNX_INPUT, ONNX_INT8_FILE, ONNX_OUTPUTS

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def default_threads(workers: int) -> int:
    """Intra-op threads per inference when the configuration says 0: the usable cores shared by the workers.

    Every core, not one: measured on 2 cores, 2 threads ran resnet-50/512 at 4.4 fps against 2.4 with one, and with
    a busy process on the other core they still held 2.05 against 2.26 (without spin-waiting, see ``_session``),
    where MXNet's OpenMP pool fell from 360 to 73 fps on the demo model.
    """
    return max(1, usable_cores() // workers)


class OnnxRuntimeDetector(Detector):
    """One ONNX Runtime session (thread-safe: up to ``workers`` pipeline threads call it at once)."""

    backend = "onnxruntime"

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
        precision: str = "fp32",
        spin_wait: bool = False,
        state_dir: Optional[Path] = None,
    ) -> None:
        super().__init__(info, score_threshold, class_thresholds, top_k, concurrency=workers)
        path = info.onnx_int8_path if precision == "int8" else info.onnx_path
        if path is None:
            wanted = ONNX_INT8_FILE if precision == "int8" else ONNX_FILE
            hint = " (cloud-training convert --quantize int8 writes it)" if precision == "int8" else (
                " (cloud-training export adds it to a deploy folder)"
            )
            raise ModelError(f"{info.folder}: model.backend onnxruntime needs {wanted}, which this folder lacks{hint}")
        self.path = path
        self.precision = precision
        self.threads = threads or default_threads(workers)
        self.providers = providers_for(context, gpu_id, _available_providers(), state_dir)
        self.spin_wait = spin_wait
        self._session = _session(path, self.threads, self.providers, spin_wait)
        warn_if_fell_back(self.providers, self._session.get_providers())
        self._check_io(self._session, path)
        shape = (1, 3, info.image_size, info.image_size)
        blank = np.zeros(shape, dtype=np.float32)
        outputs = self._session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: blank})
        self._check_outputs(outputs, path)
        self.anchors: np.ndarray = np.ascontiguousarray(outputs[2][0], dtype=np.float32)  # a constant of the graph
        for _ in range(max(0, warmup_runs - 1) + max(0, workers - 1)):
            self.forward(blank)

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.backend,
            "file": self.path.name,
            "workers": str(self.concurrency),
            "threads": str(self.threads),
            "spin_wait": "on" if self.spin_wait else "off",
            "providers": ",".join(name.replace("ExecutionProvider", "") for name in self._session.get_providers()),
        }

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cls_prob (classes + 1, anchors), loc_pred (anchors * 4,)) of one batch."""
        cls_prob, loc_pred = self._session.run(list(ONNX_OUTPUTS[:2]), {ONNX_INPUT: batch})
        return cls_prob[0], loc_pred[0]

    def rows(self, outputs: Any, min_score: Optional[float] = None) -> np.ndarray:
        cls_prob, loc_pred = outputs
        nms = self.info.nms
        return multibox_detection(
            cls_prob, loc_pred, self.anchors,
            threshold=nms.score_threshold, clip=nms.clip, variances=nms.variances,
            nms_threshold=nms.threshold, force_suppress=nms.force_suppress, nms_topk=nms.topk, min_score=min_score,
        )  # fmt: skip

    def _check_io(self, session: Any, path: Path) -> None:
        inputs = [node.name for node in session.get_inputs()]
        outputs = {node.name for node in session.get_outputs()}
        if inputs != [ONNX_INPUT] or not set(ONNX_OUTPUTS) <= outputs:
            raise ModelError(
                f"{path}: not an SSD export of this project (inputs {inputs}, outputs {sorted(outputs)}; expected"
                f" input {ONNX_INPUT!r} and outputs {', '.join(ONNX_OUTPUTS)})"
            )

    def _check_outputs(self, outputs: list[np.ndarray], path: Path) -> None:
        cls_prob, loc_pred, anchors = outputs
        classes = self.info.num_classes + 1
        if cls_prob.ndim != 3 or cls_prob.shape[1] != classes:
            raise ModelError(
                f"{path}: the graph predicts {cls_prob.shape[1] - 1 if cls_prob.ndim == 3 else '?'} class(es) but"
                f" model.json says num_classes {self.info.num_classes}: the files do not belong together"
            )
        count = cls_prob.shape[2]
        if loc_pred.shape != (1, count * 4) or anchors.shape != (1, count, 4):
            raise ModelError(
                f"{path}: outputs disagree on the anchor count (cls_prob {cls_prob.shape}, loc_pred {loc_pred.shape},"
                f" anchors {anchors.shape})"
            )


def _available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def without_unloadable_tensorrt(
    available: list[str], find_library: Callable[[str], Optional[str]] = ctypes.util.find_library
) -> list[str]:
    """onnxruntime-gpu lists TensorRT whether or not TensorRT's own libraries are installed; asking for it without
    them makes ONNX Runtime print a 15-line error block before it falls back to CUDA (seen on an H200 with
    onnxruntime-gpu 1.31 and no libnvinfer). No libnvinfer on the loader's path: leave TensorRT out, in one line."""
    if "TensorrtExecutionProvider" not in available or find_library("nvinfer") is not None:
        return available
    log.warning("model.context gpu: TensorRT's libnvinfer is not installed here: CUDA without TensorRT (JetPack and"
                " NVIDIA's TensorRT packages install it)")
    return [name for name in available if name != "TensorrtExecutionProvider"]


def providers_for(
    context: str,
    gpu_id: int,
    available: list[str],
    state_dir: Optional[Path] = None,
    find_library: Callable[[str], Optional[str]] = ctypes.util.find_library,
) -> list[Any]:
    """ONNX Runtime's provider list for ``model.context`` given the providers this onnxruntime build has.

    ``gpu``: TensorRT first (FP16, its engine cache in ``state_dir``, so a restart skips the minutes a Jetson takes
    to build an engine), then CUDA, then the CPU for whatever they leave. No GPU provider in this build: the CPU,
    with one clear line (a fleet's config can say gpu for every device).
    """
    if context != "gpu":
        return ["CPUExecutionProvider"]
    available = without_unloadable_tensorrt(available, find_library)
    chosen: list[Any] = []
    if "TensorrtExecutionProvider" in available:
        options: dict[str, Any] = {"device_id": gpu_id, "trt_fp16_enable": True}
        if state_dir is not None:
            cache = Path(state_dir) / "tensorrt-cache"
            cache.mkdir(parents=True, exist_ok=True)
            options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache))
        chosen.append(("TensorrtExecutionProvider", options))
    if "CUDAExecutionProvider" in available:
        chosen.append(("CUDAExecutionProvider", {"device_id": gpu_id}))
    if not chosen:
        log.warning(
            "model.context gpu: this onnxruntime has no GPU provider (only %s): running on the CPU (install"
            " onnxruntime-gpu, or JetPack's onnxruntime-gpu wheel on a Jetson: see the README)", ", ".join(available)
        )
    return [*chosen, "CPUExecutionProvider"]


def warn_if_fell_back(requested: list[Any], running: list[str]) -> None:
    """ONNX Runtime drops a GPU provider it cannot start (no driver, a missing libnvinfer) quietly: say so once."""
    wanted = [item[0] if isinstance(item, tuple) else item for item in requested]
    missing = [name for name in wanted if name not in running]
    if missing:
        log.warning("model.context gpu: %s could not start here; running on %s", ", ".join(missing),
                    ", ".join(running))  # fmt: skip


def _session(path: Path, threads: int, providers: list[Any], spin_wait: bool) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not spin_wait:
        # Measured on 2 cores with a busy process on one: spinning helpers cost the thread doing the work its core
        # (resnet-50/512 fp32 1.8 vs 2.1 fps, int8 3.8 vs 5.9); with the CPU free, spinning gains ~5% there.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initialisers are not an operator's business
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime's InvalidProtobuf, Fail, NoSuchFile...: say which file, in one line
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"{path}: cannot load as an ONNX model ({text})") from None


def create(info: ModelInfo, config: Any, precision: str, state_dir: Optional[Path] = None) -> OnnxRuntimeDetector:
    """The registry's factory (:mod:`edge_runtime.detectors.registry`)."""
    from edge_runtime.detectors import engine_settings

    return OnnxRuntimeDetector(info, precision=precision, spin_wait=config.spin_wait, state_dir=state_dir,
                               **engine_settings(config))  # fmt: skip
