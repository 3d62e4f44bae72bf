"""The ``edge-runtime`` command line: ``run`` (the daemon), ``detect`` (images to JSON), ``check-config``.

Handlers import MXNet, OpenCV and the MQTT client only when they run, so ``--help`` and ``check-config`` stay
instant on a small device. Errors derived from :class:`~edge_runtime.errors.EdgeRuntimeError` become one line
on stderr and exit code 2 (Greengrass then marks the component broken, not restarting it into the same error).
Logs go to stderr; stdout carries only messages (detections, status) so it can be piped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_runtime import __version__
from edge_runtime.bench import register as register_bench
from edge_runtime.config import RuntimeConfig, load_config, set_overrides, set_path
from edge_runtime.detectors.registry import PRECISIONS, engine_choices, engine_help
from edge_runtime.errors import ConfigError, EdgeRuntimeError
from edge_runtime.review.cli import register as register_review

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a killed writer

log = logging.getLogger("edge_runtime")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="JSON config file (keys: edge_runtime/config.py)")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config key, e.g. --set publish.mqtt.port=8883 (repeatable; VALUE parsed as JSON)",
    )
    parser.add_argument("--model", metavar="DIR", help="model folder (model.path)")
    parser.add_argument("--score-threshold", type=float, metavar="S", help="model.score_threshold")
    parser.add_argument("--top-k", type=int, metavar="K", help="model.top_k")
    parser.add_argument(
        "--backend",
        metavar="{" + ",".join(engine_choices()) + "}",  # checked by the config: one line, exit 2
        help="model.backend: " + engine_help() + "; auto (default): the fastest measured here that keeps accuracy",
    )
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="model.precision: bf16/fp16 on openvino where the CPU has them; int8 runs model.int8.onnx")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-runtime",
        description="Run an SSD object detector on a device: frames in, detections out (stdout, file, MQTT).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="the daemon: capture, detect, publish until stopped (or a file ends)")
    _add_config_flags(run)
    run.add_argument("--source", metavar="URI", help="video file, image folder, camera index, stream URL, gst pipeline")
    run.add_argument("--loop", action="store_true", default=None, help="restart a file source at its end")
    run.add_argument("--max-fps", type=float, metavar="FPS", help="source.max_fps")
    run.add_argument(
        "--publish",
        action="append",
        choices=["stdout", "file", "mqtt"],
        help="publish.targets (repeatable; default stdout)",
    )
    run.add_argument("--thing-name", metavar="NAME", help="thing_name, used in messages and topic templates")
    run.add_argument("--mqtt-host", metavar="HOST", help="publish.mqtt.host")
    run.add_argument("--mqtt-port", type=int, metavar="PORT", help="publish.mqtt.port")
    run.add_argument("--status-interval", type=float, metavar="S", help="status.interval_s")
    run.add_argument(
        "--fail-fast",
        action="store_true",
        default=None,
        help="publish.fail_fast: exit 2 if the broker or nucleus cannot be reached at start (first-time setup)",
    )
    run.add_argument(
        "--workers", type=int, metavar="N", help="model.workers: frames inferred side by side (1; 2 for throughput)"
    )
    run.add_argument("--threads", type=int, metavar="N", help="model.threads: threads per forward (0: auto)")
    run.set_defaults(handler=_run)

    detect = sub.add_parser("detect", help="detect objects in images and print the detections as JSON")
    _add_config_flags(detect)
    detect.add_argument("images", nargs="+", metavar="IMAGE")
    detect.add_argument("--annotate", metavar="DIR",
                        help="also write each image with its boxes, labels and scores drawn into DIR, under its own"
                        " file name (NAME-2.jpg... when two inputs share one); never over an input")
    detect.set_defaults(handler=_detect)

    check = sub.add_parser("check-config", help="validate a JSON config file (with environment overrides)")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--print", action="store_true", help="print the effective config as JSON")
    check.set_defaults(handler=_check_config)
    register_review(sub)
    register_bench(sub)
    return parser


def config_from_args(args: argparse.Namespace) -> RuntimeConfig:
    """Defaults < ``--config`` file < environment < flags, as one validated config."""
    return load_config(args.config, overrides=flag_overrides(args))


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config tree the flags give (``--set`` and the named options)."""
    overrides = set_overrides(args.set)
    named = {
        "model.path": args.model,
        "model.score_threshold": args.score_threshold,
        "model.top_k": args.top_k,
        "model.backend": args.backend,
        "model.precision": args.precision,
        "source.uri": getattr(args, "source", None),
        "source.loop": getattr(args, "loop", None),
        "source.max_fps": getattr(args, "max_fps", None),
        "publish.targets": getattr(args, "publish", None),
        "thing_name": getattr(args, "thing_name", None),
        "publish.mqtt.host": getattr(args, "mqtt_host", None),
        "publish.mqtt.port": getattr(args, "mqtt_port", None),
        "status.interval_s": getattr(args, "status_interval", None),
        "publish.fail_fast": getattr(args, "fail_fast", None),
        "model.workers": getattr(args, "workers", None),
        "model.threads": getattr(args, "threads", None),
    }
    for key, value in named.items():
        if value is not None:
            set_path(overrides, key, value)
    return overrides


def _require(value: object, key: str, flag: str) -> None:
    if value is None:
        raise ConfigError(f"{key}: required (give {flag} or set it in the config)")


def _run(args: argparse.Namespace) -> int:
    from edge_runtime.greengrass import in_greengrass, run_component

    if in_greengrass(os.environ):  # started by the nucleus: configured and publishing through Greengrass IPC
        return run_component(args, flag_overrides(args))
    config = config_from_args(args)
    _configure_logging(config.log_level)
    _require(config.model.path, "model.path", "--model DIR")
    _require(config.source.uri, "source.uri", "--source URI")
    from edge_runtime.daemon import run_daemon

    return run_daemon(config)


def _detect(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _configure_logging(config.log_level)
    _require(config.model.path, "model.path", "--model DIR")
    from edge_runtime.detectors import create_detector, read_image

    targets = _annotation_targets(args.annotate, args.images) if args.annotate else {}
    detector = create_detector(config.model)
    from edge_runtime.daemon import log_recommended_thresholds

    log_recommended_thresholds(detector, config)
    results = []
    for image_path in args.images:
        image = read_image(image_path)
        result = detector.detect(image)
        results.append(
            {
                "image": image_path,
                "width": result.width,
                "height": result.height,
                "model": {"name": detector.info.name, "version": detector.info.version, "backend": detector.backend},
                "inference_ms": round(result.timings_ms["inference"], 3),
                "detections": [detection.to_dict() for detection in result.detections],
            }
        )
        if targets:
            from edge_runtime.annotate import write_annotated

            results[-1]["annotated"] = str(write_annotated(targets[image_path], image, result.detections))
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _annotation_targets(folder: str, images: list[str]) -> dict[str, Path]:
    """Where ``--annotate`` writes each image, decided before anything runs: never over one of the inputs."""
    from edge_runtime.annotate import annotated_path

    taken: set[str] = set()
    targets = {image: annotated_path(Path(folder), image, taken) for image in dict.fromkeys(images)}
    inputs = {Path(image).resolve() for image in images}
    for image, target in targets.items():
        if target.resolve() in inputs:
            raise ConfigError(f"--annotate {folder}: would overwrite the input {image}; give another folder")
    return targets


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    if args.print:
        json.dump(config.model_dump(mode="json"), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{args.file}: ok", file=sys.stderr)
    return 0


def _configure_logging(level: str) -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)
    logging.getLogger().setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging("WARNING")
    try:
        result: int = args.handler(args)
    except EdgeRuntimeError as error:
        print(f"edge-runtime: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("edge-runtime: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout piped into a reader that quit (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return result
