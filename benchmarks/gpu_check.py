"""One prepared check of ``model.context gpu`` where an NVIDIA GPU and onnxruntime-gpu are at hand.

The demo model through the daemon's own detector, once with ``context cpu`` and once with ``context gpu``, side by
side in one run: which providers ONNX Runtime really took (TensorRT is tried first, so a machine without TensorRT's
libraries shows the fallback line), the accuracy gate ``auto`` uses (every sample frame's detections against the
fp32 reference stored by ``convert``: same class rows, scores within 0.02, boxes within 0.01), start-up time, and
forwards per second with the engine's concurrency. Without a GPU provider the gpu row says it ran on the CPU.

    python -m benchmarks.gpu_check --model models/demo --seconds 5
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from edge_runtime.config import ModelConfig
from edge_runtime.detectors import create_detector
from edge_runtime.detectors.choice import check_against_samples, read_samples, timed_fps


def check(model: str, context: str, seconds: float, state_dir: Path) -> dict[str, object]:
    started = time.perf_counter()
    config = ModelConfig.model_validate({"path": model, "backend": "onnxruntime", "context": context})
    detector = create_detector(config, state_dir=state_dir)
    startup_s = time.perf_counter() - started
    samples = read_samples(detector.info)
    if samples is None:
        raise SystemExit(f"{model}: no samples.npz (cloud-training export {model} --force writes it)")
    problem = check_against_samples(detector, samples, score_tolerance=0.02, box_tolerance=0.01)
    fps = timed_fps(detector, samples[0][0], seconds)
    return {"context": context, "engine": detector.describe(), "startup_s": round(startup_s, 2),
            "gate": problem or "pass", "forwards_per_s": round(fps, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/demo")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing budget per context")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as state:
        rows = [check(args.model, context, args.seconds, Path(state)) for context in ("cpu", "gpu")]
    for row in rows:
        print(json.dumps(row))
    cpu, gpu = (float(row["forwards_per_s"]) for row in rows)  # type: ignore[arg-type]
    print(f"gpu / cpu forwards per second: {gpu / max(cpu, 1e-9):.2f}x (same run, same model, batch 1)")


if __name__ == "__main__":
    main()
