"""Pure transforms of an image and its boxes together, in the style of gluon-cv's ``transforms/bbox.py``.

Boxes are an ``(N, 4)`` float array of corners ``[xmin, ymin, xmax, ymax]`` in pixels, where a box covers the pixels
``xmin <= x < xmax`` and ``ymin <= y < ymax``. With that convention every transform here maps integer boxes to integer
boxes and the pixels a box covers to exactly the pixels its transformed box covers, which is what the tests check.

Names follow the axis the image is mirrored along: ``x-flip`` mirrors x (left ↔ right), ``y-flip`` mirrors y
(top ↔ bottom); ``cw`` and ``ccw`` rotate by 90° and swap width and height.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Transform = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray]"]


def _size(image: np.ndarray) -> tuple[int, int]:
    height, width = image.shape[:2]
    return int(width), int(height)


def _checked(boxes: np.ndarray) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return array


def x_flip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left ↔ right: ``x → W - x``."""
    width, _ = _size(image)
    b = _checked(boxes)
    out = np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], axis=1)
    return np.ascontiguousarray(image[:, ::-1]), out


def y_flip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror top ↔ bottom: ``y → H - y``."""
    _, height = _size(image)
    b = _checked(boxes)
    out = np.stack([b[:, 0], height - b[:, 3], b[:, 2], height - b[:, 1]], axis=1)
    return np.ascontiguousarray(image[::-1]), out


def rotate_cw(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate 90° clockwise: ``(x, y) → (H - y, x)``; the new image is H wide and W high."""
    _, height = _size(image)
    b = _checked(boxes)
    out = np.stack([height - b[:, 3], b[:, 0], height - b[:, 1], b[:, 2]], axis=1)
    return np.ascontiguousarray(np.rot90(image, k=-1)), out


def rotate_ccw(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate 90° counter-clockwise: ``(x, y) → (y, W - x)``; the new image is H wide and W high."""
    width, _ = _size(image)
    b = _checked(boxes)
    out = np.stack([b[:, 1], width - b[:, 2], b[:, 3], width - b[:, 0]], axis=1)
    return np.ascontiguousarray(np.rot90(image, k=1)), out


TRANSFORMS: dict[str, Transform] = {"x-flip": x_flip, "y-flip": y_flip, "cw": rotate_cw, "ccw": rotate_ccw}
"""The transforms by the names the CLI takes, in the order they are applied and listed."""

SUFFIXES = {"x-flip": "xflip", "y-flip": "yflip", "cw": "cw", "ccw": "ccw"}
"""What each transform appends to an image's file name (``blue_box_1_000043_xflip.jpg``)."""


def parse_names(text: str) -> list[str]:
    """``"x-flip,cw"`` → ``["x-flip", "cw"]``; unknown or repeated names are a ``ValueError``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TRANSFORMS]
    if unknown or not names:
        raise ValueError(f"unknown transform {', '.join(unknown) or '(none)'}; choose from {', '.join(TRANSFORMS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a transform is listed twice in {text!r}")
    return names


def corners_from_ground_truth(annotations: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Ground Truth ``{left, top, width, height}`` annotations → ``(N, 4)`` corners."""
    rows = [[a["left"], a["top"], a["left"] + a["width"], a["top"] + a["height"]] for a in annotations]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def ground_truth_from_corners(corners: np.ndarray, integers: bool) -> list[dict[str, float]]:
    """``(N, 4)`` corners → ``{left, top, width, height}``, as ints when the input annotations were ints."""
    out = []
    for xmin, ymin, xmax, ymax in np.asarray(corners, dtype=np.float64).reshape(-1, 4):
        values = {"left": xmin, "top": ymin, "width": xmax - xmin, "height": ymax - ymin}
        out.append({k: round(float(v)) if integers else float(v) for k, v in values.items()})
    return out
