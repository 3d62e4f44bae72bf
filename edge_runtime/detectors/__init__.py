"""Detectors: the seam (:mod:`.base`), its engines, and the registry every caller builds a detector through.

The engines and their names live in :mod:`.registry` (``onnxruntime``, ``openvino``, ``mxnet``); ``model.backend``
names one, or ``auto``: measure every installed engine and precision on this model on this device, keep those whose
detections equal the fp32 reference (:mod:`.choice`), and run the fastest. The daemon, ``detect``, ``evaluate`` and
``bench`` all call :func:`create_detector`; a new engine is one module and one :func:`~.registry.register` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from edge_runtime.detectors.base import Detection, DetectionResult, Detector, read_image
from edge_runtime.detectors.registry import ENGINES, PRECISIONS, EngineSpec, engine_choices
from edge_runtime.errors import ModelError
from edge_runtime.model import ModelInfo, read_model_info
from edge_runtime.model_format import ONNX_FILE

BACKEND_CHOICES = engine_choices()


def engine_settings(config: Any) -> dict[str, Any]:
    """The constructor arguments every engine takes, from a ``model`` configuration."""
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


def installed(backend: str) -> bool:
    return ENGINES[backend].installed()


def engine(name: str) -> EngineSpec:
    """The registered, installed engine ``name``; ModelError in one line otherwise (the CLI exits 2)."""
    if name not in ENGINES:
        raise ModelError(f"model.backend: must be one of {', '.join(engine_choices())} (got {name!r})")
    spec = ENGINES[name]
    if not spec.installed():
        raise ModelError(
            f"model.backend: {name} is not installed here (no {spec.package} module; pip install"
            f" \"ssd-greengrass[{spec.extra}]\")"
        )
    return spec


def resolve_backend(requested: str, info: ModelInfo, precision: str = "fp32") -> str:
    """The engine ``requested`` means without measuring: a named one as it is (checked), or for ``auto`` ONNX Runtime
    when the folder has its file, else MXNet. (The daemon's ``auto`` measures instead: :func:`create_detector`.)"""
    if requested not in engine_choices():
        raise ModelError(f"model.backend: must be one of {', '.join(engine_choices())} (got {requested!r})")
    if requested == "auto" and precision != "fp32":
        # int8: ONNX Runtime names model.int8.onnx if the folder lacks it; bf16/fp16: only OpenVINO runs them
        requested = "onnxruntime" if precision == "int8" else "openvino"
    if requested != "auto":
        engine(requested)
        return requested
    has_onnx = info.onnx_int8_path is not None if precision == "int8" else info.onnx_path is not None
    if has_onnx and installed("onnxruntime"):
        return "onnxruntime"
    if info.has_mxnet and installed("mxnet") and precision == "fp32":
        return "mxnet"
    if has_onnx:
        return engine("onnxruntime").name  # raises: says what to install
    if info.has_mxnet:
        raise ModelError(
            f"{info.folder}: has no model.onnx, and MXNet is not installed to run its MXNet graph: add model.onnx"
            f" with `cloud-training export {info.folder}`, or install the mxnet extra"
        )
    raise ModelError(f"{info.folder}: no model file any backend can run")


def build_engine(name: str, precision: str, info: ModelInfo, config: Any, state_dir: Optional[Path] = None) -> Detector:
    """One engine at one precision, as ``config`` sets it up; ModelError when it cannot run that precision."""
    spec = engine(name)
    if precision not in spec.precisions:
        raise ModelError(
            f"model.precision: {name} runs {', '.join(spec.precisions)} (got {precision}); with model.backend auto"
            " every engine that can is measured"
        )
    detector: Detector = spec.build()(info, config, precision, state_dir)
    return detector


def create_detector(config: Any, info: ModelInfo | None = None, state_dir: Optional[Path] = None) -> Detector:
    """The detector a :class:`~edge_runtime.config.ModelConfig` asks for (``path`` must be set unless ``info`` is).

    ``state_dir`` holds what outlives a run: compiled-model caches and ``auto``'s measured choice. Without it,
    ``auto`` picks as :func:`resolve_backend` does (no measurement: ``detect`` and ``evaluate`` run once).
    """
    if info is None:
        info = read_model_info(config.path, verify_digests=config.verify_digests)
    # auto measures the device engines, which all run model.onnx: a folder of MXNet's files alone (the AWS sample's
    # pair) resolves as detect does, to MXNet where it is installed
    measurable = (info.folder / ONNX_FILE).is_file()
    if config.backend == "auto" and state_dir is not None and config.auto.measure and measurable:
        from edge_runtime.detectors.choice import choose_engine

        return choose_engine(info, config, state_dir)
    backend = resolve_backend(config.backend, info, config.precision)
    if backend == "onnxruntime" and config.precision in ("bf16", "fp16"):
        raise ModelError(f"model.precision: {config.precision} runs on openvino, not onnxruntime (model.backend)")
    return build_engine(backend, config.precision, info, config, state_dir)


__all__ = [
    "BACKEND_CHOICES",
    "ENGINES",
    "PRECISIONS",
    "Detection",
    "DetectionResult",
    "Detector",
    "build_engine",
    "create_detector",
    "read_image",
    "resolve_backend",
]
