"""Compare two ``edge-runtime detect`` outputs (and optionally two ``edge-runtime run`` outputs) detection by detection.

    python3 tests/device_os/compare_detections.py HOST.json DEVICE.json \\
        [--run HOST.jsonl DEVICE.jsonl] [--frames N] [--tolerance 1e-4] [--run-tolerance T]

``detect`` prints a JSON list, one object per image (``edge_runtime/cli.py``): ``image``, ``width``, ``height``,
``model``, ``inference_ms`` and ``detections``, each ``{label, class_id, score, box, box_normalized}``. Two outputs
agree when they cover the same images (by file name: the paths differ between the host and the root) in the same
order, with the same sizes, and for each image the same detections in the same order: equal ``label`` and
``class_id``, and ``score`` and each ``box_normalized`` coordinate within the tolerance. The messages round
``score`` to 4 decimals and ``box_normalized`` to 5, so two values within the tolerance may print up to one more
rounding step apart: the bound applied to the printed values is ``tolerance + 1e-4`` for scores and
``tolerance + 1e-5`` for coordinates. ``box`` (pixels) is ``box_normalized`` times the image size and is not
compared again; ``model.backend`` and ``inference_ms`` may differ and are only reported.

``--run`` compares the detection messages of two ``edge-runtime run`` outputs (JSON lines; status lines are left
out) frame by frame (``seq``) in the same way, with ``--run-tolerance`` (default: ``--tolerance``) for scores and
coordinates: a video is decoded by OpenCV's bundled FFmpeg, whose output differs between CPU architectures by a
few levels in most pixels (measured on the demo clip: up to 3 of 255 in 65% of the pixels, x86-64 against aarch64),
where JPEG decoding is exact. ``--frames N`` also requires both to have exactly N frames.

Exit code 0 when everything agrees, 1 with one line per difference otherwise, 2 for unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import PurePath
from typing import Any

DETECTION_SCHEMA = "edge-runtime/detection/1"
SCORE_STEP = 1e-4  # detections round score to 4 decimals
BOX_STEP = 1e-5  # and box_normalized to 5
SLACK = 1e-9  # float noise of the subtraction itself


def compare_detections(
    where: str, host: list[dict[str, Any]], device: list[dict[str, Any]], tolerance: float
) -> tuple[list[str], float, float]:
    """Differences between two detection lists of one image, and the largest score / coordinate deltas."""
    problems: list[str] = []
    max_score = max_box = 0.0
    if len(host) != len(device):
        problems.append(
            f"{where}: {len(host)} detection(s) on the host, {len(device)} in the root: "
            f"host {_brief(host)}, root {_brief(device)}"
        )
    for index, (ours, theirs) in enumerate(zip(host, device)):
        at = f"{where} detection {index}"
        if ours["class_id"] != theirs["class_id"] or ours["label"] != theirs["label"]:
            problems.append(
                f"{at}: host {ours['label']!r} (class {ours['class_id']}), root {theirs['label']!r} "
                f"(class {theirs['class_id']}): host {_brief(host)}, root {_brief(device)}"
            )
            continue
        score = abs(float(ours["score"]) - float(theirs["score"]))
        max_score = max(max_score, score)
        if score > tolerance + SCORE_STEP + SLACK:
            problems.append(f"{at} ({ours['label']}): score {ours['score']} on the host, {theirs['score']} in the root")
        box_host, box_device = ours["box_normalized"], theirs["box_normalized"]
        if len(box_host) != 4 or len(box_device) != 4:
            problems.append(f"{at}: box_normalized is not 4 numbers: host {box_host}, root {box_device}")
            continue
        box = max(abs(float(a) - float(b)) for a, b in zip(box_host, box_device))
        max_box = max(max_box, box)
        if box > tolerance + BOX_STEP + SLACK:
            problems.append(f"{at} ({ours['label']}): box_normalized {box_host} on the host, {box_device} in the root")
    return problems, max_score, max_box


def _brief(detections: list[dict[str, Any]]) -> str:
    return "[" + ", ".join(f"{d['label']} {d['score']}" for d in detections) + "]"


def compare_detect(host: list[dict[str, Any]], device: list[dict[str, Any]], tolerance: float) -> list[str]:
    problems: list[str] = []
    if len(host) != len(device):
        return [f"detect: {len(host)} image(s) on the host, {len(device)} in the root"]
    for ours, theirs in zip(host, device):
        name, other = PurePath(ours["image"]).name, PurePath(theirs["image"]).name
        if name != other:
            problems.append(f"detect: image {name} on the host where the root has {other}")
            continue
        if (ours["width"], ours["height"]) != (theirs["width"], theirs["height"]):
            sizes = f"{ours['width']}x{ours['height']} on the host, {theirs['width']}x{theirs['height']} in the root"
            problems.append(f"{name}: {sizes}")
        found, max_score, max_box = compare_detections(name, ours["detections"], theirs["detections"], tolerance)
        problems += found
        backends = f"{ours['model'].get('backend', '?')} / {theirs['model'].get('backend', '?')}"
        print(
            f"{name}: {len(ours['detections'])} / {len(theirs['detections'])} detection(s) "
            f"{_brief(ours['detections'])}; max |d score| {max_score:.5f}, max |d box| {max_box:.5f}; "
            f"backend {backends}; inference {ours.get('inference_ms')} / {theirs.get('inference_ms')} ms (host / root)"
        )
    return problems


def read_run(path: str) -> dict[int, dict[str, Any]]:
    frames: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            message = json.loads(line)
            if message.get("schema") == DETECTION_SCHEMA:
                frames[int(message["seq"])] = message
    return frames


def compare_run(
    host: dict[int, dict[str, Any]], device: dict[int, dict[str, Any]], tolerance: float, frames: int | None
) -> list[str]:
    problems: list[str] = []
    if frames is not None:
        for side, messages in (("host", host), ("root", device)):
            if len(messages) != frames:
                problems.append(f"run: {len(messages)} detection message(s) from the {side}, expected {frames}")
    if sorted(host) != sorted(device):
        problems.append(f"run: frames {sorted(set(host) ^ set(device))} are in only one of the two outputs")
    max_score = max_box = 0.0
    count = 0
    for seq in sorted(set(host) & set(device)):
        found, score, box = compare_detections(
            f"run frame {seq}", host[seq]["detections"], device[seq]["detections"], tolerance
        )
        problems += found
        max_score, max_box = max(max_score, score), max(max_box, box)
        count += len(host[seq]["detections"])
    print(
        f"run: {len(host)} / {len(device)} frames, {count} detection(s) on the host's frames; "
        f"max |d score| {max_score:.5f}, max |d box| {max_box:.5f} (host / root)"
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host", help="edge-runtime detect output on this machine (JSON)")
    parser.add_argument("device", help="edge-runtime detect output in the root (JSON)")
    parser.add_argument("--run", nargs=2, metavar=("HOST_JSONL", "DEVICE_JSONL"), help="edge-runtime run outputs")
    parser.add_argument("--frames", type=int, help="with --run: the number of frames both must have")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest score / coordinate difference")
    parser.add_argument("--run-tolerance", type=float, help="the same for --run (default: --tolerance)")
    args = parser.parse_args(argv)
    run_tolerance = args.tolerance if args.run_tolerance is None else args.run_tolerance
    try:
        with open(args.host, encoding="utf-8") as host_file, open(args.device, encoding="utf-8") as device_file:
            host, device = json.load(host_file), json.load(device_file)
        problems = compare_detect(host, device, args.tolerance)
        if args.run:
            problems += compare_run(read_run(args.run[0]), read_run(args.run[1]), run_tolerance, args.frames)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"compare_detections: cannot read the outputs: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"DIFFERENT: {problem}")
    tolerances = f"tolerance {args.tolerance:g}" + (f", run {run_tolerance:g}" if args.run else "")
    if problems:
        print(f"compare_detections: {len(problems)} difference(s) ({tolerances})")
        return 1
    print(f"compare_detections: the same detections ({tolerances})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
