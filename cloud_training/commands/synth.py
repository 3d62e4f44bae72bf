"""``cloud-training synth``: a synthetic labelling project (frames + Ground Truth manifests) and a video."""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from edge_runtime.argtypes import int_at_least, number_in

EXAMPLE = """\
example (2000 frames and a 10 s clip, then prepare them as the AWS sample's data):
  cloud-training synth --out data/synth --images 2000 --seed 1 --video data/synth.mp4 --frames 150
  cloud-training manifest prepare data/synth/manifests/ --discard data/synth/manifests/discard.txt \\
      --class-from color,object --class-map "blue box=0,yellow box=1" --out data/prepared

  --out and --video may be local paths or s3:// URIs. The same seed gives the same files.
"""


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480 (got {text!r})")
    width, height = int(match.group(1)), int(match.group(2))
    if width < 64 or height < 64:
        raise argparse.ArgumentTypeError(f"at least 64x64 (got {text})")
    return width, height


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="make synthetic storage-box frames with Ground Truth manifests, and a video",
        description=(
            "Render photo-like frames of blue and yellow storage boxes with the output manifests of one-class\n"
            "Ground Truth jobs (colour in per-line metadata, every box class_id 0), a discard list and a\n"
            "relabelling job, so manifest prepare has the sample's work to do; and an mp4 of moving boxes."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", metavar="DIR", help="output folder or s3:// prefix for frames and manifests")
    parser.add_argument("--images", type=int_at_least(0), default=1000, metavar="N", help="frames (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    parser.add_argument("--size", type=_size, default=(640, 480), metavar="WxH", help="frame size (default: 640x480)")
    parser.add_argument("--video", metavar="FILE", help="also write an mp4 of boxes moving through a scene")
    parser.add_argument("--frames", type=int_at_least(1), default=150, metavar="N", help="video frames (default: 150)")
    parser.add_argument("--fps", type=number_in(1.0, 240.0), default=15.0, help="video frame rate (default: 15)")
    parser.add_argument(
        "--tracks",
        metavar="FILE.json",
        help="make --video a clip where boxes enter and leave at known frames, and write their true tracks"
        " (first/last frame, box per frame) here: the ground truth for publish.mode events",
    )
    parser.add_argument(
        "--workers",
        type=int_at_least(1),
        default=min(4, os.cpu_count() or 1),
        metavar="N",
        help="rendering processes (default: CPU count, at most 4); the output does not depend on it",
    )
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out / replace --video")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cloud_training.manifest.table import format_table
    from cloud_training.synth.pipeline import SynthOptions, synthesize

    width, height = args.size
    summary = synthesize(
        SynthOptions(
            out=args.out,
            images=args.images,
            seed=args.seed,
            width=width,
            height=height,
            video=args.video,
            frames=args.frames,
            fps=args.fps,
            tracks=args.tracks,
            workers=args.workers,
            force=args.force,
        )
    )
    if "colors" in summary:
        rows = [[color, c["images"], c["empty"], c["boxes"]] for color, c in summary["colors"].items()]
        print(format_table(["frames", "images", "empty", "boxes"], rows))
        print(f"jobs: {summary['jobs']}; discarded {summary['discarded']}, relabelled {summary['relabelled']}")
        print(f"wrote {args.out}; next: {summary['prepare']}")
    if "video" in summary:
        video = summary["video"]
        print(f"wrote {video['path']}: {video['frames']} frames at {video['fps']} fps, {video['boxes']} boxes")
        if "tracks" in video:
            print(f"wrote {video['tracks']}: the true tracks of {video['objects']} objects")
    print(f"took {summary['seconds']} s")
    return 0
