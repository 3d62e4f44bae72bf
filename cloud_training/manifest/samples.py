"""``manifest from-samples``: the frames devices sampled (``edge_runtime/samples``) as a Ground Truth input manifest
for a bounding-box *adjustment* job, with the device's detections as the boxes the labelers start from.

Why this shape: an adjustment job reads each line's earlier labels from the label attribute of the job it adjusts
(``bb`` and ``bb-metadata``, exactly as a bounding-box job writes them), and its post-annotation Lambda writes the
adjusted boxes under a new attribute (``bb-adjusted``) with ``adjustment-status``; ``manifest prepare`` already turns
that output back into training data under the original name. So the device's detections are written as if a
(machine) bounding-box job had produced them: pixel ``left/top/width/height``, ``class_id`` in the model's class
map, ``human-annotated: no`` and each box's score as its ``confidence``.

The device writes, per sample, ``PREFIX/{thing}/{YYYY-MM-DD}/{stem}.jpg`` and ``{stem}.json`` (the sidecar, schema
``edge-runtime/sample/1``). Selecting is a pure function of the sidecars (:func:`select`); reading lists the prefix
(S3, recursively, or a local folder) and reads each sidecar (:func:`read_sidecars`).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from cloud_training import storage
from cloud_training.errors import ManifestError, StorageError
from cloud_training.manifest.records import OBJECT_DETECTION_TYPE, dumps

SAMPLE_SCHEMA = "edge-runtime/sample/1"
DEFAULT_ATTRIBUTE = "bb"
JOB_NAME = "labeling-job/device-detections"  # what the pre-annotations claim as their (machine) job


@dataclass(frozen=True)
class Filters:
    """Which samples to take: every given filter must hold (devices: any of them; classes: any detection of one)."""

    devices: tuple[str, ...] = ()
    since: Optional[dt.date] = None
    until: Optional[dt.date] = None
    classes: tuple[str, ...] = ()
    min_score: float = 0.0
    max_score: float = 1.0


@dataclass(frozen=True)
class Sample:
    """One sidecar as read: where it and its image are, and its JSON."""

    sidecar: str
    image: str
    data: dict[str, Any]

    @property
    def device(self) -> str:
        return str(self.data.get("device", ""))

    @property
    def captured(self) -> Optional[dt.date]:
        text = str(self.data.get("captured_at", ""))
        try:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            return None

    @property
    def detections(self) -> list[dict[str, Any]]:
        found = self.data.get("detections", [])
        return found if isinstance(found, list) else []

    @property
    def classes(self) -> tuple[str, ...]:
        model = self.data.get("model", {})
        names = model.get("classes") if isinstance(model, dict) else None
        return tuple(str(name) for name in names) if isinstance(names, list) else ()


@dataclass
class Summary:
    """What from-samples took and left, for the command's table and report."""

    found: int = 0
    taken: int = 0
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    devices: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    boxes: collections.Counter[str] = field(default_factory=collections.Counter)
    class_map: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"found": self.found, "taken": self.taken, "skipped": dict(self.skipped),
                "devices": dict(self.devices), "reasons": dict(self.reasons), "boxes": dict(self.boxes),
                "class_map": {str(k): v for k, v in self.class_map.items()}}


# -- pure -------------------------------------------------------------------------------------------------------------


def why_not(sample: Sample, filters: Filters) -> Optional[str]:
    """The first filter ``sample`` fails (a word for the summary), or None when it is taken."""
    if filters.devices and sample.device not in filters.devices:
        return "device"
    day = sample.captured
    if (filters.since or filters.until) and day is None:
        return "date"
    if day is not None and ((filters.since and day < filters.since) or (filters.until and day > filters.until)):
        return "date"
    detections = sample.detections
    if filters.classes and not any(str(d.get("label")) in filters.classes for d in detections):
        return "class"
    if (filters.min_score > 0.0 or filters.max_score < 1.0) and not any(
        filters.min_score <= float(d.get("score", -1.0)) <= filters.max_score for d in detections
    ):
        return "score"
    return None


def class_map_of(samples: Sequence[Sample]) -> dict[int, str]:
    """The model's classes (index = class id), which every sample must agree on: one labeling job, one class map."""
    found: dict[tuple[str, ...], str] = {}
    for sample in samples:
        if sample.classes:
            found.setdefault(sample.classes, sample.sidecar)
    if not found:
        raise ManifestError("no sample names its model's classes (model.classes in the sidecar)")
    if len(found) > 1:
        (first, a), (second, b) = list(found.items())[:2]
        raise ManifestError(f"samples from models with different classes: {a} has {', '.join(first)} but {b} has "
                            f"{', '.join(second)}; filter by --device or date, one labeling job per class list")
    return dict(enumerate(next(iter(found))))


def manifest_line(sample: Sample, attribute: str, class_map: Mapping[int, str], created: str) -> dict[str, Any]:
    """The Ground Truth line for one sample: its detections as the ``attribute`` labels an adjustment job adjusts."""
    image = sample.data.get("image", {})
    width, height = int(image.get("width", 0)), int(image.get("height", 0))
    ids = {name: index for index, name in class_map.items()}
    annotations, objects = [], []
    for detection in sample.detections:
        label = str(detection.get("label"))
        if label not in ids:
            raise ManifestError(f"{sample.sidecar}: detection label {label!r} is not one of the model's classes")
        xmin, ymin, xmax, ymax = (float(v) for v in detection["box"])
        left, top = max(0, round(xmin)), max(0, round(ymin))
        annotations.append({"class_id": ids[label], "left": left, "top": top,
                            "width": max(1, min(width, round(xmax)) - left),
                            "height": max(1, min(height, round(ymax)) - top)})
        objects.append({"confidence": round(float(detection.get("score", 0.0)), 4)})
    used = sorted({a["class_id"] for a in annotations})
    return {
        "source-ref": sample.image,
        attribute: {"annotations": annotations, "image_size": [{"width": width, "height": height, "depth": 3}]},
        f"{attribute}-metadata": {
            "objects": objects,
            "class-map": {str(i): class_map[i] for i in used},
            "type": OBJECT_DETECTION_TYPE,
            "human-annotated": "no",
            "creation-date": created,
            "job-name": JOB_NAME,
        },
        "device": sample.device,
        "source": str(sample.data.get("source", "")),
        "captured-at": str(sample.data.get("captured_at", "")),
        "frame": sample.data.get("seq"),
        "sample-reasons": list(sample.data.get("reasons", [])),
        "model": {k: v for k, v in dict(sample.data.get("model", {})).items() if k != "classes"},
    }


def select(samples: Iterable[Sample], filters: Filters, attribute: str,
           created: str) -> tuple[list[dict[str, Any]], Summary]:
    """The manifest lines for the samples that pass ``filters``, and the summary of what was taken and why not."""
    summary = Summary()
    taken: list[Sample] = []
    for sample in samples:
        summary.found += 1
        reason = why_not(sample, filters)
        if reason is not None:
            summary.skipped[reason] += 1
            continue
        taken.append(sample)
    if not taken:
        return [], summary
    summary.class_map = class_map_of(taken)
    lines = []
    for sample in taken:
        lines.append(manifest_line(sample, attribute, summary.class_map, created))
        summary.taken += 1
        summary.devices[sample.device] += 1
        summary.reasons.update(str(reason) for reason in sample.data.get("reasons", []))
        summary.boxes.update(str(d.get("label")) for d in sample.detections)
    return lines, summary


# -- reading ----------------------------------------------------------------------------------------------------------


def list_tree(location: str) -> list[str]:
    """Every file under a local folder or an S3 prefix (recursively: the devices write ``{thing}/{date}/``)."""
    if storage.is_s3(location):
        bucket, key = storage.split_s3(location)
        prefix = key if not key or key.endswith("/") else key + "/"
        found: list[str] = []
        try:
            paginator = storage.s3_client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                found.extend(f"s3://{bucket}/{item['Key']}" for item in page.get("Contents", []))
        except storage._botocore_errors() as error:  # one line naming the prefix, as storage's own listings say it
            raise storage._s3_failure(location, error) from error
        return sorted(found)
    if not os.path.isdir(location):
        raise StorageError(f"{location}: no such directory")
    return sorted(os.path.join(root, name) for root, _, names in os.walk(location) for name in names)


def read_sidecars(location: str, summary_skips: collections.Counter[str]) -> list[Sample]:
    """The samples under ``location``: each ``.json`` sidecar of our schema whose image is there too. A sidecar
    without its image (an upload cut off) or that is not ours is skipped and counted, never fatal."""
    files = list_tree(location)
    present = set(files)
    samples = []
    for path in files:
        if not path.endswith(".json"):
            continue
        try:
            data = json.loads(storage.read_text(path))
        except ValueError:
            summary_skips["unreadable sidecar"] += 1
            continue
        if not isinstance(data, dict) or data.get("schema") != SAMPLE_SCHEMA:
            summary_skips["not a sample"] += 1
            continue
        image = storage.join(storage.parent(path), str(dict(data.get("image", {})).get("file", "")))
        if image not in present:
            summary_skips["image missing"] += 1
            continue
        samples.append(Sample(path, image, data))
    return samples


def from_samples(location: str, filters: Filters, attribute: str = DEFAULT_ATTRIBUTE,
                 now: Optional[dt.datetime] = None) -> tuple[list[str], Summary]:
    """Read the samples under ``location`` and build the manifest's lines (as text) and the summary."""
    skips: collections.Counter[str] = collections.Counter()
    samples = read_sidecars(location, skips)
    created = (now or dt.datetime.now(dt.timezone.utc)).replace(tzinfo=None).isoformat(timespec="microseconds")
    lines, summary = select(samples, filters, attribute, created)
    summary.found += sum(skips.values())
    summary.skipped.update(skips)
    return [dumps(line) for line in lines], summary
