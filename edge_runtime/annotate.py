"""Draw detections on an image: each box in its class's colour, with its label and score (``detect --annotate``).

A picture answers what a list of numbers does not ("is the 0.58 'yellow box' the desk?"). Pure functions of
(image, detections) with OpenCV only, as the device has it; a class keeps its colour in every image, and the
label sits above the box (inside it at the top edge) on a filled band, so it stays legible on any background.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_runtime.detectors.base import Detection
from edge_runtime.errors import ConfigError

# BGR, distinct on photos and for colour-blind readers (Okabe-Ito), by class id modulo their count
PALETTE_BGR: tuple[tuple[int, int, int], ...] = (
    (0, 159, 230),    # orange
    (233, 180, 86),   # sky blue
    (115, 158, 0),    # bluish green
    (66, 228, 240),   # yellow
    (178, 114, 0),    # blue
    (0, 94, 213),     # vermillion
    (167, 121, 204),  # reddish purple
)


def class_color(class_id: int) -> tuple[int, int, int]:
    return PALETTE_BGR[class_id % len(PALETTE_BGR)]


def line_width(width: int, height: int) -> int:
    """Box lines 2 px on small images, thicker on large ones so they survive downscaled viewing."""
    return max(2, round(min(width, height) / 240))


def annotate(image_bgr: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of ``image_bgr`` with every detection drawn; the highest score is drawn last (on top)."""
    import cv2

    canvas = image_bgr.copy()
    height, width = canvas.shape[:2]
    thickness = line_width(width, height)
    scale = max(0.4, min(width, height) / 900)
    for item in sorted(detections, key=lambda d: d.score):
        color = class_color(item.class_id)
        x0, y0, x1, y1 = (round(value) for value in item.box)
        x0, x1 = max(0, min(x0, width - 1)), max(0, min(x1, width - 1))
        y0, y1 = max(0, min(y0, height - 1)), max(0, min(y1, height - 1))
        cv2.rectangle(canvas, (x0, y0), (x1, y1), color, thickness)
        text = f"{item.label} {item.score:.2f}"
        (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = y0 - text_h - baseline - 2 if y0 - text_h - baseline - 2 >= 0 else y0 + thickness
        cv2.rectangle(canvas, (x0, top), (min(width - 1, x0 + text_w + 4), top + text_h + baseline + 2), color, -1)
        ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
        cv2.putText(canvas, text, (x0 + 2, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 1, cv2.LINE_AA)
    return canvas


def annotated_path(folder: Path, image_path: str, taken: set[str]) -> Path:
    """``folder/<name>`` keeping the image's own name and format; ``<stem>-2<suffix>``... when two inputs share one."""
    source = Path(image_path)
    suffix = source.suffix.lower() if source.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else ".jpg"
    name, count = f"{source.stem}{suffix}", 1
    while name in taken:
        count += 1
        name = f"{source.stem}-{count}{suffix}"
    taken.add(name)
    return folder / name


def write_annotated(path: Path, image_bgr: np.ndarray, detections: Sequence[Detection]) -> Path:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if path.suffix in (".jpg", ".jpeg") else []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--annotate {path.parent}: cannot create the folder ({error.strerror})") from None
    if not cv2.imwrite(str(path), annotate(image_bgr, detections), params):
        raise ConfigError(f"--annotate: cannot write {path}")
    return path
