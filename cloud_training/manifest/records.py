"""One Ground Truth bounding-box manifest line, parsed and checked, with the original JSON kept for rewriting.

Why keep the raw dict: SageMaker's ``AugmentedManifestFile`` input reads exactly the attributes named in
``AttributeNames`` (``source-ref`` and the label attribute) and everything else on the line is metadata people rely on
(``color``, ``object``, job names, confidences). So a line is changed only where a stage must change it, key order kept,
and written back in Ground Truth's compact JSON.

Every problem is reported as ``file:line: problem`` so a user can open the exact line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cloud_training import storage
from cloud_training.errors import ManifestError

OBJECT_DETECTION_TYPE = "groundtruth/object-detection"
SOURCE_REF = "source-ref"


@dataclass(frozen=True)
class Box:
    """A box in pixels, as Ground Truth writes it: top-left corner plus size."""

    class_id: int
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class Record:
    """A valid manifest line. ``data`` is the parsed JSON object (key order as read); ``resolved_ref`` is where the
    image is (relative ``source-ref`` paths resolved against the manifest's location)."""

    where: str
    manifest: str
    line_number: int
    data: dict[str, Any]
    label_attribute: str
    resolved_ref: str
    width: int
    height: int
    depth: int
    boxes: tuple[Box, ...]

    @property
    def source_ref(self) -> str:
        ref: str = self.data[SOURCE_REF]
        return ref

    @property
    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.data[f"{self.label_attribute}-metadata"]
        return meta


def dumps(data: dict[str, Any]) -> str:
    """A manifest line as Ground Truth writes it: compact JSON, key order kept, non-ASCII kept as is."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def detect_label_attribute(data: dict[str, Any], where: str) -> str:
    """The attribute whose ``<name>-metadata.type`` says object detection; exactly one must exist."""
    found = [
        key[: -len("-metadata")]
        for key, value in data.items()
        if key.endswith("-metadata") and isinstance(value, dict) and value.get("type") == OBJECT_DETECTION_TYPE
    ]
    found = [name for name in found if name in data]
    if not found:
        raise ManifestError(
            f"{where}: no attribute with '-metadata.type' '{OBJECT_DETECTION_TYPE}' (pass --label-attribute)"
        )
    if len(found) > 1:
        # an adjustment job's line repeats the labels it adjusted: its own attribute (with adjustment-status) wins
        adjusted = [name for name in found if "adjustment-status" in data[f"{name}-metadata"]]
        if len(adjusted) == 1:
            return adjusted[0]
        raise ManifestError(
            f"{where}: several object-detection attributes ({', '.join(found)}); choose one with --label-attribute"
        )
    return found[0]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _parse_image_size(label: dict[str, Any], attribute: str, where: str) -> tuple[int, int, int]:
    sizes = label.get("image_size")
    if not isinstance(sizes, list) or len(sizes) != 1 or not isinstance(sizes[0], dict):
        raise ManifestError(
            f"{where}: '{attribute}.image_size' is missing or not a list of one {{width, height, depth}}"
        )
    size = sizes[0]
    width, height, depth = size.get("width"), size.get("height"), size.get("depth", 3)
    if not (_positive_int(width) and _positive_int(height) and _positive_int(depth)):
        raise ManifestError(
            f"{where}: '{attribute}.image_size' needs positive integer width, height and depth (got {json.dumps(size)})"
        )
    assert isinstance(width, int) and isinstance(height, int) and isinstance(depth, int)
    return width, height, depth


def _parse_box(raw: object, index: int, width: int, height: int, where: str) -> Box:
    name = f"box {index + 1}"
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: {name} is not an object")
    class_id = raw.get("class_id")
    if not isinstance(class_id, int) or isinstance(class_id, bool) or class_id < 0:
        raise ManifestError(f"{where}: {name} has no non-negative integer class_id (got {json.dumps(class_id)})")
    values = {}
    for key in ("left", "top", "width", "height"):
        value = raw.get(key)
        if not _is_number(value):
            raise ManifestError(f"{where}: {name} has no numeric '{key}' (got {json.dumps(value)})")
        assert isinstance(value, (int, float))
        values[key] = float(value)
    if values["width"] <= 0 or values["height"] <= 0:
        raise ManifestError(f"{where}: {name} has a non-positive size (width {raw['width']}, height {raw['height']})")
    if (
        values["left"] < 0
        or values["top"] < 0
        or values["left"] + values["width"] > width
        or values["top"] + values["height"] > height
    ):
        raise ManifestError(
            f"{where}: {name} (left {raw['left']}, top {raw['top']}, width {raw['width']}, height {raw['height']}) "
            f"lies outside the {width}x{height} image"
        )
    return Box(class_id, values["left"], values["top"], values["width"], values["height"])


def _refuse_failed_task(data: dict[str, Any], where: str, label_attribute: str | None) -> None:
    """A line whose labeling task failed has ``<job>-metadata.failure-reason`` and no labels: say that, not 'pass
    --label-attribute' (no attribute name would help)."""
    for key, value in data.items():
        if not (key.endswith("-metadata") and isinstance(value, dict) and "failure-reason" in value):
            continue
        job = key[: -len("-metadata")]
        if job in data or (label_attribute is not None and label_attribute != job):
            continue
        raise ManifestError(f"{where}: Ground Truth did not label this image (job '{job}', failure-reason:"
                            f" {str(value['failure-reason'])[:200]}); relabel it, or drop such lines with"
                            " manifest prepare --skip-invalid")


def parse_line(text: str, where: str, manifest: str, line_number: int, label_attribute: str | None) -> Record:
    """Parse and check one line; ``label_attribute=None`` detects it from the metadata ``type``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: a manifest line must be a JSON object (got {type(data).__name__})")
    ref = data.get(SOURCE_REF)
    if not isinstance(ref, str) or not ref.strip():
        raise ManifestError(f"{where}: missing '{SOURCE_REF}'")
    _refuse_failed_task(data, where, label_attribute)
    attribute = label_attribute or detect_label_attribute(data, where)
    label = data.get(attribute)
    if label is None:
        raise ManifestError(f"{where}: missing label attribute '{attribute}'")
    if not isinstance(label, dict):
        raise ManifestError(f"{where}: label attribute '{attribute}' is not an object")
    metadata = data.get(f"{attribute}-metadata")
    if not isinstance(metadata, dict):
        raise ManifestError(f"{where}: missing '{attribute}-metadata'")
    class_map = metadata.get("class-map", {})
    if not isinstance(class_map, dict):
        raise ManifestError(f"{where}: '{attribute}-metadata.class-map' is not an object")
    width, height, depth = _parse_image_size(label, attribute, where)
    annotations = label.get("annotations")
    if not isinstance(annotations, list):
        raise ManifestError(f"{where}: '{attribute}.annotations' is missing or not a list")
    boxes = tuple(_parse_box(raw, index, width, height, where) for index, raw in enumerate(annotations))
    return Record(
        where=where,
        manifest=manifest,
        line_number=line_number,
        data=data,
        label_attribute=attribute,
        resolved_ref=storage.resolve(ref, manifest),
        width=width,
        height=height,
        depth=depth,
        boxes=boxes,
    )


def iter_lines(text: str, manifest: str) -> Iterator[tuple[int, str, str]]:
    """``(line number, where, text)`` for each non-blank line; ``where`` is ``file:line`` for messages."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, f"{manifest}:{number}", line
