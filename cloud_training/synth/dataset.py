"""A synthetic labelling project: frames plus the Ground Truth output manifests its labelling jobs would have written.

It mirrors the AWS sample so ``manifest prepare`` has the same work to do: one one-class job per colour (every box
``class_id 0``, class-map ``{"0": "storage box"}``, colour and object in per-line metadata), frames named
``<color>_box_<session>_<frame>.jpg``, empty frames labelled with no boxes, a few frames labelled badly and listed in
``discard.txt``, and a later ``relabel-job`` that fixes some sloppy labels (the later job must win when joining).

Each frame is rendered from its own generator seeded by ``(seed, index)``, so the output does not depend on the
number of worker processes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud_training.synth.scene import Corners, render

COLORS = ("blue", "yellow")
SESSION_FRAMES = 150
EMPTY_P, TWO_P = 0.08, 0.2
SLOPPY_P, RELABEL_P = 0.012, 0.03
JOB_TIME = dt.datetime(2019, 5, 21, 19, 0, 0)


@dataclass(frozen=True)
class FramePlan:
    """What one frame will be: its colour, name, how many boxes, and whether its first label is wrong."""

    index: int
    color: str
    session: int
    frame: int
    boxes: int
    discard: bool
    relabel: bool

    @property
    def name(self) -> str:
        return f"{self.color}_box_{self.session}_{self.frame:06d}.jpg"


def plan(images: int, seed: int) -> list[FramePlan]:
    """Half the frames per colour (blue first), in sessions of up to 150 consecutive frames, as a camera records."""
    rng = np.random.default_rng([seed, 1])
    plans: list[FramePlan] = []
    counts = {"blue": images // 2, "yellow": images - images // 2}
    for color in COLORS:
        for number in range(counts[color]):
            boxes = int(rng.choice([0, 1, 2], p=[EMPTY_P, 1 - EMPTY_P - TWO_P, TWO_P]))
            mistake = rng.random()
            plans.append(
                FramePlan(
                    index=len(plans),
                    color=color,
                    session=1 + number // SESSION_FRAMES,
                    frame=1 + number % SESSION_FRAMES,
                    boxes=boxes,
                    discard=boxes > 0 and mistake < SLOPPY_P,
                    relabel=boxes > 0 and SLOPPY_P <= mistake < SLOPPY_P + RELABEL_P,
                )
            )
    return plans


@dataclass(frozen=True)
class Frame:
    """A rendered frame: encoded JPEG, its size and the true boxes."""

    plan: FramePlan
    jpeg: bytes
    width: int
    height: int
    corners: list[Corners]


def render_frame(item: tuple[FramePlan, int, int, int]) -> Frame:
    """Render and encode one frame (a top-level function so worker processes can run it)."""
    import cv2

    frame_plan, width, height, seed = item
    rng = np.random.default_rng([seed, 2, frame_plan.index])
    image, corners = render(rng, width, height, frame_plan.color, frame_plan.boxes)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(80, 96))])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
        raise RuntimeError("JPEG encoding failed")
    return Frame(frame_plan, buffer.tobytes(), width, height, corners)


def sloppy(corners: list[Corners], width: int, height: int, seed: int, index: int) -> list[Corners]:
    """A labeller's bad box: shifted by a large part of its size and resized, still inside the image."""
    rng = np.random.default_rng([seed, 3, index])
    out = []
    for xmin, ymin, xmax, ymax in corners:
        w, h = xmax - xmin, ymax - ymin
        nw, nh = max(4, int(w * rng.uniform(0.4, 0.7))), max(4, int(h * rng.uniform(0.4, 0.7)))
        x = int(np.clip(xmin + rng.choice([-1, 1]) * w * rng.uniform(0.3, 0.6), 0, width - nw))
        y = int(np.clip(ymin + rng.choice([-1, 1]) * h * rng.uniform(0.3, 0.6), 0, height - nh))
        out.append((x, y, x + nw, y + nh))
    return out


def ground_truth_line(
    ref: str, color: str, corners: list[Corners], width: int, height: int, job: str, when: dt.datetime
) -> dict[str, Any]:
    """One output line exactly as a one-class Ground Truth bounding-box job writes it (key order included)."""
    return {
        "source-ref": ref,
        "color": color,
        "object": "box",
        "bb": {
            "annotations": [
                {"class_id": 0, "width": x1 - x0, "top": y0, "height": y1 - y0, "left": x0}
                for x0, y0, x1, y1 in corners
            ],
            "image_size": [{"width": width, "depth": 3, "height": height}],
        },
        "bb-metadata": {
            "job-name": f"labeling-job/{job}",
            "class-map": {"0": "storage box"} if corners else {},
            "human-annotated": "yes",
            "objects": [{"confidence": 0.09} for _ in corners],
            "creation-date": when.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "type": "groundtruth/object-detection",
        },
    }


def job_name(color: str) -> str:
    return f"{color}-box-job"


RELABEL_JOB = "relabel-job"


def label_jobs(frames: list[Frame], refs: dict[int, str], seed: int) -> dict[str, list[dict[str, Any]]]:
    """The lines of each job: one job per colour, then the relabelling job with the corrected frames."""
    rng = np.random.default_rng([seed, 4])
    jobs: dict[str, list[dict[str, Any]]] = {job_name(color): [] for color in COLORS}
    jobs[RELABEL_JOB] = []
    for frame in frames:
        when = JOB_TIME + dt.timedelta(seconds=int(frame.plan.index * 7), microseconds=int(rng.integers(1, 999_999)))
        bad = frame.plan.discard or frame.plan.relabel
        labelled = sloppy(frame.corners, frame.width, frame.height, seed, frame.plan.index) if bad else frame.corners
        ref = refs[frame.plan.index]
        job = job_name(frame.plan.color)
        jobs[job].append(ground_truth_line(ref, frame.plan.color, labelled, frame.width, frame.height, job, when))
        if frame.plan.relabel:
            later = when + dt.timedelta(days=2)
            line = ground_truth_line(
                ref, frame.plan.color, frame.corners, frame.width, frame.height, RELABEL_JOB, later
            )
            jobs[RELABEL_JOB].append(line)
    return jobs


def discard_list(frames: list[Frame]) -> str:
    """The image ids a reviewer marked as badly labelled (and did not relabel), one a line."""
    return "".join(f"{frame.plan.name.rsplit('.', 1)[0]}\n" for frame in frames if frame.plan.discard)


def iter_frames(plans: list[FramePlan], width: int, height: int, seed: int, workers: int) -> Iterator[Frame]:
    """Render frames in order, in ``workers`` processes when more than one."""
    items = [(item, width, height, seed) for item in plans]
    if workers <= 1 or len(items) < 16:
        yield from map(render_frame, items)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(render_frame, items, chunksize=8)
