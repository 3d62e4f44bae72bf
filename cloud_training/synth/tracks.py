"""A video with known object tracks: storage boxes that enter and leave at known frames, and the truth as JSON.

Why: ``publish.mode events`` must give one ``new`` and one ``end`` per object, at the right times and with one id
while the object stays; checking that needs a clip where every object's first and last frame is known. The clip
(the same fixed scene as :mod:`~cloud_training.synth.video`) has two horizontal lanes, one above the other, so
objects never overlap; in each lane, after a quiet gap, one box either *slides* across (enters at one edge, leaves at
the other) or is *placed* (appears, drifts a little, is taken away), then the lane is quiet again. Every object has
left before the clip ends.

The truth of a frame is the box of each object whose picture is at least 70 % inside the frame (as for the other
synthetic frames), so a sliding box's first frame is when most of it is in; :func:`plan_tracks` and
:func:`track_truth` need no rendering (tests drive the tracker from the truth alone), :func:`render_tracks` writes the
clip. Labels are the demo model's: ``blue box`` and ``yellow box``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from cloud_training.errors import OutputError
from cloud_training.synth.scene import COLORS_FOR_VIDEO, background, box_outline, corners_of, distractors, draw_box
from cloud_training.synth.scene import finish as camera_finish
from cloud_training.synth.video import check_video

TRUTH_FORMAT = "synth-tracks/1"
LANE_BOTTOMS = (0.47, 0.97)  # bottom edge of each lane, a fraction of the height; boxes stay under 0.45 high
GAP_S = (3.0, 25.0)  # a lane is quiet this long between objects
SLIDE_S = (8.0, 40.0)  # a sliding box takes this long to cross
PLACED_S = (8.0, 60.0)  # a placed box stays this long


@dataclass(frozen=True)
class TrackPlan:
    """One object: colour, the frames it is drawn in (``enter``..``leave`` inclusive), its shape, start, velocity."""

    object_id: int
    color: str
    kind: str  # "slide" or "placed"
    enter: int
    leave: int
    faces: dict[str, np.ndarray]
    start: np.ndarray  # offset of the shape at frame ``enter``
    velocity: np.ndarray  # pixels per frame
    seed: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.color} box"

    def faces_at(self, frame: int) -> dict[str, np.ndarray] | None:
        if not self.enter <= frame <= self.leave:
            return None
        offset = self.start + self.velocity * (frame - self.enter)
        return {name: face + offset for name, face in self.faces.items()}


def plan_tracks(seed: int, frames: int, fps: float, width: int, height: int) -> list[TrackPlan]:
    """The objects of the clip, lane by lane, each gone before the last frame."""
    rng = np.random.default_rng([seed, 31])
    plans: list[TrackPlan] = []
    for lane, bottom_fraction in enumerate(LANE_BOTTOMS):
        frame = int(rng.uniform(*GAP_S) * fps * (0.3 if lane else 0.1))
        while True:
            front_width = rng.uniform(0.14, 0.24) * width
            faces = box_outline(rng, 0.0, 0.0, front_width)
            color = COLORS_FOR_VIDEO[int(rng.integers(0, len(COLORS_FOR_VIDEO)))]
            bottom = bottom_fraction * height - rng.uniform(0.0, 0.03) * height
            slide = rng.random() < 0.6
            stay = int(rng.uniform(*(SLIDE_S if slide else PLACED_S)) * fps)
            if frame + stay + int(GAP_S[0] * fps) >= frames:
                break
            if slide:
                from_left = rng.random() < 0.5
                start_x = -front_width * 1.3 if from_left else width + front_width * 0.3
                end_x = width + front_width * 0.3 if from_left else -front_width * 1.3
                velocity = np.array([(end_x - start_x) / stay, 0.0])
            else:
                start_x = rng.uniform(0.05, 0.95 - 0.3) * width
                velocity = np.array([rng.uniform(-0.2, 0.2), 0.0])
            number = len(plans)
            start = np.array([start_x, bottom])
            plans.append(
                TrackPlan(number + 1, color, "slide" if slide else "placed", frame, frame + stay, faces, start,
                          velocity, (seed, 32, number))
            )  # fmt: skip
            frame += stay + 1 + int(rng.uniform(*GAP_S) * fps)
    ordered = sorted(plans, key=lambda plan: plan.enter)
    return [dataclasses.replace(plan, object_id=number) for number, plan in enumerate(ordered, start=1)]


def track_truth(plans: list[TrackPlan], frames: int, fps: float, width: int, height: int) -> dict[str, Any]:
    """The ground truth: per object its label, first and last visible frame and seconds, and its box per frame."""
    objects = []
    for plan in plans:
        boxes = []
        for frame in range(plan.enter, min(plan.leave, frames - 1) + 1):
            faces = plan.faces_at(frame)
            corners = corners_of(faces, width, height) if faces is not None else None
            if corners is not None:
                boxes.append([frame, *corners])
        if not boxes:
            continue
        first, last = boxes[0][0], boxes[-1][0]
        objects.append(
            {
                "id": plan.object_id,
                "label": plan.label,
                "kind": plan.kind,
                "first_frame": first,
                "last_frame": last,
                "first_s": round(first / fps, 3),
                "last_s": round(last / fps, 3),
                "boxes": boxes,
            }
        )
    return {"format": TRUTH_FORMAT, "fps": fps, "frames": frames, "width": width, "height": height, "objects": objects}


def boxes_by_frame(truth: dict[str, Any]) -> list[list[tuple[int, str, tuple[int, int, int, int]]]]:
    """Per frame: (object id, label, pixel box) of every visible object."""
    per_frame: list[list[tuple[int, str, tuple[int, int, int, int]]]] = [[] for _ in range(truth["frames"])]
    for item in truth["objects"]:
        for frame, *corners in item["boxes"]:
            per_frame[frame].append((item["id"], item["label"], (corners[0], corners[1], corners[2], corners[3])))
    return per_frame


Seen = tuple[str, int, float, tuple[float, float, float, float]]
"""A detection as a tracker takes it: label, class id, score, box normalised to the frame."""


def perturbed_detections(truth: dict[str, Any], seed: int, miss: float = 0.08, flip: float = 0.03,
                         false_positive: float = 0.01, jitter_px: float = 2.0) -> list[list[Seen]]:
    """Per frame, what a fair detector might report for the truth: boxes jittered by ``jitter_px``, scores
    0.5-0.97, a share ``miss`` of them missed, ``flip`` given the other label, and a one-frame false positive in a
    share ``false_positive`` of frames. Stands in for the detector where running it on every frame is too slow."""
    rng = np.random.default_rng(seed)
    width, height = truth["width"], truth["height"]
    labels = [f"{color} box" for color in COLORS_FOR_VIDEO]
    frames: list[list[Seen]] = []
    for visible in boxes_by_frame(truth):
        seen: list[Seen] = []
        for _, label, box in visible:
            if rng.random() < miss:
                continue
            if rng.random() < flip:
                label = labels[1 - labels.index(label)]
            x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=float) + rng.normal(0.0, jitter_px, 4))
            score = float(rng.uniform(0.5, 0.97))
            seen.append((label, labels.index(label), score, (x0 / width, y0 / height, x1 / width, y1 / height)))
        if rng.random() < false_positive:
            x, y = (float(v) for v in rng.uniform(0.0, 0.8, 2))
            seen.append((labels[0], 0, 0.7, (x, y, x + 0.1, y + 0.1)))
        frames.append(seen)
    return frames


def render_tracks(path: str, seed: int, frames: int, width: int, height: int, fps: float) -> dict[str, Any]:
    """Write the clip to local ``path`` (``.mp4``, OpenCV's mp4v) and return its truth (:func:`track_truth`)."""
    plans = plan_tracks(seed, frames, fps, width, height)
    rng = np.random.default_rng([seed, 30])
    scene = background(rng, width, height)
    distractors(rng, scene, int(rng.integers(1, 4)))
    writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OutputError(f"{path}: OpenCV cannot open an mp4v video writer here")
    try:
        for index in range(frames):
            image = scene.copy()
            for plan in plans:
                faces = plan.faces_at(index)
                if faces is not None:
                    draw_box(np.random.default_rng(list(plan.seed)), image, faces, plan.color)
            frame = camera_finish(np.random.default_rng([seed, 33]), image, blur=False)
            noise = np.random.default_rng([seed, 34, index]).normal(0, 1.5, size=frame.shape)
            writer.write(np.clip(frame + noise, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    check_video(path, frames, width, height)
    return track_truth(plans, frames, fps, width, height)


def write_truth(path: str, truth: dict[str, Any]) -> None:
    """The truth as JSON, written whole (temp file + rename)."""
    temp = f"{path}.tmp"
    with open(temp, "w", encoding="utf-8") as stream:
        json.dump(truth, stream, separators=(",", ":"))
        stream.write("\n")
    os.replace(temp, path)
