"""Edge pipeline throughput on every engine: MXNet, ONNX Runtime fp32 and int8, side by side in one run.

    python -m benchmarks.edge_pipeline [--frames 20] [--rounds 3] [--workers 1,2] [--threads 0] [--load 0]
                                       [--modes bare,pipeline,sequential] [--demo models/demo] [--skip-seed]

Prepares, in a temporary folder, the seed's network (the resnet-50 / 512 deploy graph SageMaker's SSD ships, with
random weights: speed does not depend on them) as a deploy folder with model.onnx and model.int8.onnx (calibrated on
synthetic frames), a copy of the demo model with its int8 file, and a 1920x1080 mp4v video of the synthetic scene;
then runs the same measurement as ``edge-runtime bench`` (see :mod:`edge_runtime.bench`) for each model, once per
pipeline layout in ``--workers``. For the demo model it also evaluates fp32 and int8 on its held-out set (seed 2027,
as models/demo/reproduce.sh makes it), so the int8 speed-up is printed beside its mAP drop. ``--load N`` runs N
busy-loop processes beside every timed run. The model-making lives here because ``edge_runtime`` never imports
``cloud_training``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import mxnet as mx

from cloud_training.cli import main as cloud_main
from cloud_training.deploy_folder import model_metadata, write_deploy_folder
from cloud_training.onnx_files import QuantizeRequest, onnx_files
from cloud_training.ssd import get_symbol
from cloud_training.synth.video import render_video
from edge_runtime.bench import format_table
from edge_runtime.bench_modes import run_bench


def write_seed_model(out_dir: Path, calibration: str, network: str = "resnet-50", image_shape: int = 512,
                     seed: int = 0) -> Path:
    """The deploy graph of ``network`` with Xavier weights and unit BatchNorm statistics, as ``convert`` lays it out."""
    symbol = get_symbol(network, 2, image_shape)
    arg_shapes, out_shapes, aux_shapes = symbol.infer_shape(data=(1, 3, image_shape, image_shape))
    mx.random.seed(seed)
    init = mx.init.Xavier()
    arg_params = {}
    for name, shape in zip(symbol.list_arguments(), arg_shapes):
        if name != "data":
            arg_params[name] = mx.nd.zeros(shape)
            init(mx.init.InitDesc(name), arg_params[name])
    aux_params = {
        name: (mx.nd.ones(shape) if name.endswith("_var") else mx.nd.zeros(shape))
        for name, shape in zip(symbol.list_auxiliary_states(), aux_shapes)
    }
    metadata = model_metadata(
        name=f"seed-{network}-{image_shape}-random",
        version="0.0.0",
        network=network,
        image_shape=image_shape,
        num_classes=2,
        num_anchors=int(out_shapes[0][1]),
        class_names=["blue box", "yellow box"],
        nms={"threshold": 0.45, "topk": 400, "force_suppress": True, "variances": [0.1, 0.1, 0.2, 0.2]},
        source={"artifact": "random weights (benchmarks/edge_pipeline.py)", "sha256": None, "hyperparameters": {}},
    )
    files, entries = onnx_files(symbol.tojson(), arg_params, aux_params, image_shape, network,
                                QuantizeRequest(calibration, 32))  # fmt: skip
    metadata.update(entries)
    write_deploy_folder(out_dir, symbol, arg_params, aux_params, metadata, extra_files=files)
    return out_dir


def synthetic_manifest(out: Path, images: int, seed: int) -> Path:
    """A Ground Truth manifest of ``images`` fresh synthetic frames, prepared as models/demo/reproduce.sh does."""
    quiet = ["synth", "--out", str(out / "synth"), "--images", str(images), "--seed", str(seed)]
    assert cloud_main(quiet) == 0
    prepared = out / "prepared"
    assert cloud_main(["manifest", "prepare", str(out / "synth" / "manifests"), "--discard",
                       str(out / "synth" / "manifests" / "discard.txt"), "--class-from", "color,object",
                       "--class-map", "blue box=0,yellow box=1", "--validation-fraction", "0.5", "--seed", "0",
                       "--out", str(prepared)]) == 0  # fmt: skip
    every = prepared / "all.manifest"
    every.write_text((prepared / "train.manifest").read_text() + (prepared / "validation.manifest").read_text())
    return every


def demo_with_int8(demo: Path, out: Path, calibration: Path) -> Path:
    shutil.copytree(demo, out)
    assert cloud_main(["export", str(out), "--force", "--quantize", "int8", "--calibration", str(calibration)]) == 0
    return out


def evaluate(model: Path, manifest: Path, precision: str) -> float:
    """The held-out mAP of ``model`` at ``precision`` (cloud-training evaluate --json, on ONNX Runtime)."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cloud_main(["evaluate", str(model), str(manifest), "--backend", "onnxruntime", "--precision",
                           precision, "--json"]) == 0  # fmt: skip
    return float(json.loads(buffer.getvalue())["mAP"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="frames per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (a), (b), (c)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up frames per mode")
    parser.add_argument("--queue-size", type=int, default=2, help="the pipeline's queue (the daemon's default: 2)")
    parser.add_argument("--demo", type=Path, default=Path("models/demo"), help="the demo model folder")
    parser.add_argument("--demo-frames", type=int, default=150, help="frames per timed run for the demo model")
    parser.add_argument("--skip-seed", action="store_true", help="only the demo model")
    parser.add_argument(
        "--workers", default="1", help="pipeline layouts to measure, as model.workers values (default 1)"
    )
    parser.add_argument("--threads", type=int, default=0, help="threads per forward, as model.threads (0: auto)")
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes beside every timed run")
    parser.add_argument("--modes", default="bare,pipeline,sequential", help="which modes to run")
    parser.add_argument("--backends", default=None, help="engines (default: all three)")
    args = parser.parse_args()

    def progress(text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="edge-pipeline-bench-") as tmp:
        root = Path(tmp)
        frames = max(args.frames, args.demo_frames) + args.warmup
        video = root / "scene-1080p.mp4"
        render_video(str(video), seed=3, frames=frames, width=1920, height=1080)
        calibration = synthetic_manifest(root / "calibration", 80, seed=11)  # the demo's training seed, fresh frames
        runs: list[tuple[Path, int]] = []
        if not args.skip_seed:
            runs.append((write_seed_model(root / "seed-resnet-50-512", str(calibration)), args.frames))
        if (args.demo / "model.json").is_file():
            demo = demo_with_int8(args.demo, root / "demo", calibration)
            held_out = synthetic_manifest(root / "heldout", 300, seed=2027)
            fp32, int8 = evaluate(demo, held_out, "fp32"), evaluate(demo, held_out, "int8")
            print(f"demo model, held-out VOC07 mAP (300 frames, seed 2027): fp32 {fp32:.4f}, int8 {int8:.4f},"
                  f" drop {fp32 - int8:+.4f}", flush=True)  # fmt: skip
            runs.append((demo, args.demo_frames))
        else:
            print(f"{args.demo}: no model there; the demo model is left out", file=sys.stderr)
        layouts = [int(value) for value in args.workers.split(",")]
        engines = args.backends.split(",") if args.backends else None
        for model, count in runs:
            for workers in layouts:
                print(f"measuring {model.name} with {workers} worker(s) ...", file=sys.stderr, flush=True)
                result = run_bench(
                    model, video, count, args.rounds, args.warmup, args.queue_size, progress, workers=workers,
                    threads=args.threads, engines=engines, modes=args.modes.split(","), load=args.load,
                )  # fmt: skip
                print(format_table(result).replace(str(video), video.name))
                print(flush=True)

if __name__ == "__main__":
    main()
