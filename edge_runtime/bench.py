"""``edge-runtime bench``: the daemon's pipeline against the bare forward and the AWS sample's sequential loop, on
each engine configuration side by side (``--engines``: ONNX Runtime, OpenVINO, MXNet at the precisions this
install and CPU can run).

Three modes per engine, on the same model and video, interleaved round by round (the order rotates each round),
so a machine that is busier in one minute than the next moves all runs alike and the ratios stay fair. Each timed
run is a fresh process that loads the model, warms up, then runs ``--frames`` frames (see
:mod:`edge_runtime.bench_modes` for why):

(a) ``bare``: the detector's forward (the network alone) on one preprocessed batch at the model's input size, in a
    loop (no decode, resize or publish), with the pipeline's ``--workers`` loops side by side: the ceiling for (b).
(b) ``pipeline``: the real daemon pipeline (:class:`~edge_runtime.pipeline.Pipeline`): the capture thread decodes
    the video into the queue while ``--workers`` inference threads preprocess, detect, and publish in order.
(c) ``sequential``: the loop of the AWS sample's Greengrass function: read a frame, preprocess as the sample does
    (colour conversion of the full frame, resize, axis swaps), forward, build and publish the message, one after
    the other in one thread, with one executor using every core (its best layout, whatever ``--workers`` says).

With one worker, (b) can lead (c) only by the decode it overlaps, which costs little next to a large network's
forward; and where the forward already keeps every core busy, overlapping steals from it. With two workers of
half the threads each, two frames are in the network at once: on a CPU, where one forward does not scale
perfectly over the cores, that raises the throughput (each frame takes longer: see the latency columns).

(b) and (c) publish to a JSON-lines file in a temporary folder (the real encoding and write), wrapped so each
publish time is recorded; capture-to-publish latency is that time minus the message's ``captured_at`` (which
has millisecond resolution). Peak RSS is per run: Linux's VmHWM is reset (``/proc/self/clear_refs``) after the
warm-up; where it cannot be reset, the figure is the run's whole peak, loading included, and the table says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from edge_runtime.argtypes import int_at_least
from edge_runtime.help_text import plain

POSITIVE = int_at_least(1)

if TYPE_CHECKING:
    from edge_runtime.bench_modes import BenchResult

MODES = ("bare", "pipeline", "sequential")
TITLES = {"bare": "(a) bare forward", "pipeline": "(b) daemon pipeline", "sequential": "(c) sequential loop"}


def format_table(result: BenchResult) -> str:
    """The figures as a small table: per engine and mode the median fps with each round's, latency percentiles,
    peak RSS and start-up time; then the ratios and the achieved GFLOP/s against the machine's sgemm."""
    data = result.to_dict()
    width, height = result.frame_size
    load = f"; {result.load_processes} busy process(es) alongside" if result.load_processes else ""
    lines = [
        f"model {result.model}, input {result.input_size}x{result.input_size}; video {result.video} "
        f"({width}x{height}); {result.frames} frames per run, {result.rounds} interleaved rounds; "
        f"queue_size {result.queue_size}{load}",
        f"{'engine':<18}{'mode':<22}{'layout':<24}{'fps':>8}  {'rounds':<26}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'RSS MB':>8}{'start s':>8}",
    ]
    for key, summary in data["modes"].items():
        mode, engine = key.split("@")
        rounds = ", ".join(f"{value:.2f}" for value in summary["fps_rounds"])
        p50, p95 = summary["latency_ms_p50"], summary["latency_ms_p95"]
        rss, startup = summary["peak_rss_bytes"], summary["startup_s"]
        lines.append(
            f"{engine:<18}{TITLES[mode]:<22}{summary['layout']:<24}{summary['fps']:>8.2f}  {rounds:<26}"
            f"{_ms(p50):>8}{_ms(p95):>8}{(f'{rss / 1e6:.0f}' if rss else '-'):>8}"
            f"{(f'{startup:.2f}' if startup is not None else '-'):>8}"
        )
    for name, ratio in data["ratios"].items():
        spread = ", ".join(f"{value:.3f}" for value in ratio["rounds"])
        lines.append(f"ratio {name:<40}{ratio['median']:>8.3f}  rounds: {spread}")
    if result.gflop_per_frame is not None:
        sgemm = result.sgemm_gflops
        parts = []
        for engine, achieved in data["achieved_gflops"].items():
            if achieved is not None:
                share = f" ({achieved / sgemm:.0%} of sgemm)" if sgemm else ""
                parts.append(f"{engine} {achieved:.1f}{share}")
        lines.append(f"network {result.gflop_per_frame:.2f} GFLOP per frame; bare forward achieves GFLOP/s: "
                     + ", ".join(parts) + (f"; this machine's sgemm: {sgemm:.1f} GFLOP/s" if sgemm else ""))
    lines.append(
        "latency: capture to publish (JSON-lines file publisher); start: process start to a warmed-up detector;"
        " peak RSS: "
        + ("VmHWM reset after each warm-up" if result.rss_scope == "per mode" else "whole run (could not reset)")
    )
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def engine_names() -> tuple[str, ...]:
    """bench's engine configurations, from the engine registry: ``onnxruntime``, ``onnxruntime-int8``,
    ``openvino-bf16``... (the same as :data:`edge_runtime.bench_modes.ENGINES`)."""
    from edge_runtime.detectors.registry import ENGINES

    return (*(name if precision == "fp32" else f"{name}-{precision}"
              for name, spec in ENGINES.items() for precision in spec.precisions), "auto")  # fmt: skip


def _engines(text: str) -> tuple[str, ...]:
    if text.strip() == "all":
        return ("all",)  # every configuration this model, install and CPU can run
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in engine_names()]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown engine {', '.join(unknown) or text!r} (choose from all,"
                                         f" {', '.join(engine_names())})")  # fmt: skip
    return names


def _modes(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names or any(name not in MODES for name in names):
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)} (got {text!r})")
    return names


def register(subparsers: Any) -> None:
    """Add ``bench`` to the ``edge-runtime`` sub-commands."""
    bench = subparsers.add_parser(
        "bench",
        help="measure the pipeline against the bare forward and a sequential loop",
        description=plain(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--model", metavar="DIR", required=True, help="model folder")
    bench.add_argument("--video", metavar="FILE", required=True, help="video file (for example 1920x1080 mp4)")
    bench.add_argument("--frames", type=POSITIVE, default=30, metavar="N", help="frames per timed run (default 30)")
    bench.add_argument("--rounds", type=POSITIVE, default=3, metavar="R", help="interleaved rounds (default 3)")
    bench.add_argument("--warmup", type=POSITIVE, default=3, metavar="N", help="warm-up frames per mode (default 3)")
    bench.add_argument("--queue-size", type=POSITIVE, default=2, metavar="N", help="pipeline queue (default 2)")
    bench.add_argument(
        "--workers", type=POSITIVE, default=1, metavar="N", help="pipeline inference threads, as model.workers (1)"
    )
    bench.add_argument(
        "--threads", type=int_at_least(0), default=0, metavar="N", help="threads per forward (0: cores/workers)"
    )
    bench.add_argument(
        "--engines", "--backends", dest="backends", metavar="LIST", type=_engines,
        help="engine configurations side by side, from " + ", ".join(engine_names()) + "; all: every one the model,"
        " this install and this CPU can run, and auto's measured table and choice (default: mxnet, onnxruntime,"
        " onnxruntime-int8 where they can run; the first is the reference of the ratios)",
    )  # fmt: skip
    bench.add_argument("--modes", metavar="LIST", type=_modes, default=MODES,
                       help="which of bare, pipeline, sequential to run (default: all three)")
    bench.add_argument("--load", type=int_at_least(0), default=0, metavar="N",
                       help="N busy-loop processes beside every timed run: a device doing something else too")
    bench.add_argument("--spin-wait", action="store_true",
                       help="ONNX Runtime's idle threads spin (model.spin_wait); off by default")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    bench.set_defaults(handler=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    def progress(text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)

    from edge_runtime.bench_modes import run_bench  # MXNet, OpenCV: only once the command runs

    result = run_bench(
        args.model, args.video, args.frames, args.rounds, args.warmup, args.queue_size, progress,
        workers=args.workers, threads=args.threads, engines=args.backends, modes=args.modes, load=args.load,
        spin_wait=args.spin_wait,
    )  # fmt: skip
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(result))
        from edge_runtime.bench_modes import auto_choice_lines

        for line in auto_choice_lines(args.model):
            print(line)
    return 0
