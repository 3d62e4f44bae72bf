"""Ground Truth bounding-box output lines written literally, the way a labeling job writes them, for tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def gt_line(
    ref: str,
    boxes: Sequence[tuple[int, int, int, int]] = (),
    color: str | None = "blue",
    obj: str | None = "box",
    size: tuple[int, int] = (640, 480),
    attribute: str = "bb",
    job: str = "labeling-job/test-job",
    class_id: int = 0,
    class_name: str = "storage box",
    created: str = "2019-05-21T21:45:58.350877",
) -> dict[str, Any]:
    """One line as a dict; ``boxes`` are (left, top, width, height). Key order as Ground Truth writes it."""
    line: dict[str, Any] = {"source-ref": ref}
    if color is not None:
        line["color"] = color
    if obj is not None:
        line["object"] = obj
    line[attribute] = {
        "annotations": [
            {"class_id": class_id, "width": w, "top": t, "height": h, "left": left} for left, t, w, h in boxes
        ],
        "image_size": [{"width": size[0], "depth": 3, "height": size[1]}],
    }
    line[f"{attribute}-metadata"] = {
        "job-name": job,
        "class-map": {str(class_id): class_name} if boxes else {},
        "human-annotated": "yes",
        "objects": [{"confidence": 0.09} for _ in boxes],
        "creation-date": created,
        "type": "groundtruth/object-detection",
    }
    return line


def write_manifest(path: Path, lines: Sequence[Any]) -> Path:
    """Write dicts as compact JSON lines; strings are written as they are (for malformed-line tests)."""
    text = "".join(
        (item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))) + "\n" for item in lines
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
