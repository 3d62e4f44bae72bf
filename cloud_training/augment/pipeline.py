"""``augment``: apply the offline transforms to every line of a (train) manifest and write images and manifest.

Nothing appears half-done: new images are encoded into a local staging folder first, so an unreadable image stops the
run before anything is written; then the images are moved or uploaded, and the manifest (which points at them) is
written last, so a reader of the manifest always finds its images.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from cloud_training import storage
from cloud_training.augment.transforms import (
    SUFFIXES,
    TRANSFORMS,
    corners_from_ground_truth,
    ground_truth_from_corners,
)
from cloud_training.errors import ManifestError
from cloud_training.manifest import io
from cloud_training.manifest.prepare import Invalid
from cloud_training.manifest.records import SOURCE_REF, Record, dumps
from cloud_training.progress import progress

JPEG_QUALITY = 95


@dataclass(frozen=True)
class AugmentOptions:
    """What ``augment`` was asked to do (the CLI flags, typed)."""

    manifest: str
    out: str
    images_out: str | None = None
    transforms: tuple[str, ...] = tuple(TRANSFORMS)
    label_attribute: str | None = None
    skip_invalid: bool = False
    force: bool = False


@dataclass
class AugmentResult:
    """Counts for the summary, also written as ``<out stem>.report.json`` beside the output manifest."""

    report: dict[str, Any]
    outputs: list[str] = field(default_factory=list)


def is_validation(location: str) -> bool:
    """Validation manifests are recognised by name (``prepare`` writes ``validation.manifest``)."""
    return "validation" in storage.basename(location).lower()


def report_location(out: str) -> str:
    """``…/train-augmented.manifest`` → ``…/train-augmented.report.json``."""
    name = storage.basename(out)
    stem = name[: -len(io.MANIFEST_SUFFIX)] if name.endswith(io.MANIFEST_SUFFIX) else name
    return storage.join(storage.parent(out), f"{stem}.report.json")


def _target(record: Record, suffix: str, images_out: str | None) -> str:
    name = storage.basename(record.resolved_ref)
    stem, dot, extension = name.rpartition(".")
    new_name = f"{stem}_{suffix}.{extension}" if dot else f"{name}_{suffix}"
    return storage.join(images_out if images_out else storage.parent(record.resolved_ref), new_name)


def _encode(image: Any, target: str, where: str) -> bytes:
    import cv2

    extension = os.path.splitext(storage.basename(target))[1].lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if extension in (".jpg", ".jpeg") else []
    ok, buffer = cv2.imencode(extension, image, params)
    if not ok:
        raise ManifestError(f"{where}: cannot encode an image as {extension}")
    data: bytes = buffer.tobytes()
    return data


def augmented_line(record: Record, name: str, target: str, out: str, image: Any) -> tuple[dict[str, Any], Any]:
    """The transformed image and the manifest line for it: same metadata, moved boxes, new size and source-ref."""
    annotations = record.data[record.label_attribute]["annotations"]
    integers = all(isinstance(a[k], int) for a in annotations for k in ("left", "top", "width", "height"))
    new_image, corners = TRANSFORMS[name](image, corners_from_ground_truth(annotations))
    data = copy.deepcopy(record.data)
    data[SOURCE_REF] = storage.reference(target, out)
    label = data[record.label_attribute]
    for annotation, moved in zip(label["annotations"], ground_truth_from_corners(corners, integers)):
        annotation.update(moved)
    height, width = new_image.shape[:2]
    label["image_size"][0]["width"] = int(width)
    label["image_size"][0]["height"] = int(height)
    return data, new_image


def augment(options: AugmentOptions) -> AugmentResult:
    """Write the augmented images and a manifest listing each original line followed by its transformed copies."""
    if is_validation(options.manifest):
        raise ManifestError(
            f"{options.manifest}: looks like a validation manifest; augment only the train split "
            "(augmented validation data would inflate the validation mAP)"
        )
    if not options.transforms:
        raise ManifestError("no transforms to apply")
    report_target = report_location(options.out)
    io.check_writable([options.out, report_target], options.force)
    records, invalid, lines_read = io.read_records([options.manifest], options.label_attribute, options.skip_invalid)

    lines: list[str] = []
    staged: list[tuple[str, str]] = []
    seen_targets: dict[str, str] = {}
    augmented = 0
    with tempfile.TemporaryDirectory(prefix="cloud-training-augment-") as staging:
        for record in progress(records, "augmenting", unit="img"):
            try:
                image = io.load_image(record)
            except ManifestError as error:
                if not options.skip_invalid:
                    raise
                invalid.append(Invalid(record.where, str(error)[len(record.where) + 2 :]))
                continue
            record_lines = [dumps(io.output_line_data(record, options.out))]
            for name in options.transforms:
                target = _target(record, SUFFIXES[name], options.images_out)
                if target in seen_targets:
                    raise ManifestError(
                        f"{record.where}: {target} would also be written for {seen_targets[target]} "
                        "(two images with the same file name; write them beside their originals instead)"
                    )
                seen_targets[target] = record.where
                data, new_image = augmented_line(record, name, target, options.out, image)
                local = os.path.join(staging, f"{len(staged):08d}")
                with open(local, "wb") as stream:
                    stream.write(_encode(new_image, target, record.where))
                staged.append((local, target))
                record_lines.append(dumps(data))
            lines.extend(record_lines)
            augmented += 1
        for local, target in progress(staged, "writing images", unit="img"):
            storage.put_file(local, target)

    report: dict[str, Any] = {
        "manifest": options.manifest,
        "out": options.out,
        "transforms": list(options.transforms),
        "read": lines_read,
        "invalid": len(invalid),
        "augmented": augmented,
        "images_written": len(staged),
        "lines_written": len(lines),
        "invalid_lines": [{"where": item.where, "problem": item.problem} for item in invalid],
    }
    io.write_outputs(
        {
            options.out: "".join(line + "\n" for line in lines).encode("utf-8"),
            report_target: (json.dumps(report, indent=2) + "\n").encode("utf-8"),
        }
    )
    return AugmentResult(report, outputs=[options.out, report_target])
