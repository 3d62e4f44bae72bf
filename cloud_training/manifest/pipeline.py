"""``manifest prepare`` end to end: read → join → discard → (check images) → relabel → split → write, plus the report.

Everything is computed in memory first and written only at the end, so an error anywhere leaves no output behind.

``report.json`` counts lines: ``read`` (non-blank lines in all inputs) = ``invalid`` (skipped with --skip-invalid)
+ ``replaced`` (an earlier job's line for an image a later job labelled again) + ``discarded`` + ``dropped_empty``
+ ``kept``. ``empty`` is the number of joined, not discarded images without boxes (kept as negatives unless
--drop-empty). ``classes`` and ``splits`` count images and boxes per class; the ``*_lines`` lists say which lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from cloud_training import storage
from cloud_training.errors import ManifestError
from cloud_training.manifest import io
from cloud_training.manifest.prepare import (
    Invalid,
    Labelled,
    count,
    discard,
    join,
    parse_discard,
    relabel,
    split,
)
from cloud_training.manifest.records import Record, dumps

log = logging.getLogger(__name__)

TRAIN_NAME = "train.manifest"
VALIDATION_NAME = "validation.manifest"
REPORT_NAME = "report.json"


@dataclass(frozen=True)
class PrepareOptions:
    """What ``manifest prepare`` was asked to do (the CLI flags, typed)."""

    manifests: tuple[str, ...]
    out: str
    label_attribute: str | None = None
    discard: str | None = None
    class_from: tuple[str, ...] = ()
    class_map: dict[str, int] | None = None
    validation_fraction: float = 0.1
    seed: int = 0
    drop_empty: bool = False
    skip_invalid: bool = False
    check_images: bool = False
    force: bool = False


@dataclass
class PrepareResult:
    """The report (also written as ``report.json``), the two splits and where they were written."""

    report: dict[str, Any]
    train: list[Labelled]
    validation: list[Labelled]
    outputs: dict[str, str] = field(default_factory=dict)


def _check_images(records: Sequence[Record], skip_invalid: bool) -> tuple[list[Record], list[Invalid]]:
    readable: list[Record] = []
    invalid: list[Invalid] = []
    for record in tqdm(records, desc="checking images", unit="img", disable=None):
        try:
            io.load_image(record)
        except ManifestError as error:
            if not skip_invalid:
                raise
            invalid.append(Invalid(record.where, str(error)[len(record.where) + 2 :]))
            continue
        readable.append(record)
    return readable, invalid


def _manifest_text(items: Sequence[Labelled], target: str) -> bytes:
    return "".join(dumps(io.output_line_data(item.record, target)) + "\n" for item in items).encode("utf-8")


def prepare(options: PrepareOptions) -> PrepareResult:
    """Run the whole preparation and write ``train.manifest``, ``validation.manifest`` and ``report.json``."""
    if not 0.0 < options.validation_fraction < 1.0:
        raise ManifestError(f"--validation-fraction must be between 0 and 1 (got {options.validation_fraction})")
    targets = {name: storage.join(options.out, name) for name in (TRAIN_NAME, VALIDATION_NAME, REPORT_NAME)}
    io.check_writable(targets.values(), options.force)
    entries = parse_discard(storage.read_text(options.discard)) if options.discard else frozenset()

    locations = io.expand(options.manifests)
    records, invalid, lines_read = io.read_records(locations, options.label_attribute, options.skip_invalid)
    joined, replaced = join(records)
    kept, discarded, unmatched = discard(joined, entries)
    if options.check_images:
        kept, unreadable = _check_images(kept, options.skip_invalid)
        invalid += unreadable
    labelled, class_map, unknown = relabel(kept, options.class_from, options.class_map, options.skip_invalid)
    invalid += unknown
    empty = [item for item in labelled if not item.names]
    if options.drop_empty:
        labelled = [item for item in labelled if item.names]
    if not labelled:
        raise ManifestError("no usable lines left after joining, discarding and checking: nothing to split")
    train, validation = split(labelled, options.validation_fraction, options.seed)
    if replaced:
        first = replaced[0]
        log.warning(
            "%d image(s) are in more than one job; the later line wins (e.g. %s replaced %s); see report.json",
            len(replaced),
            first.kept,
            first.dropped,
        )
    if unmatched:
        log.warning("discard entries that match no image (typos?): %s", ", ".join(unmatched[:10]))

    report: dict[str, Any] = {
        "inputs": locations,
        "out": options.out,
        "label_attribute": labelled[0].record.label_attribute,
        "read": lines_read,
        "invalid": len(invalid),
        "replaced": len(replaced),
        "discarded": len(discarded),
        "empty": len(empty),
        "dropped_empty": len(empty) if options.drop_empty else 0,
        "kept": len(labelled),
        "class_map": {str(index): name for index, name in class_map.items()},
        "classes": count(labelled)["classes"],
        "splits": {"train": count(train), "validation": count(validation)},
        "options": {
            "discard": options.discard,
            "class_from": list(options.class_from),
            "validation_fraction": options.validation_fraction,
            "seed": options.seed,
            "drop_empty": options.drop_empty,
            "skip_invalid": options.skip_invalid,
            "check_images": options.check_images,
        },
        "replaced_lines": [
            {"source-ref": item.source_ref, "dropped": item.dropped, "kept": item.kept} for item in replaced
        ],
        "discarded_lines": [{"source-ref": item.source_ref, "where": item.where} for item in discarded],
        "discard_unmatched": unmatched,
        "invalid_lines": [{"where": item.where, "problem": item.problem} for item in invalid],
    }
    files = {
        targets[TRAIN_NAME]: _manifest_text(train, targets[TRAIN_NAME]),
        targets[VALIDATION_NAME]: _manifest_text(validation, targets[VALIDATION_NAME]),
        targets[REPORT_NAME]: (json.dumps(report, indent=2) + "\n").encode("utf-8"),
    }
    io.write_outputs(files)
    return PrepareResult(report, train, validation, outputs=targets)
