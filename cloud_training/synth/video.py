"""An mp4 of storage boxes moving through one scene, for running the edge runtime on something that moves.

The scene (background, distractors, lighting) is fixed for the whole clip, as a mounted camera sees it; 1-3 boxes of
either colour slide across it at their own speeds. Written with OpenCV's ``mp4v`` codec, which
opencv-python-headless can both write and read back, and checked by reading it back before it is kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from cloud_training.errors import OutputError
from cloud_training.synth.scene import (
    COLORS_FOR_VIDEO,
    Corners,
    background,
    box_outline,
    corners_of,
    distractors,
    draw_box,
    finish,
)


@dataclass(frozen=True)
class Mover:
    """A box crossing the frame: its colour, shape at the origin, start point and velocity in pixels per frame."""

    color: str
    faces: dict[str, np.ndarray]
    start: np.ndarray
    velocity: np.ndarray
    seed: tuple[int, ...]


def _movers(rng: np.random.Generator, width: int, height: int, frames: int, seed: int) -> list[Mover]:
    movers = []
    for number in range(int(rng.integers(1, 4))):
        front_width = rng.uniform(0.14, 0.32) * width
        faces = box_outline(rng, 0.0, 0.0, front_width)
        from_left = rng.random() < 0.5
        start_x = -front_width * 1.2 if from_left else width + front_width * 0.2
        end_x = width + front_width * 0.2 if from_left else -front_width * 1.2
        bottom = rng.uniform(0.5, 0.98) * height
        # each box enters at its own time and takes 40-100% of the clip to cross
        duration = max(2.0, frames * rng.uniform(0.4, 1.0))
        delay = rng.uniform(0, max(0.0, frames - duration))
        velocity = np.array([(end_x - start_x) / duration, rng.uniform(-0.3, 0.3)])
        start = np.array([start_x, bottom]) - velocity * delay
        color = COLORS_FOR_VIDEO[int(rng.integers(0, len(COLORS_FOR_VIDEO)))]
        movers.append(Mover(color, faces, start, velocity, (seed, 6, number)))
    return movers


def render_video(path: str, seed: int, frames: int, width: int, height: int, fps: float = 15.0) -> list[list[Corners]]:
    """Write the clip to local ``path`` (an ``.mp4``) and return the true boxes of each frame."""
    rng = np.random.default_rng([seed, 5])
    scene = background(rng, width, height)
    distractors(rng, scene, int(rng.integers(1, 5)))
    movers = _movers(rng, width, height, frames, seed)
    writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OutputError(f"{path}: OpenCV cannot open an mp4v video writer here")
    truth: list[list[Corners]] = []
    try:
        for index in range(frames):
            image = scene.copy()
            boxes: list[Corners] = []
            placed = []
            for mover in movers:
                offset = mover.start + mover.velocity * index
                faces = {name: face + offset for name, face in mover.faces.items()}
                corners = corners_of(faces, width, height)
                if corners is not None:
                    placed.append((corners, faces, mover))
            for corners, faces, mover in sorted(placed, key=lambda item: item[0][3]):
                draw_box(np.random.default_rng(list(mover.seed)), image, faces, mover.color)
                boxes.append(corners)
            # the same camera all along: same exposure and light for every frame, fresh sensor noise
            camera = np.random.default_rng([seed, 7])
            frame = finish(camera, image, blur=False)
            noise = np.random.default_rng([seed, 8, index]).normal(0, 1.5, size=frame.shape)
            writer.write(np.clip(frame + noise, 0, 255).astype(np.uint8))
            truth.append(boxes)
    finally:
        writer.release()
    check_video(path, frames, width, height)
    return truth


def check_video(path: str, frames: int, width: int, height: int) -> None:
    """Read the file back: it must open and hold ``frames`` frames of the right size."""
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise OutputError(f"{path}: the written video cannot be opened again")
        count = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if image.shape[:2] != (height, width):
                raise OutputError(f"{path}: frame {count} is {image.shape[1]}x{image.shape[0]}, not {width}x{height}")
            count += 1
    finally:
        capture.release()
    if count != frames:
        raise OutputError(f"{path}: {count} frames read back, {frames} written")
    if os.path.getsize(path) == 0:  # pragma: no cover - caught by the frame count
        raise OutputError(f"{path}: empty video file")
