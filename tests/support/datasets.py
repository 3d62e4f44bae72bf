"""Small labelled datasets written as real Ground Truth output: JPEG frames and an augmented manifest."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

COLOURS_BGR = {0: (200, 60, 20), 1: (20, 210, 230)}  # blue box, yellow box
CLASS_MAP = {"0": "blue box", "1": "yellow box"}


def write_boxes_dataset(folder: Path, count: int, seed: int = 0, size: tuple[int, int] = (160, 120),
                        name: str = "data") -> Path:
    """``count`` frames of coloured rectangles on noisy backgrounds and ``<name>.manifest`` (label attribute ``bb``)."""
    rng = np.random.default_rng(seed)
    width, height = size
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(count):
        image = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
        annotations = []
        for _ in range(int(rng.integers(1, 3))):
            class_id = int(rng.integers(0, 2))
            w, h = int(rng.integers(width // 4, width // 2)), int(rng.integers(height // 4, height // 2))
            left, top = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            cv2.rectangle(image, (left, top), (left + w - 1, top + h - 1), COLOURS_BGR[class_id], thickness=-1)
            annotations.append({"class_id": class_id, "left": left, "top": top, "width": w, "height": h})
        file_name = f"{name}_{index:04d}.jpg"
        cv2.imwrite(str(folder / file_name), image)
        lines.append(json.dumps({
            "source-ref": file_name,
            "bb": {"annotations": annotations, "image_size": [{"width": width, "height": height, "depth": 3}]},
            "bb-metadata": {"class-map": CLASS_MAP, "type": "groundtruth/object-detection", "human-annotated": "yes",
                            "job-name": "labeling-job/test", "creation-date": "2026-11-21T10:00:00.000000"},
        }))
    manifest = folder / f"{name}.manifest"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
