"""The ONNX files of a deploy folder: ``model.onnx`` from the deploy graph, ``model.int8.onnx`` when asked for.

Shared by ``convert`` (a training artifact in) and ``export`` (an existing deploy folder or the AWS sample's plain
pair in), so both write the same bytes and the same model.json entries.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from cloud_training.errors import ArtifactError, CloudTrainingError
from cloud_training.onnx_export import export_onnx
from edge_runtime.model_format import MEAN_RGB, ONNX_FILE, ONNX_INPUT, ONNX_INT8_FILE

log = logging.getLogger(__name__)


class QuantizationError(CloudTrainingError):
    """Static quantisation could not run: no calibration images, or ONNX Runtime's quantiser failed."""


@dataclass(frozen=True)
class QuantizeRequest:
    manifest: str
    images: int


def quantize_request(args: argparse.Namespace) -> Optional[QuantizeRequest]:
    """``--quantize int8 --calibration MANIFEST`` as a request, refused in one line before any work."""
    if args.quantize is None:
        if args.calibration is not None:
            raise QuantizationError("--calibration is only used with --quantize int8")
        return None
    if args.calibration is None:
        raise QuantizationError("--quantize int8 needs --calibration MANIFEST: the images to calibrate activations on")
    if args.calibration_images < 1:
        raise QuantizationError(f"--calibration-images must be at least 1 (got {args.calibration_images})")
    return QuantizeRequest(args.calibration, args.calibration_images)


def onnx_files(
    symbol_json: str,
    arg_params: Mapping[str, Any],
    aux_params: Mapping[str, Any],
    image_shape: int,
    where: str,
    quantize: Optional[QuantizeRequest] = None,
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """(file name -> bytes, model.json entries) for the ONNX export of a deploy graph, and its INT8 copy."""
    export = export_onnx(symbol_json, arg_params, aux_params, image_shape, where)
    files = {ONNX_FILE: export.model_bytes}
    summary = export.summary()
    if quantize is not None:
        files[ONNX_INT8_FILE], summary["int8"] = quantize_int8(export.model_bytes, image_shape, quantize)
    return files, {"onnx": summary}


def calibration_batches(request: QuantizeRequest, image_shape: int) -> list[np.ndarray]:
    """Up to ``request.images`` images of the manifest, prepared exactly as the device prepares a frame."""
    from cloud_training.manifest import io
    from edge_runtime.detectors.base import preprocess

    records, _, _ = io.read_records([request.manifest], None, skip_invalid=True)
    if not records:
        raise QuantizationError(f"{request.manifest}: no images to calibrate on")
    step = max(1, len(records) // request.images)  # spread over the manifest, not its first job only
    chosen = records[::step][: request.images]
    return [preprocess(io.load_image(record), image_shape, MEAN_RGB) for record in chosen]


def quantize_int8(model_bytes: bytes, image_shape: int, request: QuantizeRequest) -> tuple[bytes, dict[str, Any]]:
    """Static INT8 quantisation with ONNX Runtime's quantiser: QDQ, weights per channel, activations calibrated
    by min/max on the manifest's images. Convolutions and the residual additions are quantised (measured on
    resnet-50/512 here: Conv alone 7.7 fps, Conv + Add 8.5, every operator 8.0, as the extra quantise/dequantise
    pairs cost more than they save); the softmax, the reshapes and the concatenations of the heads stay float, so
    the probabilities and offsets MultiBoxDetection reads keep their precision."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = calibration_batches(request, image_shape)

    class Reader(CalibrationDataReader):  # onnxruntime ships no types: an Any base
        def __init__(self) -> None:
            self._items = iter(batches)

        def get_next(self) -> Optional[dict[str, np.ndarray]]:
            batch = next(self._items, None)
            return None if batch is None else {ONNX_INPUT: batch}

    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp, _quiet_root_logger():
        source, prepared, target = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(model_bytes)
        try:
            # ONNX Runtime's recommended step first: shape inference and graph optimisation (BatchNorm folded into
            # the convolutions), so the quantiser sees the graph the runtime will run
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared), str(target), Reader(),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                op_types_to_quantize=["Conv", "Add"], calibrate_method=CalibrationMethod.MinMax,
            )  # fmt: skip
        except (ValueError, RuntimeError) as error:
            raise QuantizationError(f"ONNX Runtime's quantiser failed ({error})") from None
        data = target.read_bytes()
    summary = {
        "file": ONNX_INT8_FILE,
        "method": "static, QDQ, Conv and Add (BatchNorm folded), weights int8 per channel, activations uint8 (min/max)",
        "calibration": {"manifest": request.manifest, "images": len(batches)},
    }
    return data, summary


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantiser logs advice through the root logger; keep it off the command's output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def require_mxnet_pair(folder: Path) -> None:
    from edge_runtime.model_format import PARAMS_FILE, SYMBOL_FILE

    for name in (SYMBOL_FILE, PARAMS_FILE):
        if not (folder / name).is_file():
            raise ArtifactError(f"{folder / name}: missing; the ONNX export is made from the MXNet deploy graph")
