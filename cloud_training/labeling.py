"""The preflight of ``cloud-training label``: what a Ground Truth adjustment job would fail on (or silently get
wrong) once it runs, refused before any SageMaker call, each in one line naming the flag or the manifest line.

- names: the job name and the label attribute by the API's patterns; the label attribute is not the one the job
  adjusts (the adjustment guide requires a different one), does not end with ``-metadata`` and is not ``-ref``;
- ARNs: an IAM role ARN; a work team ARN in the job's region; a region with Ground Truth's adjustment Lambdas;
- the class list: at least one class, no duplicates, and every line's ``class-map`` names and ids agree with it
  (the labelers' choices are the class list; a box whose class is not in it could not be kept);
- the manifest: each line has ``source-ref`` as an ``s3://`` URI and the adjusted attribute's labels, at most 100 KB
  (Ground Truth's line limit); every bucket (images, manifest, output) in the job's region.

The checks are pure functions; :func:`check` reads the manifest and asks S3 for the buckets' regions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from cloud_training import storage
from cloud_training.aws.groundtruth import LAMBDA_ACCOUNTS
from cloud_training.errors import PreflightError
from cloud_training.manifest.records import Record

NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
ATTRIBUTE_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}")
ROLE_PATTERN = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
WORKTEAM_PATTERN = re.compile(r"arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]*):[0-9]{12}:workteam/.+")
MAX_LINE_BYTES = 100 * 1024  # "The manifest ... each line ... up to 100 KB" (Ground Truth input data limits)


def check_names(job_name: str, label_attribute: str, adjusted_attribute: str) -> None:
    if not NAME_PATTERN.fullmatch(job_name):
        raise PreflightError(f"--job-name {job_name!r}: 1 to 63 letters, digits and hyphens, starting and ending "
                             "with a letter or digit")
    if not ATTRIBUTE_PATTERN.fullmatch(label_attribute) or label_attribute.endswith(("-metadata", "-ref")):
        raise PreflightError(f"--label-attribute {label_attribute!r}: letters, digits and hyphens, not ending in "
                             "-metadata or -ref")
    if label_attribute == adjusted_attribute:
        raise PreflightError(f"--label-attribute {label_attribute}: is the attribute the job adjusts; an adjustment "
                             f"job writes under another name (e.g. {adjusted_attribute}-adjusted)")


def check_arns(role_arn: str, workteam_arn: str, region: str) -> None:
    if region not in LAMBDA_ACCOUNTS:
        raise PreflightError(f"--region {region}: Ground Truth has no built-in adjustment Lambdas there; use one of "
                             f"{', '.join(sorted(LAMBDA_ACCOUNTS))}")
    if not ROLE_PATTERN.fullmatch(role_arn):
        raise PreflightError(f"--role-arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    match = WORKTEAM_PATTERN.fullmatch(workteam_arn)
    if not match:
        raise PreflightError(f"--workteam-arn {workteam_arn!r} is not a work team ARN "
                             "(arn:aws:sagemaker:REGION:ACCOUNT:workteam/private-crowd/NAME)")
    if match.group(1) != region:
        raise PreflightError(f"--workteam-arn is in {match.group(1)}, not in the job's region {region}")


def check_classes(classes: Sequence[str]) -> None:
    if not classes:
        raise PreflightError("no classes: give --classes or keep label-categories.json beside the manifest")
    seen = set()
    for name in classes:
        if not name.strip():
            raise PreflightError("--classes: an empty class name")
        if name in seen:
            raise PreflightError(f"--classes: {name!r} is given twice; each label category must be unique")
        seen.add(name)


def check_lines(records: Sequence[Record], raw_sizes: Mapping[str, int], classes: Sequence[str]) -> set[str]:
    """Per line: an s3:// source-ref, its size, class ids and names that agree with ``classes``. The buckets."""
    buckets = set()
    for record in records:
        if not storage.is_s3(record.source_ref):
            raise PreflightError(f"{record.where}: source-ref {record.source_ref!r} is not an s3:// URI; the "
                                 "labelers' browsers load each image from S3")
        buckets.add(storage.split_s3(record.source_ref)[0])
        if raw_sizes.get(record.where, 0) > MAX_LINE_BYTES:
            raise PreflightError(f"{record.where}: the line is {raw_sizes[record.where]} bytes; Ground Truth takes "
                                 f"lines up to {MAX_LINE_BYTES}")
        class_map = record.metadata.get("class-map") or {}
        for key, name in class_map.items():
            index = int(key) if str(key).isdigit() else -1
            if not 0 <= index < len(classes) or classes[index] != name:
                raise PreflightError(f"{record.where}: class-map {key}={name!r} disagrees with the class list "
                                     f"({', '.join(f'{i}={n}' for i, n in enumerate(classes))})")
        for box in record.boxes:
            if box.class_id >= len(classes):
                raise PreflightError(f"{record.where}: a box of class_id {box.class_id}, but the class list has "
                                     f"{len(classes)} classes")
    return buckets


def check(manifest_uri: str, output_uri: str, attribute: str, classes: Sequence[str], region: str,
          bucket_region: Callable[[str], str] = storage.bucket_region) -> list[Record]:
    """Read the manifest and run the data checks; the records."""
    from cloud_training.manifest.io import read_records

    for option, uri in (("MANIFEST", manifest_uri), ("--output", output_uri)):
        if not storage.is_s3(uri):
            raise PreflightError(f"{option} {uri}: Ground Truth reads and writes S3; give an s3:// URI")
    records, _, _ = read_records([manifest_uri], attribute, skip_invalid=False)
    if not records:
        raise PreflightError(f"{manifest_uri}: no lines to label")
    text = storage.read_text(manifest_uri).splitlines()
    sizes = {f"{manifest_uri}:{number}": len(line.encode()) for number, line in enumerate(text, start=1)}
    where: dict[str, str] = {}
    for record in records:
        where.setdefault(storage.split_s3(record.source_ref)[0] if storage.is_s3(record.source_ref) else "",
                         record.where)
    buckets = check_lines(records, sizes, classes)
    first = {bucket: where.get(bucket, bucket) for bucket in buckets}
    for option, uri in (("MANIFEST", manifest_uri), ("--output", output_uri)):
        first.setdefault(storage.split_s3(uri)[0], f"{option} {uri}")
    for bucket in sorted(first):
        found = bucket_region(bucket)
        if found != region:
            raise PreflightError(f"{first[bucket]}: bucket {bucket} is in {found}, not in the job's region "
                                 f"{region}; copy the data there or pass --region {found}")
    return records
