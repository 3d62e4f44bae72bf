"""Detectors: the seam (:mod:`.base`), its backends, and the registry every caller builds a detector through.

``model.backend`` picks one: ``onnxruntime`` (``model.onnx``; what devices install), ``mxnet`` (the deploy graph;
the cloud side's reference, an optional extra on a device) or ``auto``: ONNX Runtime when the folder has
``model.onnx`` and onnxruntime imports, else MXNet. The daemon, ``detect``, ``evaluate`` and ``bench`` all call
:func:`create_detector`; a new backend is one module and one line in :data:`BACKENDS`.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

from edge_runtime.detectors.base import Detection, DetectionResult, Detector, read_image
from edge_runtime.errors import ModelError
from edge_runtime.model import ModelInfo, read_model_info


def _settings(config: Any) -> dict[str, Any]:
    """The constructor arguments every backend takes, from a ``model`` configuration."""
    return {
        "score_threshold": config.score_threshold,
        "class_thresholds": config.class_thresholds,
        "top_k": config.top_k,
        "context": config.context,
        "gpu_id": config.gpu_id,
        "warmup_runs": config.warmup_runs,
        "workers": config.workers,
        "threads": config.threads,
    }


def _onnxruntime(info: ModelInfo, config: Any) -> Detector:
    from edge_runtime.detectors.onnxruntime import OnnxRuntimeDetector

    return OnnxRuntimeDetector(info, precision=config.precision, spin_wait=config.spin_wait, **_settings(config))


def _mxnet(info: ModelInfo, config: Any) -> Detector:
    from edge_runtime.detectors.mxnet import MXNetDetector

    if config.precision != "fp32":
        raise ModelError(f"model.precision: {config.precision} runs on the onnxruntime backend only (got mxnet)")
    return MXNetDetector(info, **_settings(config))


# backend name -> (the Python package it imports, the extra that installs it, factory)
BACKENDS: dict[str, tuple[str, str, Callable[[ModelInfo, Any], Detector]]] = {
    "onnxruntime": ("onnxruntime", "edge", _onnxruntime),
    "mxnet": ("mxnet", "mxnet", _mxnet),
}
BACKEND_CHOICES = ("auto", *BACKENDS)


def installed(backend: str) -> bool:
    return importlib.util.find_spec(BACKENDS[backend][0]) is not None


def resolve_backend(requested: str, info: ModelInfo, precision: str = "fp32") -> str:
    """The backend ``requested`` means for this model on this install; ModelError in one line when none can run."""
    if requested not in BACKEND_CHOICES:
        raise ModelError(f"model.backend: must be one of {', '.join(BACKEND_CHOICES)} (got {requested!r})")
    if requested == "auto" and precision == "int8":
        requested = "onnxruntime"  # only ONNX Runtime runs int8; it names model.int8.onnx if the folder lacks it
    if requested == "auto":
        has_onnx = info.onnx_int8_path is not None if precision == "int8" else info.onnx_path is not None
        if has_onnx and installed("onnxruntime"):
            return "onnxruntime"
        if info.has_mxnet and installed("mxnet") and precision == "fp32":
            return "mxnet"
        if has_onnx:
            return "onnxruntime"  # the error below says what to install
        if info.has_mxnet:
            raise ModelError(
                f"{info.folder}: has no model.onnx, and MXNet is not installed to run its MXNet graph: add model.onnx"
                f" with `cloud-training export {info.folder}`, or install the mxnet extra"
            )
        raise ModelError(f"{info.folder}: no model file any backend can run")
    if not installed(requested):
        package, extra, _ = BACKENDS[requested]
        raise ModelError(
            f"model.backend: {requested} is not installed here (no {package} module; pip install"
            f" \"ssd-greengrass[{extra}]\")"
        )
    return requested


def create_detector(config: Any, info: ModelInfo | None = None) -> Detector:
    """The detector a :class:`~edge_runtime.config.ModelConfig` asks for (``path`` must be set unless ``info`` is)."""
    if info is None:
        info = read_model_info(config.path, verify_digests=config.verify_digests)
    backend = resolve_backend(config.backend, info, config.precision)
    return BACKENDS[backend][2](info, config)


__all__ = [
    "BACKENDS",
    "BACKEND_CHOICES",
    "Detection",
    "DetectionResult",
    "Detector",
    "create_detector",
    "read_image",
    "resolve_backend",
]
