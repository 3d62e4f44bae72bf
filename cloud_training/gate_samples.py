"""``samples.npz``: sample frames and ``model.onnx``'s fp32 detections on them, the accuracy gate's reference.

A device that measures its engines (``model.backend auto``) keeps a reduced-precision engine only when its detections
on these frames equal these (see ``edge_runtime.detectors.choice``). ``convert`` and ``export`` write it: from
``--calibration``'s images when given (the model's own domain), else from frames of the project's synthetic scene
(``cloud-training synth``'s renderer; the demo model's domain). The reference is ONNX Runtime fp32 on model.onnx, the
file every engine reads, through the device's own detector, so pre- and post-processing are the device's.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np

from edge_runtime.model_format import MEAN_RGB, SAMPLES_FILE, SAMPLES_FLOOR

SAMPLE_FRAMES = 8
SAMPLE_SEED = 4049  # not a seed the demo's training (11) or held-out set (2027) uses
MAX_ROWS = 50


def synthetic_batches(image_shape: int, frames: int = SAMPLE_FRAMES, seed: int = SAMPLE_SEED) -> list[np.ndarray]:
    """``frames`` 640x480 synthetic scenes (blue and yellow boxes alternately), prepared as the device prepares them."""
    from cloud_training.synth.scene import render
    from edge_runtime.detectors.base import preprocess

    batches = []
    for index in range(frames):
        rng = np.random.default_rng([seed, index])
        image, _ = render(rng, 640, 480, ("blue", "yellow")[index % 2], 1 + index % 2)
        batches.append(preprocess(image, image_shape, MEAN_RGB))
    return batches


def samples_file(folder: Path, batches: Optional[list[np.ndarray]] = None) -> bytes:
    """samples.npz's bytes for the deploy folder ``folder`` (which must hold model.onnx)."""
    from edge_runtime.config import ModelConfig
    from edge_runtime.detectors import create_detector
    from edge_runtime.model import read_model_info

    info = read_model_info(folder, verify_digests=False)
    detector = create_detector(ModelConfig(path=str(folder), backend="onnxruntime", warmup_runs=0), info)
    if batches is None:
        batches = synthetic_batches(info.image_size)
    mean = np.asarray(info.mean, dtype=np.float32).reshape(1, 1, 3, 1, 1)
    stacked = np.rint(np.stack(batches).astype(np.float32) + mean) - mean  # what the stored uint8 frames give back
    rows = np.full((len(batches), MAX_ROWS, 6), -1.0, dtype=np.float32)
    for index, batch in enumerate(stacked):
        table = detector.rows(detector.forward(batch), min_score=0.0)
        table = table[(table[:, 0] >= 0) & (table[:, 1] >= SAMPLES_FLOOR / 2)]
        table = table[np.argsort(-table[:, 1], kind="stable")][:MAX_ROWS]
        rows[index, : len(table)] = table
    out = io.BytesIO()
    frames = np.clip(np.rint(stacked + mean), 0, 255).astype(np.uint8)  # the resized RGB frames, 4x smaller
    np.savez_compressed(out, frames=frames[:, 0], rows=rows, floor=np.float32(SAMPLES_FLOOR))
    return out.getvalue()


def add_samples(folder: Path, batches: Optional[list[np.ndarray]] = None) -> int:
    """Write samples.npz into the deploy folder and model.json's digests; the count of reference detections."""
    from cloud_training.deploy_folder import add_files_in_place

    data = samples_file(folder, batches)
    add_files_in_place(folder, {SAMPLES_FILE: data}, {})
    with np.load(io.BytesIO(data)) as loaded:
        rows = loaded["rows"]
        return int(((rows[:, :, 0] >= 0) & (rows[:, :, 1] >= SAMPLES_FLOOR)).sum())


def sample_batches(calibration: Optional[str], image_shape: int) -> Optional[list[np.ndarray]]:
    """--calibration's images when given (spread over the manifest), else None: the synthetic scenes."""
    if calibration is None:
        return None
    from cloud_training.onnx_files import QuantizeRequest, calibration_batches

    return calibration_batches(QuantizeRequest(calibration, SAMPLE_FRAMES), image_shape)
