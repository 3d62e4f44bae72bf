"""Every installed engine and precision on the same model, and the daemon's default pipeline, side by side in one run.

    python -m benchmarks.engines [--frames 20] [--rounds 3] [--demo-frames 100] [--skip-seed] [--skip-demo]

For the seed network (resnet-50/512 with random weights, as :mod:`benchmarks.edge_pipeline` builds it, with its
int8 copy) and for the demo model (trained; with an int8 copy calibrated on fresh synthetic frames), it runs
``edge-runtime bench``'s measurement (:func:`edge_runtime.bench_modes.run_bench`: each run a fresh process, rounds
interleaved with a rotating order) on every engine configuration this install and CPU can run (ONNX Runtime fp32 and
int8, OpenVINO fp32, bf16/fp16 where the CPU has them, int8) plus ``auto``, the daemon's default (it measures and
chooses): the bare forward and the daemon's pipeline, fps (median of rounds), capture-to-publish p50/p95, start-up
and peak RSS. OpenCV DNN's bare forward on the same model.onnx is measured in the same run after the rounds (it is
no engine of the daemon: it is the peer figure). For the demo model it adds, per configuration, the detections on
the model's sample frames against the fp32 reference (the gate of ``auto``) and the VOC07 mAP on the demo's held-out
set (300 frames, seed 2027), through ``cloud-training evaluate --backend ... --precision ...``.
The seed's weights are random: its detections are near-ties, so only its speed means something.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.edge_pipeline import demo_with_int8, synthetic_manifest, write_seed_model
from cloud_training.cli import main as cloud_main
from cloud_training.synth.video import render_video
from edge_runtime.bench import format_table
from edge_runtime.bench_modes import ENGINES, auto_choice_lines, available_engines, run_bench
from edge_runtime.config import ModelConfig
from edge_runtime.detectors import build_engine
from edge_runtime.detectors.choice import check_against_samples, read_samples
from edge_runtime.model import read_model_info
from edge_runtime.model_format import ONNX_INPUT, ONNX_OUTPUTS


def opencv_dnn_fps(model: Path, frames: int) -> float:
    """OpenCV DNN's bare forward on model.onnx (one thread pool, its default), frames per second."""
    import cv2

    info = read_model_info(model)
    net = cv2.dnn.readNetFromONNX(str(info.onnx_path))
    batch = np.zeros((1, 3, info.image_size, info.image_size), dtype=np.float32)
    net.setInput(batch, ONNX_INPUT)
    net.forward(list(ONNX_OUTPUTS[:2]))
    started = time.perf_counter()
    for _ in range(frames):
        net.setInput(batch, ONNX_INPUT)
        net.forward(list(ONNX_OUTPUTS[:2]))
    return frames / (time.perf_counter() - started)


def held_out_map(model: Path, manifest: Path, backend: str, precision: str) -> float:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
        assert cloud_main(["evaluate", str(model), str(manifest), "--backend", backend, "--precision", precision,
                           "--json"]) == 0  # fmt: skip
    return float(json.loads(buffer.getvalue())["mAP"])


def accuracy_table(model: Path, manifest: Path) -> list[str]:
    """Per configuration: the gate on the sample frames (against fp32) and the held-out mAP."""
    info = read_model_info(model)
    samples = read_samples(info)
    lines = [f"{'configuration':<18}{'sample frames vs fp32':<60}{'held-out mAP':>14}{'vs fp32':>9}"]
    base = None
    for name in available_engines(info):
        backend, precision = ENGINES[name]
        if backend in ("mxnet", "auto"):
            continue
        config = ModelConfig.model_validate({"path": str(model), "backend": backend, "precision": precision,
                                             "warmup_runs": 0})  # fmt: skip
        detector = build_engine(backend, precision, info, config)
        problem = check_against_samples(detector, samples, 0.02, 0.01) if samples else "no samples.npz"
        mean_ap = held_out_map(model, manifest, backend, precision)
        base = mean_ap if base is None else base
        lines.append(f"{name:<18}{('equal' if problem is None else problem)[:58]:<60}{mean_ap:>14.4f}"
                     f"{mean_ap - base:>+9.4f}")  # fmt: skip
    return lines


def measure(model: Path, video: Path, frames: int, args: argparse.Namespace) -> None:
    info = read_model_info(model)
    engines = [name for name in available_engines(info) if name != "mxnet"]
    print(f"measuring {model.name}: {', '.join(engines)}", file=sys.stderr, flush=True)
    result = run_bench(model, video, frames, args.rounds, args.warmup, 2, lambda text: print(
        f"  {text}", file=sys.stderr, flush=True), engines=engines, modes=("bare", "pipeline"))  # fmt: skip
    print(format_table(result).replace(str(video), video.name))
    for line in auto_choice_lines(model):
        print(line)
    try:
        print(f"OpenCV DNN bare forward (after the rounds, same model.onnx): {opencv_dnn_fps(model, frames):.2f} fps")
    except Exception as error:  # OpenCV's importer refuses some graphs: say so, it is a peer figure only
        print(f"OpenCV DNN: cannot run this model.onnx ({str(error).strip().splitlines()[-1][:100]})")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="frames per timed run, seed network")
    parser.add_argument("--demo-frames", type=int, default=100, help="frames per timed run, demo model")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up frames per run")
    parser.add_argument("--demo", type=Path, default=Path("models/demo"), help="the demo model folder")
    parser.add_argument("--skip-seed", action="store_true", help="only the demo model")
    parser.add_argument("--skip-demo", action="store_true", help="only the seed network")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engines-bench-") as tmp:
        root = Path(tmp)
        video = root / "scene-1080p.mp4"
        render_video(str(video), seed=3, frames=max(args.frames, args.demo_frames) + args.warmup, width=1920,
                     height=1080)  # fmt: skip
        calibration = synthetic_manifest(root / "calibration", 80, seed=11)
        if not args.skip_seed:
            seed = write_seed_model(root / "seed-resnet-50-512", str(calibration))
            measure(seed, video, args.frames, args)
            shutil.rmtree(seed, ignore_errors=True)
        if not args.skip_demo:
            demo = demo_with_int8(args.demo, root / "demo", calibration)
            held_out = synthetic_manifest(root / "heldout", 300, seed=2027)
            for precision in ("fp32", "int8"):  # what auto's int8 gate reads: evaluate --record, as a user would
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    assert cloud_main(["evaluate", str(demo), str(held_out), "--backend", "onnxruntime",
                                       "--precision", precision, "--record"]) == 0  # fmt: skip
            measure(demo, video, args.demo_frames, args)
            print("demo model: detections on its sample frames against ONNX Runtime fp32 (auto's gate: scores within"
                  " 0.02, boxes within 0.01) and held-out VOC07 mAP (300 frames, seed 2027)")  # fmt: skip
            for line in accuracy_table(demo, held_out):
                print(line)


if __name__ == "__main__":
    main()
