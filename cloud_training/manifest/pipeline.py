"""``manifest prepare`` end to end: read → join → discard → review → (check images) → relabel → split → write.

Everything is computed in memory first and written only at the end, so an error anywhere leaves no output behind.

``report.json`` counts lines: ``read`` (non-blank lines in all inputs) = ``invalid`` (skipped with --skip-invalid)
+ ``replaced`` (a line for an image another job labelled more recently, or later in the order given) + ``discarded``
+ ``rejected`` (a verification job's verdict named by --reject-verdict) + ``dropped_empty`` + ``kept``. ``empty`` is
the number of joined, kept images without boxes (kept as negatives unless --drop-empty). ``jobs`` lists the inputs
in the order their labels date from; ``classes`` and ``splits`` count images and boxes per class; the ``*_lines``
lists say which lines (``replaced_lines`` with the rule that decided each conflict).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cloud_training import storage
from cloud_training.errors import ManifestError
from cloud_training.manifest import io, jobs
from cloud_training.manifest.prepare import (
    Invalid,
    Labelled,
    count,
    discard,
    join,
    parse_discard,
    relabel,
    split_three,
)
from cloud_training.manifest.records import Record, dumps
from cloud_training.progress import progress

log = logging.getLogger(__name__)

TRAIN_NAME = "train.manifest"
VALIDATION_NAME = "validation.manifest"
TEST_NAME = "test.manifest"
REPORT_NAME = "report.json"


@dataclass(frozen=True)
class PrepareOptions:
    """What ``manifest prepare`` was asked to do (the CLI flags, typed)."""

    manifests: tuple[str, ...]
    out: str
    label_attribute: str | None = None
    label_attributes: dict[str, str] = field(default_factory=dict)  # JOB -> its attribute (--label-attribute JOB=A)
    discard: str | None = None
    class_from: tuple[str, ...] = ()
    class_map: dict[str, int] | None = None
    validation_fraction: float = 0.1
    test_fraction: float = 0.0
    seed: int = 0
    drop_empty: bool = False
    skip_invalid: bool = False
    check_images: bool = False
    reject_verdicts: tuple[str, ...] = ()
    force: bool = False


@dataclass
class PrepareResult:
    """The report (also written as ``report.json``), the two splits and where they were written."""

    report: dict[str, Any]
    train: list[Labelled]
    validation: list[Labelled]
    outputs: dict[str, str] = field(default_factory=dict)
    test: list[Labelled] = field(default_factory=list)


def _check_images(records: Sequence[Record], skip_invalid: bool) -> tuple[list[Record], list[Invalid]]:
    readable: list[Record] = []
    invalid: list[Invalid] = []
    for record in progress(records, "checking images", unit="img"):  # a bar on a terminal, else lines in the log
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


def _read(options: PrepareOptions, locations: list[str]) -> tuple[list[Record], list[Invalid], int, dict[str, int]]:
    """Every job's lines, each job read with its own label attribute, all under one attribute afterwards; and the
    boxes adjustment jobs removed, by line (counted before the superseded labels are dropped)."""
    per_manifest = jobs.attributes_by_manifest(locations, options.label_attribute, options.label_attributes)
    records, invalid, lines_read = io.read_records(locations, options.label_attribute, options.skip_invalid,
                                                   per_manifest=per_manifest)
    removed = {record.where: jobs.boxes_removed(record) for record in records}
    if records:
        name = options.label_attribute or jobs.output_attribute(records[0])
        records = [jobs.rename_attribute(record, name) for record in records]
    return records, invalid, lines_read, removed


def prepare(options: PrepareOptions) -> PrepareResult:
    """Run the whole preparation and write ``train.manifest``, ``validation.manifest`` (``test.manifest``) and
    ``report.json``."""
    if not 0.0 < options.validation_fraction < 1.0:
        raise ManifestError(f"--validation-fraction must be between 0 and 1 (got {options.validation_fraction})")
    if not 0.0 <= options.test_fraction < 1.0:
        raise ManifestError(f"--test-fraction must be at least 0 and below 1 (got {options.test_fraction})")
    names = (TRAIN_NAME, VALIDATION_NAME, *((TEST_NAME,) if options.test_fraction > 0 else ()), REPORT_NAME)
    targets = {name: storage.join(options.out, name) for name in names}
    io.check_writable(targets.values(), options.force)
    entries = parse_discard(storage.read_text(options.discard)) if options.discard else frozenset()

    locations = io.expand(options.manifests)
    records, invalid, lines_read, removed = _read(options, locations)
    joined, replaced = join(records)
    kept, discarded, unmatched = discard(joined, entries)
    review = jobs.apply_review(kept, options.reject_verdicts, removed)
    kept = review.kept
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
    train, validation, test = split_three(labelled, options.validation_fraction, options.test_fraction, options.seed)
    if replaced:
        first = replaced[0]
        log.warning(
            "%d image(s) are in more than one job; the newer label wins (e.g. %s replaced %s: %s); see report.json",
            len(replaced),
            first.kept,
            first.dropped,
            first.rule,
        )
    if unmatched:
        log.warning("discard entries that match no image (typos?): %s", ", ".join(unmatched[:10]))

    splits = {"train": count(train), "validation": count(validation)}
    if options.test_fraction > 0:
        splits["test"] = count(test)
    report: dict[str, Any] = {
        "inputs": locations,
        "jobs": [dataclasses.asdict(summary) for summary in jobs.summarize_jobs(locations, records)],
        "out": options.out,
        "label_attribute": labelled[0].record.label_attribute,
        "read": lines_read,
        "invalid": len(invalid),
        "replaced": len(replaced),
        "discarded": len(discarded),
        "rejected": len(review.rejected),
        "empty": len(empty),
        "dropped_empty": len(empty) if options.drop_empty else 0,
        "kept": len(labelled),
        "adjusted": {"lines": len(review.adjusted), "boxes_removed": review.boxes_removed},
        "class_map": {str(index): name for index, name in class_map.items()},
        "classes": count(labelled)["classes"],
        "splits": splits,
        "options": {
            "label_attributes": dict(options.label_attributes),
            "discard": options.discard,
            "class_from": list(options.class_from),
            "validation_fraction": options.validation_fraction,
            "test_fraction": options.test_fraction,
            "seed": options.seed,
            "drop_empty": options.drop_empty,
            "skip_invalid": options.skip_invalid,
            "check_images": options.check_images,
            "reject_verdicts": list(options.reject_verdicts),
        },
        "replaced_lines": [
            {"source-ref": item.source_ref, "dropped": item.dropped, "kept": item.kept, "rule": item.rule}
            for item in replaced
        ],
        "discarded_lines": [{"source-ref": item.source_ref, "where": item.where} for item in discarded],
        "discard_unmatched": unmatched,
        "rejected_lines": [{"source-ref": item.source_ref, "where": item.where, "verdict": name}
                           for item, name in review.rejected],
        "invalid_lines": [{"where": item.where, "problem": item.problem} for item in invalid],
    }
    files = {
        targets[TRAIN_NAME]: _manifest_text(train, targets[TRAIN_NAME]),
        targets[VALIDATION_NAME]: _manifest_text(validation, targets[VALIDATION_NAME]),
    }
    if options.test_fraction > 0:
        files[targets[TEST_NAME]] = _manifest_text(test, targets[TEST_NAME])
    files[targets[REPORT_NAME]] = (json.dumps(report, indent=2) + "\n").encode("utf-8")
    io.write_outputs(files)
    return PrepareResult(report, train, validation, outputs=targets, test=test)
