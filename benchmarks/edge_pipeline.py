"""Edge pipeline throughput: the daemon against the bare forward and the AWS sample's sequential loop.

    python -m benchmarks.edge_pipeline [--frames 20] [--rounds 3] [--workers 1,2] [--demo models/demo] [--skip-seed]

Prepares, in a temporary folder, the seed's network (the resnet-50 / 512 deploy graph SageMaker's SSD ships, with
random weights: speed does not depend on them) as a deploy folder, and a 1920x1080 mp4v video of the synthetic
scene; then runs the same measurement as ``edge-runtime bench`` (see :mod:`edge_runtime.bench`) for that model and
for the demo model, when it exists, once per pipeline layout in ``--workers`` (1: one forward at a time on every
core, the daemon's default; 2: two frames in the network at once, half the cores each). The model-making lives
here because ``edge_runtime`` never imports ``cloud_training``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import mxnet as mx

from cloud_training.deploy_folder import model_metadata, write_deploy_folder
from cloud_training.ssd import get_symbol
from cloud_training.synth.video import render_video
from edge_runtime.bench import format_table
from edge_runtime.bench_modes import run_bench


def write_seed_model(out_dir: Path, network: str = "resnet-50", image_shape: int = 512, seed: int = 0) -> Path:
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
    write_deploy_folder(out_dir, symbol, arg_params, aux_params, metadata)
    return out_dir


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
        "--workers", default="1,2", help="pipeline layouts to measure, as model.workers values (default 1,2)"
    )
    args = parser.parse_args()

    def progress(text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="edge-pipeline-bench-") as tmp:
        frames = max(args.frames, args.demo_frames) + args.warmup
        video = Path(tmp) / "scene-1080p.mp4"
        render_video(str(video), seed=3, frames=frames, width=1920, height=1080)
        runs: list[tuple[Path, int]] = []
        if not args.skip_seed:
            runs.append((write_seed_model(Path(tmp) / "seed-resnet-50-512"), args.frames))
        if (args.demo / "model.json").is_file() or (args.demo / "hyperparams.json").is_file():
            runs.append((args.demo, args.demo_frames))
        else:
            print(f"{args.demo}: no model there; the demo model is left out", file=sys.stderr)
        layouts = [int(value) for value in args.workers.split(",")]
        for model, count in runs:
            for workers in layouts:
                print(f"measuring {model.name} with {workers} worker(s) ...", file=sys.stderr, flush=True)
                result = run_bench(
                    model, video, count, args.rounds, args.warmup, args.queue_size, progress, workers=workers
                )
                print(format_table(result).replace(str(video), video.name))
                print(flush=True)


if __name__ == "__main__":
    main()
