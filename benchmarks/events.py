"""Messages and the AWS IoT Core bill of frame, change and events modes side by side, and the tracker's cost a frame.

    python -m benchmarks.events [--minutes 10] [--fps 5] [--seed 1] [--detector] [--rounds 3]

One stream of per-frame detections feeds all three modes in one run, each through the code the pipeline runs: frame
mode builds a detection message per frame (:func:`edge_runtime.messages.detection_message`), change mode passes the
frames through :class:`edge_runtime.pipeline.ChangeFilter` (heartbeat 10 s, on the frames' clock), events mode
through :class:`edge_runtime.events.builder.EventStream` (default settings). The stream is the known-tracks clip of
``cloud-training synth --tracks`` (objects entering and leaving at known times, 640x480): by default its ground
truth perturbed as a fair detector would be (misses, label flips, jitter, false positives: ``perturbed_detections``);
with ``--detector`` the clip is rendered and the demo model (ONNX Runtime) runs on every frame, which takes minutes.
Messages/hour and $/device/month count only detection or event messages (status messages are the same in every
mode); the price is AWS IoT Core's $1.00 per million messages, metered in 5 KB increments
(:mod:`edge_runtime.events.cost`). The tracker's cost per frame is timed beside the demo model's inference on a
frame of the same size, ``--rounds`` times, interleaved; the median is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cloud_training.manifest.table import format_table
from cloud_training.synth.tracks import Seen, perturbed_detections, plan_tracks, render_tracks, track_truth
from edge_runtime.detectors.base import Detection, DetectionResult
from edge_runtime.events.builder import EventStream
from edge_runtime.events.config import EventsConfig
from edge_runtime.events.cost import MONTH_DAYS, PRICE_PER_MILLION_USD, billed_units
from edge_runtime.events.tracker import Observation
from edge_runtime.frames import Frame
from edge_runtime.messages import detection_message, encode
from edge_runtime.pipeline import ChangeFilter

WIDTH, HEIGHT = 640, 480
DEMO = Path(__file__).resolve().parents[1] / "models" / "demo"


def detections_from_model(truth_seed: int, frames: int, fps: float) -> list[list[Seen]]:
    """Render the clip and run the demo model on every frame."""
    import cv2

    from edge_runtime.config import ModelConfig
    from edge_runtime.detectors import create_detector

    detector = create_detector(ModelConfig(path=str(DEMO), backend="onnxruntime"))
    with tempfile.TemporaryDirectory() as folder:
        video = str(Path(folder) / "tracks.mp4")
        render_tracks(video, truth_seed, frames, WIDTH, HEIGHT, fps)
        capture = cv2.VideoCapture(video)
        stream: list[list[Seen]] = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            result = detector.detect(image)
            stream.append([(d.label, d.class_id, d.score, d.box_normalized) for d in result.detections])
        capture.release()
    return stream


def as_result(seen: list[Seen]) -> DetectionResult:
    detections = [
        Detection(label, class_id, score, (box[0] * WIDTH, box[1] * HEIGHT, box[2] * WIDTH, box[3] * HEIGHT), box)
        for label, class_id, score, box in seen
    ]
    return DetectionResult(WIDTH, HEIGHT, detections, {"preprocess": 2.0, "inference": 40.0, "postprocess": 1.0})


def run_modes(stream: list[list[Seen]], fps: float) -> dict[str, list[int]]:
    """The sizes of every message each mode publishes for ``stream``."""
    image = np.zeros((1, 1, 3), np.uint8)
    sizes: dict[str, list[int]] = {"frame": [], "change": [], "events": []}
    clock = [0.0]
    change = ChangeFilter(10.0, clock=lambda: clock[0])
    events = EventStream(EventsConfig(), device="bench-device", session="0123456789ab", source="synthetic")
    for index, seen in enumerate(stream):
        at = 1.8e9 + index / fps
        clock[0] = at
        result = as_result(seen)
        message = detection_message(
            device="bench-device", session="0123456789ab", source="synthetic", frame=Frame(image, index + 1, at),
            result=result, model_name="demo", model_version="1.0.0", published_at=at,
        )  # fmt: skip
        size = len(encode(message))
        sizes["frame"].append(size)
        if change.should_publish([d.label for d in result.detections]):
            sizes["change"].append(size)
        observations = [Observation(*item) for item in seen]
        sizes["events"] += [len(encode(m)) for m in events.observe(observations, at, WIDTH, HEIGHT, index + 1)]
    sizes["events"] += [len(encode(m)) for m in events.finish(1.8e9 + len(stream) / fps)]
    return sizes


def tracker_cost(stream: list[list[Seen]], fps: float, rounds: int) -> tuple[float, float]:
    """Median milliseconds a frame: the event stream (tracker + messages), and the demo model's detect on a frame."""
    from edge_runtime.config import ModelConfig
    from edge_runtime.detectors import create_detector

    detector = create_detector(ModelConfig(path=str(DEMO), backend="onnxruntime"))
    frame = np.random.default_rng(0).integers(0, 255, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    detector.detect(frame)
    tracked, inferred = [], []
    for _ in range(rounds):
        events = EventStream(EventsConfig(), device="d", session="s", source="synthetic")
        observations = [[Observation(*item) for item in seen] for seen in stream]
        started = time.perf_counter()
        for index, items in enumerate(observations):
            events.observe(items, index / fps, WIDTH, HEIGHT, index + 1)
        tracked.append((time.perf_counter() - started) * 1000 / len(stream))
        started = time.perf_counter()
        for _ in range(20):
            detector.detect(frame)
        inferred.append((time.perf_counter() - started) * 1000 / 20)
    return statistics.median(tracked), statistics.median(inferred)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="clip length (default 10)")
    parser.add_argument("--fps", type=float, default=5.0, help="processed frames per second (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="the clip's seed (default 1)")
    parser.add_argument("--detector", action="store_true", help="render the clip and run the demo model on it")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds for the tracker's cost (default 3)")
    args = parser.parse_args(argv)
    frames = round(args.minutes * 60 * args.fps)
    truth = track_truth(plan_tracks(args.seed, frames, args.fps, WIDTH, HEIGHT), frames, args.fps, WIDTH, HEIGHT)
    if args.detector:
        stream = detections_from_model(args.seed, frames, args.fps)
        what = "the demo model on the rendered clip"
    else:
        stream = perturbed_detections(truth, seed=args.seed)
        what = "ground truth perturbed as a detector would be"
    hours = frames / args.fps / 3600
    print(f"{frames} frames at {args.fps:g} fps ({args.minutes:g} min), {len(truth['objects'])} objects; {what}")
    sizes = run_modes(stream, args.fps)
    rows: list[list[Any]] = []
    for mode, found in sizes.items():
        units = sum(billed_units(size) for size in found)
        usd = units / hours * 24 * MONTH_DAYS * PRICE_PER_MILLION_USD / 1e6
        ratio = len(sizes["frame"]) / max(1, len(found))
        rows.append([mode, len(found), f"{len(found) / hours:,.0f}", f"{statistics.mean(found):,.0f}" if found
                     else "-", f"${usd:,.2f}", f"{ratio:,.1f}x"])  # fmt: skip
    print(format_table(["mode", "messages", "per hour", "mean bytes", "$/device/month", "fewer than frame"], rows))
    print(f"(AWS IoT Core: ${PRICE_PER_MILLION_USD:.2f} per million messages, 5 KB metering, {MONTH_DAYS:g}-day"
          " month; status messages, the same in every mode, not counted)")  # fmt: skip
    tracked, inferred = tracker_cost(stream, args.fps, args.rounds)
    print(
        f"events mode per frame: {tracked:.3f} ms (tracker + event messages) vs the demo model's detect"
        f" {inferred:.1f} ms at {WIDTH}x{HEIGHT}: {tracked / inferred:.2%} of inference (median of {args.rounds})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
