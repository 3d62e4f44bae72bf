"""What several Ground Truth jobs over the same images mean together: which label is newest, which attribute holds
the labels in each job, what a verification or adjustment job decided. Pure functions of records; no I/O.

Why: people label in several jobs, then relabel, verify ("is this box right?") and adjust ("fix these boxes") in
chained jobs whose output manifests repeat the earlier labels. A file-name order, one label attribute for all jobs, or
ignoring verdicts would each silently train on labels somebody already corrected.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from cloud_training import storage
from cloud_training.errors import ManifestError
from cloud_training.manifest.records import OBJECT_DETECTION_TYPE, Record

VERIFICATION_TYPE = "groundtruth/label-verification"
ADJUSTMENT_STATUS = "adjustment-status"


def _parse_date(value: object) -> Optional[dt.datetime]:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=None) if parsed.tzinfo is None else parsed.astimezone(dt.timezone.utc).replace(
        tzinfo=None)


def creation_date(record: Record) -> Optional[dt.datetime]:
    """When this line's newest decision was made: the latest ``creation-date`` of any of its ``*-metadata``
    (a verification or adjustment job adds its own metadata to the labels it repeats)."""
    dates = [
        _parse_date(value.get("creation-date"))
        for key, value in record.data.items()
        if key.endswith("-metadata") and isinstance(value, dict)
    ]
    found = [date for date in dates if date is not None]
    return max(found) if found else None


def newer(challenger: Record, holder: Record) -> tuple[bool, str]:
    """Whether ``challenger`` (given later) replaces ``holder`` for the same image, and by which rule: the newer
    creation-date wins; without two dates to compare, or with equal dates, the one given later."""
    late, early = creation_date(challenger), creation_date(holder)
    if late is not None and early is not None and late != early:
        return late > early, "newer creation-date"
    return True, "later in the order given"


@dataclass(frozen=True)
class JobSummary:
    """One input manifest as report.json lists it: the jobs in the order their labels date from."""

    manifest: str
    job_names: tuple[str, ...]
    first_created: Optional[str]
    last_created: Optional[str]
    lines: int


def summarize_jobs(locations: Sequence[str], records: Iterable[Record]) -> list[JobSummary]:
    """Each manifest with its job names and date range, ordered by first creation-date, then by the order given."""
    by_manifest: dict[str, list[Record]] = {location: [] for location in locations}
    for record in records:
        by_manifest.setdefault(record.manifest, []).append(record)
    summaries = []
    for location, items in by_manifest.items():
        dates = sorted(date for date in (creation_date(item) for item in items) if date is not None)
        names = sorted({str(item.metadata.get("job-name")) for item in items if item.metadata.get("job-name")})
        summaries.append(JobSummary(location, tuple(names), dates[0].isoformat() if dates else None,
                                    dates[-1].isoformat() if dates else None, len(items)))
    order = {location: index for index, location in enumerate(by_manifest)}
    return sorted(summaries, key=lambda s: (s.first_created is None, s.first_created or "", order[s.manifest]))


# -- label attributes per job ---------------------------------------------------------------------------------------


def parse_attribute_options(values: Sequence[str]) -> tuple[Optional[str], dict[str, str]]:
    """``--label-attribute`` words: at most one plain NAME (every job's, and the output's), any number of
    ``JOB=ATTR`` (that job's attribute; the output then uses the plain NAME or the first job's)."""
    plain: list[str] = []
    per_job: dict[str, str] = {}
    for value in values:
        job, sep, attribute = value.partition("=")
        if not sep:
            plain.append(value.strip())
            continue
        if not job.strip() or not attribute.strip():
            raise ManifestError(f"--label-attribute {value!r}: expected NAME or JOB=NAME")
        per_job[job.strip()] = attribute.strip()
    if len(plain) > 1:
        raise ManifestError(f"--label-attribute: one plain NAME at most (got {', '.join(plain)}); "
                            "give other jobs' attributes as JOB=NAME")
    return (plain[0] if plain else None), per_job


def _job_keys(location: str) -> set[str]:
    name = storage.basename(location)
    return {location, name, name.removesuffix(".manifest"), name.removesuffix(".output.manifest")}


def attributes_by_manifest(locations: Sequence[str], default: Optional[str],
                           per_job: Mapping[str, str]) -> dict[str, Optional[str]]:
    """The label attribute to read each manifest with (None: detect it from the metadata ``type``, per job).
    ``JOB`` is a manifest as given, its file name, or its file name without ``.manifest``/``.output.manifest``."""
    result: dict[str, Optional[str]] = {location: default for location in locations}
    for job, attribute in per_job.items():
        matched = [location for location in locations if job in _job_keys(location)]
        if not matched:
            raise ManifestError(f"--label-attribute {job}={attribute}: no input manifest is {job!r}")
        for location in matched:
            result[location] = attribute
    return result


def _other_labels(record: Record) -> list[str]:
    """The line's object-detection attributes other than the one it was read with."""
    return [
        key for key, value in record.data.items()
        if key != record.label_attribute and isinstance(meta := record.data.get(f"{key}-metadata"), dict)
        and meta.get("type") == OBJECT_DETECTION_TYPE and isinstance(value, dict)
    ]


def output_attribute(record: Record) -> str:
    """The attribute a job's labels are written under: its own, or for an adjustment job's line the attribute of
    the labels it adjusted (so adjusting keeps the name the other jobs and the training commands use)."""
    if ADJUSTMENT_STATUS in record.metadata:
        others = _other_labels(record)
        if len(others) == 1:
            return others[0]
    return record.label_attribute


def rename_attribute(record: Record, name: str) -> Record:
    """The record with its labels under ``name`` (and ``name-metadata``), key order kept, so every output line has
    the one attribute SageMaker's AttributeNames lists. Labels already under ``name`` that this job superseded (an
    adjustment job's line repeats the original) are dropped."""
    source = record.label_attribute
    if source == name:
        return record
    renamed: dict[str, Any] = {}
    for key, value in record.data.items():
        if key in (name, f"{name}-metadata"):
            continue
        if key == source:
            renamed[name] = value
        elif key == f"{source}-metadata":
            renamed[f"{name}-metadata"] = value
        else:
            renamed[key] = value
    return dataclasses.replace(record, data=renamed, label_attribute=name)


# -- verification and adjustment jobs -------------------------------------------------------------------------------


def verdict(record: Record) -> Optional[tuple[str, str]]:
    """``(attribute, class-name)`` of the line's label verification, if a verification job saw it."""
    for key, value in record.data.items():
        if key.endswith("-metadata") and isinstance(value, dict) and value.get("type") == VERIFICATION_TYPE:
            return key[: -len("-metadata")], str(value.get("class-name", ""))
    return None


@dataclass(frozen=True)
class Review:
    """What verification and adjustment jobs changed: images dropped by a verdict, lines whose boxes were adjusted,
    and boxes the adjusters removed."""

    kept: list[Record]
    rejected: list[tuple[Record, str]]
    adjusted: list[Record]
    boxes_removed: int


def boxes_removed(record: Record) -> int:
    """For an adjustment job's line (read before :func:`rename_attribute` drops the labels it superseded): how
    many boxes the adjusters removed."""
    if record.metadata.get(ADJUSTMENT_STATUS) != "adjusted":
        return 0
    for key in _other_labels(record):
        annotations = record.data[key].get("annotations")
        if isinstance(annotations, list):
            return max(0, len(annotations) - len(record.boxes))
    return 0


def apply_review(records: Sequence[Record], reject_verdicts: Sequence[str],
                 removed: Mapping[str, int] | None = None) -> Review:
    """Drop images a verification job rejected (verdicts named by ``--reject-verdict``) and count adjustments
    (``removed``: :func:`boxes_removed` of each line, by ``where``).

    The verdict names are the verification job's own labels ("bad", "Label is incorrect"...), so they are never
    guessed: verification output with no ``--reject-verdict`` is refused, naming the verdicts seen.
    """
    verdicts = {record.where: found for record in records if (found := verdict(record)) is not None}
    if verdicts and not reject_verdicts:
        seen = sorted({name for _, name in verdicts.values()})
        first = next(iter(verdicts))
        raise ManifestError(f"{first}: Ground Truth verification verdicts in the input ({', '.join(seen)}); name those "
                            "that reject an image with --reject-verdict NAME (repeat for several)")
    rejects = set(reject_verdicts)
    kept: list[Record] = []
    rejected: list[tuple[Record, str]] = []
    adjusted: list[Record] = []
    total_removed = 0
    for record in records:
        found = verdicts.get(record.where)
        if found is not None and found[1] in rejects:
            rejected.append((record, found[1]))
            continue
        if record.metadata.get(ADJUSTMENT_STATUS) == "adjusted":
            adjusted.append(record)
            total_removed += (removed or {}).get(record.where, 0)
        kept.append(record)
    return Review(kept, rejected, adjusted, total_removed)
