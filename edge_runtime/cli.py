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

from edge_runtime import __version__, stop_signals
from edge_runtime.bench import register as register_bench
from edge_runtime.config import RuntimeConfig, load_config, set_overrides, set_path
from edge_runtime.detectors.registry import PRECISIONS, engine_choices, engine_help
from edge_runtime.errors import ConfigError, EdgeRuntimeError
from edge_runtime.help_text import config_keys_text, default_of
from edge_runtime.review.cli import register as register_review

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a killed writer

log = logging.getLogger("edge_runtime")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="JSON config file (every key with its default: edge-runtime check-config --help)")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config key, e.g. --set publish.mqtt.port=8883 (repeatable; VALUE parsed as JSON)",
    )
    parser.add_argument("--model", metavar="DIR",
                        help="model.path: deploy model folder (cloud-training convert), e.g. models/demo")
    parser.add_argument("--score-threshold", type=float, metavar="S",
                        help="model.score_threshold: drop detections below S"
                        f" (default {default_of('model.score_threshold')})")
    parser.add_argument("--top-k", type=int, metavar="K",
                        help=f"model.top_k: keep the K best detections (default {default_of('model.top_k')})")
    parser.add_argument(
        "--backend",
        metavar="{" + ",".join(engine_choices()) + "}",  # checked by the config: one line, exit 2
        help="model.backend: " + engine_help() + "; auto (default): the fastest measured here that keeps accuracy",
    )
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="model.precision: bf16/fp16 on openvino where the CPU has them; int8 runs model.int8.onnx")


LAYERS = "Configuration: defaults < --config FILE < EDGE_RUNTIME_* environment < flags (each flag names its key)."
RUN_EPILOG = f"""\
examples:
  edge-runtime run --model models/demo --source demo.mp4              # one JSON message per frame on stdout
  edge-runtime run --model models/demo --source frames/ --publish file --set publish.file.path=out/d.jsonl
  edge-runtime run --model models/demo --source rtsp://192.168.1.20/live --max-fps 5 \\
      --publish mqtt --mqtt-host 192.168.1.2 --thing-name cam1      # to a broker, through the on-disk outbox
  edge-runtime run --config device.json --set model.score_threshold=0.6
  EDGE_RUNTIME_PUBLISH__MQTT__PORT=8883 edge-runtime run --config device.json

{LAYERS}
Every config key with its default and meaning: edge-runtime check-config --help.
Stops on SIGTERM or Ctrl-C (finishing the frame in flight, flushing publishers), or when a file source ends
(unless --loop). Logs go to stderr, messages to stdout; exit 2 for a wrong config, model or source, in one line.
Under Greengrass (the nucleus's environment) the component's configuration is used and messages go through IPC.
"""
DETECT_EPILOG = f"""\
examples:
  edge-runtime detect --model models/demo frame1.jpg frame2.jpg
  edge-runtime detect --model models/demo --score-threshold 0.3 --annotate annotated/ shots/*.jpg

Prints one JSON array, an object per image: image, width, height, model (name, version, backend), inference_ms
and detections (label, class_id, score, box in pixels and normalised), best first. With --annotate, the path of
each drawn copy too.
{LAYERS}
Every config key with its default: edge-runtime check-config --help.
"""
CHECK_EPILOG = """\
example:
  edge-runtime check-config device.json --print

A config file is a JSON object of the keys below, nested by section; any key left out keeps its default:
  {{"thing_name": "cam1", "model": {{"path": "/opt/models/boxes", "score_threshold": 0.6}},
   "source": {{"uri": "rtsp://192.168.1.20/live", "max_fps": 5}},
   "publish": {{"targets": ["mqtt"], "mqtt": {{"host": "a1b2c3-ats.iot.eu-west-1.amazonaws.com", "port": 8883,
              "tls": {{"cert": "cert.pem", "key": "key.pem", "ca": "AmazonRootCA1.pem"}}}}}}}}
The environment overrides the file: EDGE_RUNTIME_<SECTION>__<KEY>, e.g. EDGE_RUNTIME_MODEL__TOP_K=5.
Also checks that model.path is a model folder and a file or folder source.uri exists on this machine (not with
--schema-only). Prints 'FILE: ok', or each problem as 'key.path: message (got VALUE)' and exit 2.

keys (= default):
{keys}
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-runtime",
        description="Run an SSD object detector on a device: frames in, detections out (stdout, file, MQTT).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run", help="the daemon: capture, detect, publish until stopped (or a file ends)",
        description="Capture frames from one source, detect objects in each, and publish one message per frame\n"
        "(stdout, a JSON-lines file, MQTT) with a status message every status.interval_s, until stopped.",
        epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_flags(run)
    run.add_argument("--source", metavar="URI", action="append",
                     help="source.uri: video file, image folder, camera index (0), rtsp:// or http(s):// URL, a"
                     " GStreamer pipeline, libcamera[:N] (a Pi camera module) or auto (the first libcamera camera, else"
                     " /dev/video0); repeat for several sources in one daemon (sources: one model shared)")
    run.add_argument("--loop", action="store_true", default=None,
                     help="source.loop: restart a file or folder at its end (default: drain it and exit)")
    run.add_argument("--max-fps", type=float, metavar="FPS",
                     help="source.max_fps: cap the capture rate (default: no cap; files play at their own rate)")
    run.add_argument(
        "--publish",
        action="append",
        choices=["stdout", "file", "mqtt"],
        help="publish.targets (repeatable; default stdout); file writes publish.file.path"
        f" (default {default_of('publish.file.path')})",
    )
    run.add_argument("--thing-name", metavar="NAME",
                     help=f"thing_name, used in messages and topic templates (default {default_of('thing_name')})")
    run.add_argument("--mqtt-host", metavar="HOST",
                     help="publish.mqtt.host: broker or AWS IoT Core endpoint"
                     f" (default {default_of('publish.mqtt.host')})")
    run.add_argument("--mqtt-port", type=int, metavar="PORT",
                     help=f"publish.mqtt.port: 1883 plain, 8883 TLS (default {default_of('publish.mqtt.port')})")
    run.add_argument("--status-interval", type=float, metavar="S",
                     help="status.interval_s: status message period, 0 never"
                     f" (default {default_of('status.interval_s')})")
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

    detect = sub.add_parser(
        "detect", help="detect objects in images and print the detections as JSON",
        description="Run the model on image files once each and print their detections as JSON (no daemon, no\n"
        "publishing): a quick check of a model on your own pictures.",
        epilog=DETECT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_flags(detect)
    detect.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, anything OpenCV reads)")
    detect.add_argument("--annotate", metavar="DIR",
                        help="also write each image with its boxes, labels and scores drawn into DIR, under its own"
                        " file name (NAME-2.jpg... when two inputs share one); never over an input")
    detect.set_defaults(handler=_detect)

    check = sub.add_parser(
        "check-config",
        help="validate a JSON config file (with environment overrides); print its expected messages per day and"
        " AWS IoT Core cost per device",
        description="Validate a JSON config file as run would load it (with EDGE_RUNTIME_* environment overrides),\n"
        "without starting anything.",
        epilog=CHECK_EPILOG.format(keys=config_keys_text()), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", metavar="FILE", help="the JSON config file")
    check.add_argument("--print", action="store_true", help="print the effective config as JSON")
    check.add_argument("--schema-only", action="store_true",
                       help="check keys and values only, not that model.path and a file source.uri exist here"
                       " (a config written for another machine)")
    check.add_argument(
        "--objects-per-hour", type=float, default=10.0, metavar="N",
        help="events mode's cost estimate: objects a camera sees an hour (default 10)",
    )  # fmt: skip
    check.add_argument("--dwell", type=float, default=60.0, metavar="S", help="... staying S seconds each (default 60)")
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
    uris = getattr(args, "source", None) or []
    if len(uris) == 1:
        set_path(overrides, "source.uri", uris[0])
    elif uris:  # several: each its own source, id its uri; the source section's other keys apply to each
        set_path(overrides, "sources", [{"uri": uri} for uri in uris])
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
    if not config.sources:
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
    if not args.schema_only:  # what run would fail on at start: a model folder or a video that is not there
        from edge_runtime.config_paths import path_problems

        problems = path_problems(config)
        if problems:
            raise ConfigError("; ".join(problems))
    if args.print:
        json.dump(config.model_dump(mode="json"), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{args.file}: ok", file=sys.stderr)
    from edge_runtime.events.cost import describe, estimate  # expected messages/day and the IoT Core bill

    cost = estimate(config, objects_per_hour=args.objects_per_hour, dwell_s=args.dwell)
    print("\n".join(describe(cost, list(config.publish.targets))), file=sys.stderr if args.print else sys.stdout)
    return 0


def _configure_logging(level: str) -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)
    logging.getLogger().setLevel(level)


def _stops_on_signals(args: argparse.Namespace) -> bool:
    """The long-running commands: SIGTERM / SIGINT end them in one ordered stop, exit 0 (:mod:`stop_signals`)."""
    return args.command == "run" or (args.command == "review" and getattr(args, "review_action", None) != "report")


def main(argv: Sequence[str] | None = None) -> int:
    """The console script (``argv`` None: the signal handlers stay until the process exits) or a caller in-process
    (``argv`` given: they are given back on return)."""
    try:
        return _main(argv)
    finally:
        if argv is not None:
            stop_signals.finish()


def _main(argv: Sequence[str] | None) -> int:
    stop_signals.install()  # first: a signal at any moment from here to exit is one clean stop (or given back below)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not _stops_on_signals(args):
        stop_signals.release()
    _configure_logging("WARNING")
    try:
        result: int = args.handler(args)
    except stop_signals.StopRequested as stopped:  # a stop signal before anything ran: nothing to stop
        print(f"edge-runtime: stopped during start-up ({stopped})", file=sys.stderr)
        return 0
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
