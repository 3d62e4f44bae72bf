"""The engine registry: the single source of engine names, their packages, extras and precisions.

Config choices (``model.backend``), the CLI's ``--backend``, ``bench --engines``, ``auto``'s measurement and
``cloud-training evaluate`` all read :data:`ENGINES`. A new engine is one module with a factory and one
:func:`register` call below (Frigate's ``detector_types`` builds its names the same way). This module imports no
engine, so the configuration can use it on any install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

PRECISIONS = ("fp32", "bf16", "fp16", "int8")  # model.precision; int8 always means model.int8.onnx


@dataclass(frozen=True)
class EngineSpec:
    """One engine: its ``model.backend`` name, the module it imports, the extra that installs it, the precisions it
    can run, and the factory (``module:function``, imported only when a detector is built)."""

    name: str
    package: str
    distribution: str
    extra: str
    precisions: tuple[str, ...]
    factory: str
    help: str

    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def version(self) -> str:
        """The installed distribution's version (part of the ``auto`` cache key); ``-`` when not installed."""
        for distribution in (self.distribution, f"{self.distribution}-gpu"):  # onnxruntime-gpu on CUDA/Jetson
            try:
                return importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue
        return "-"

    def build(self) -> Callable[..., Any]:
        module, function = self.factory.split(":")
        return getattr(importlib.import_module(module), function)


ENGINES: dict[str, EngineSpec] = {}


def register(spec: EngineSpec) -> None:
    if spec.name in ENGINES or spec.name == "auto":
        raise ValueError(f"engine {spec.name!r} is registered twice")
    ENGINES[spec.name] = spec


def engine_choices() -> tuple[str, ...]:
    """``model.backend``'s values: ``auto`` and every registered engine."""
    return ("auto", *ENGINES)


def engine_help() -> str:
    return "; ".join(f"{spec.name}: {spec.help}" for spec in ENGINES.values())


register(EngineSpec(
    name="onnxruntime", package="onnxruntime", distribution="onnxruntime", extra="edge",
    precisions=("fp32", "int8"), factory="edge_runtime.detectors.onnxruntime:create",
    help="model.onnx / model.int8.onnx with ONNX Runtime (the device install; CUDA/TensorRT with model.context gpu)",
))  # fmt: skip
register(EngineSpec(
    name="openvino", package="openvino", distribution="openvino", extra="openvino",
    precisions=("fp32", "bf16", "fp16", "int8"), factory="edge_runtime.detectors.openvino:create",
    help="model.onnx with Intel OpenVINO (bf16/fp16 where the CPU has them; int8 through model.int8.onnx)",
))  # fmt: skip
register(EngineSpec(
    name="mxnet", package="mxnet", distribution="mxnet", extra="mxnet",
    precisions=("fp32",), factory="edge_runtime.detectors.mxnet:create",
    help="the MXNet deploy graph (the cloud side's reference; the mxnet extra)",
))  # fmt: skip
