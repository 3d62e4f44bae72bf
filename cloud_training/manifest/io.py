"""Reading manifests and images from, and writing outputs to, local paths or S3, with the checks every command shares.

Kept apart from the pure steps so those can be tested with literal records, and so "nothing half-written" has one home:
:func:`write_outputs` checks every target first, then writes each file whole (temp + rename, or one S3 put).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from cloud_training import storage
from cloud_training.errors import ImageError, ManifestError, OutputError, StorageError
from cloud_training.manifest.prepare import Invalid
from cloud_training.manifest.records import SOURCE_REF, Record, iter_lines, parse_line

if TYPE_CHECKING:
    import numpy as np

MANIFEST_SUFFIX = ".manifest"


def expand(locations: Iterable[str]) -> list[str]:
    """Manifest files as given; a directory or an S3 prefix ending in ``/`` stands for its ``*.manifest`` files."""
    expanded: list[str] = []
    for location in locations:
        if storage.is_dir_like(location):
            found = storage.list_files(location, MANIFEST_SUFFIX)
            if not found:
                raise ManifestError(f"{location}: no *{MANIFEST_SUFFIX} files in it")
            expanded.extend(found)
        else:
            expanded.append(location)
    return expanded


def read_records(
    locations: Sequence[str], label_attribute: str | None, skip_invalid: bool,
    per_manifest: Mapping[str, str | None] | None = None,
) -> tuple[list[Record], list[Invalid], int]:
    """Every valid line of the manifests in order, the invalid ones (only with ``skip_invalid``) and the line count.

    All lines must use one label attribute, since SageMaker reads one name from every line (``AttributeNames``).
    With ``per_manifest`` (manifest -> its attribute, None to detect) that holds per manifest only: ``manifest
    prepare`` joins jobs whose attributes differ and writes them under one name.
    """
    records: list[Record] = []
    invalid: list[Invalid] = []
    lines_read = 0
    first: Record | None = None
    for location in locations:
        text = storage.read_text(location)
        attribute = per_manifest.get(location, label_attribute) if per_manifest is not None else label_attribute
        if per_manifest is not None:
            first = None
        for number, where, line in iter_lines(text, location):
            lines_read += 1
            try:
                record = parse_line(line, where, location, number, attribute)
                if first is not None and record.label_attribute != first.label_attribute:
                    raise ManifestError(
                        f"{where}: label attribute '{record.label_attribute}' differs from "
                        f"'{first.label_attribute}' at {first.where}; choose one with --label-attribute"
                    )
            except ManifestError as error:
                if not skip_invalid:
                    raise
                invalid.append(Invalid(where, str(error)[len(where) + 2 :]))
                continue
            first = first or record
            records.append(record)
    return records, invalid, lines_read


def load_image(record: Record) -> np.ndarray:
    """The record's image as an HxWx3 BGR array, checked against its ``image_size`` (a mismatch would silently
    misplace every box)."""
    import cv2
    import numpy as np

    try:
        data = storage.read_bytes(record.resolved_ref)
    except StorageError as error:
        raise ImageError(f"{record.where}: cannot read image: {error}") from None
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{record.where}: {record.resolved_ref} is not a readable image")
    height, width = image.shape[:2]
    if (width, height) != (record.width, record.height):
        raise ImageError(
            f"{record.where}: {record.resolved_ref} is {width}x{height} "
            f"but image_size says {record.width}x{record.height}"
        )
    result: np.ndarray = image
    return result


def output_line_data(record: Record, output_manifest: str) -> dict[str, object]:
    """The record's JSON with ``source-ref`` rewritten only if it was relative, so it still points at the image from
    the output manifest's location."""
    data = dict(record.data)
    ref = record.source_ref
    if not storage.is_s3(ref) and not os.path.isabs(ref):
        data[SOURCE_REF] = storage.reference(record.resolved_ref, output_manifest)
    return data


def check_writable(targets: Iterable[str], force: bool) -> None:
    """Refuse to replace existing outputs unless ``force``; called before any work is written."""
    if force:
        return
    for target in targets:
        if storage.exists(target):
            raise OutputError(f"{target}: already exists (pass --force to replace it)")


def write_outputs(files: dict[str, bytes]) -> None:
    """Write finished outputs, each one whole; the dict order is the write order (put the report last)."""
    for target, data in files.items():
        storage.write_bytes(target, data)
