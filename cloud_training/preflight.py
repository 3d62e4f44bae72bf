"""The preflight of ``train --backend sagemaker``, ``tune`` and their ``--dry-run``: everything a SageMaker job would
fail on after paid instances start, refused before any SageMaker call, each in one line naming the hyperparameter,
the manifest line or the flag.

What it checks (README "What the preflight checks" says the same):

- the channels: ``--train`` and ``--validation`` are two different objects, and no image is in both;
- every manifest line: class ids below ``num_classes``, no more boxes than ``label_width`` holds, a ``source-ref``
  that is an ``s3://`` URI in a bucket of the job's region (the instances stream the images from there);
- ``num_training_samples``: computed from the training manifest, and a given one must equal it (the algorithm's
  learning-rate schedule depends on it);
- ``lr_scheduler_step``: every step below ``epochs`` (a later step never happens);
- documented values only (``kv_store``: dist_sync or dist_async);
- the instance type: a GPU type of the algorithm's families; tags outside the reserved ``aws:`` prefix;
- tune: each hyperparameter tuned once, Grid only over categorical ranges, bounds per the tuning page.

The checks are pure functions of what was read (records, hyperparameters, names); :func:`check_job` reads the two
manifests (S3 or local, through :mod:`cloud_training.storage`) and asks S3 for each bucket's region, then runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from cloud_training import storage
from cloud_training.aws.sagemaker_jobs import ParameterRange
from cloud_training.errors import HyperparameterError, ManifestError, PreflightError
from cloud_training.manifest.records import Record
from cloud_training.training.hyperparameters import Hyperparameters, parse

# The algorithm trains on GPU instances only: "The object detection algorithm supports P2, P3, G4dn, and G5 GPU
# instance families" (EC2 Instance Recommendation for the Object Detection Algorithm,
# https://docs.aws.amazon.com/sagemaker/latest/dg/object-detection.html#object-detection-instances).
GPU_FAMILIES = ("p2", "p3", "p3dn", "g4dn", "g5")
# kv_store's documented values (https://docs.aws.amazon.com/sagemaker/latest/dg/object-detection-api-config.html);
# SageMaker itself records "device" in hyperparams.json, but that is not a value a request may send.
KV_STORE_VALUES = ("dist_sync", "dist_async")
RESERVED_TAG_PREFIX = "aws:"


@dataclass(frozen=True)
class ManifestFacts:
    """What the job request needs from the manifests: their one S3 object each, the label attribute, the count."""

    train: str
    validation: str
    label_attribute: str
    train_lines: int


# -- pure checks ---------------------------------------------------------------------------------------------------


def check_channels(train_uri: str, validation_uri: str) -> None:
    """SageMaker would happily train and validate on one object; the mAP would then measure memorisation."""
    if train_uri.rstrip("/") == validation_uri.rstrip("/"):
        raise PreflightError(f"--validation {validation_uri} is the --train manifest; give a separate validation "
                             "split (cloud-training manifest prepare writes both)")


def check_disjoint(train: Sequence[Record], validation: Sequence[Record]) -> None:
    """No image in both channels (the first shared one is named with both lines)."""
    in_train = {record.resolved_ref: record for record in train}
    for record in validation:
        if record.resolved_ref in in_train:
            raise PreflightError(f"{record.where}: image {record.source_ref} is also in the training manifest "
                                 f"({in_train[record.resolved_ref].where}); an image belongs to one split")


def check_class_ids(records: Iterable[Record], num_classes: int) -> None:
    """Every box's class_id in 0..num_classes-1: the algorithm's class head has num_classes outputs."""
    for record in records:
        for index, box in enumerate(record.boxes):
            if box.class_id >= num_classes:
                raise PreflightError(f"{record.where}: box {index + 1} has class_id {box.class_id} but "
                                     f"num_classes={num_classes} allows 0..{num_classes - 1}")


def check_box_counts(records: Iterable[Record], hp: Hyperparameters) -> None:
    """No image with more boxes than ``label_width`` holds (2 header values, then 5 per box)."""
    for record in records:
        if len(record.boxes) > hp.max_objects:
            raise PreflightError(f"{record.where}: {len(record.boxes)} boxes but label_width={hp.label_width} allows "
                                 f"{hp.max_objects}; raise label_width to at least {2 + 5 * len(record.boxes)}")


def check_sources(records: Iterable[Record]) -> set[str]:
    """Every ``source-ref`` written as an ``s3://`` URI: Pipe mode streams each image from exactly that URI and
    resolves nothing (a relative path works here, even inside an S3 manifest, and fails there). Returns the
    buckets."""
    buckets: set[str] = set()
    for record in records:
        if not storage.is_s3(record.source_ref):
            raise PreflightError(f"{record.where}: source-ref {record.source_ref!r} is not an s3:// URI; SageMaker "
                                 "streams images from S3 in Pipe mode and resolves no relative path")
        buckets.add(storage.split_s3(record.source_ref)[0])
    return buckets


def check_bucket_regions(regions: Mapping[str, str], region: str, where: Mapping[str, str]) -> None:
    """Each bucket in the job's region: the algorithm's channels read only from the job's region."""
    for bucket in sorted(regions):
        if regions[bucket] != region:
            raise PreflightError(f"{where.get(bucket, bucket)}: bucket {bucket} is in {regions[bucket]}, not in the "
                                 f"job's region {region}; copy the data there or pass --region {regions[bucket]}")


def check_sample_count(given: Optional[int], counted: int, train_uri: str) -> int:
    """num_training_samples as counted; a given value must agree, or the scheduler's epochs are wrong."""
    if given is not None and given != counted:
        raise PreflightError(f"num_training_samples={given} but {train_uri} has {counted} labelled lines; leave it "
                             "out (it is counted) or give the count")
    return counted


def check_schedule(hp: Hyperparameters) -> None:
    """Every lr_scheduler_step before the last epoch, or the step is silently never taken."""
    late = [step for step in hp.lr_scheduler_step if step >= hp.epochs]
    if late:
        raise PreflightError(f"lr_scheduler_step={','.join(map(str, hp.lr_scheduler_step))}: step "
                             f"{late[0]} is not below epochs={hp.epochs}")


def check_documented_values(raw: Mapping[str, object]) -> None:
    """Values the generic table accepts (for the local backend and SageMaker's own hyperparams.json) but a request
    may not send."""
    if "kv_store" in raw and str(raw["kv_store"]).strip() not in KV_STORE_VALUES:
        raise HyperparameterError(f"hyperparameters: kv_store must be one of {', '.join(KV_STORE_VALUES)} for "
                                  f"SageMaker (got {str(raw['kv_store']).strip()!r}); leave it out on one instance")


def check_instance_type(instance_type: str, known: Callable[[], Sequence[str]]) -> None:
    """A training instance type SageMaker knows, of a GPU family the algorithm runs on."""
    if instance_type not in known():
        raise PreflightError(f"--instance-type {instance_type!r} is not a SageMaker training instance type")
    family = instance_type.split(".")[1] if instance_type.count(".") == 2 else ""
    if family not in GPU_FAMILIES:
        raise PreflightError(f"--instance-type {instance_type}: the object detection algorithm trains on GPU "
                             f"instances only ({', '.join(f'ml.{f}.*' for f in GPU_FAMILIES)})")


def check_tags(tags: Mapping[str, str]) -> None:
    """Tag keys starting with ``aws:`` are AWS's own; CreateTrainingJob refuses them."""
    for key in tags:
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            raise PreflightError(f"--tag {key}: keys starting with 'aws:' are reserved for AWS")


def check_ranges(ranges: Sequence[ParameterRange], strategy: str) -> None:
    """Each hyperparameter tuned once (SageMaker would send one of two ranges, silently); Grid search enumerates
    values, so it takes categorical ranges only."""
    seen: set[str] = set()
    for item in ranges:
        if item.name in seen:
            raise PreflightError(f"--range {item.name}: given twice; tune each hyperparameter with one --range")
        seen.add(item.name)
    if strategy == "Grid":
        continuous = [item.name for item in ranges if item.kind != "Categorical"]
        if continuous:
            raise PreflightError(f"--strategy Grid takes categorical ranges only (a,b,c); --range {continuous[0]} "
                                 "is a min:max range: list its values, or use Bayesian or Random")


def check_records(train: Sequence[Record], validation: Sequence[Record], hp: Hyperparameters) -> set[str]:
    """The per-line checks over both channels; returns the image buckets."""
    for records in (train, validation):
        check_class_ids(records, hp.num_classes)
        check_box_counts(records, hp)
    check_disjoint(train, validation)
    return check_sources(train) | check_sources(validation)


# -- reading, then checking ------------------------------------------------------------------------------------------


def single_manifest(locations: Sequence[str], option: str) -> str:
    """SageMaker reads one augmented manifest object per channel: exactly one s3:// URI (join several with
    ``manifest prepare`` first)."""
    if len(locations) != 1 or storage.is_dir_like(locations[0]):
        raise ManifestError(f"{option}: SageMaker reads one manifest object per channel; give one s3:// file "
                            "(join several with 'cloud-training manifest prepare')")
    if not storage.is_s3(locations[0]):
        raise ManifestError(f"{option} {locations[0]}: SageMaker reads manifests from S3; upload it and pass its "
                            "s3:// URI")
    return locations[0]


def read_channel(uri: str, label_attribute: Optional[str]) -> list[Record]:
    from cloud_training.manifest.io import read_records

    records, _, _ = read_records([uri], label_attribute, skip_invalid=False)
    if not records:
        raise ManifestError(f"{uri}: no labelled lines")
    return records


def check_before_reading(
    train: Sequence[str],
    validation: Sequence[str],
    raw: Mapping[str, object],
    settings: Callable[[ManifestFacts], object],
) -> None:
    """Everything that needs neither a manifest nor an AWS call, first, so a wrong flag is refused even without
    credentials: the channels, documented values, the schedule against the epochs, and the job settings' own
    ``check()`` (URIs, role, instance type, tags, spot wait), built by ``settings`` from placeholder facts."""
    train_uri = single_manifest(train, "--train")
    validation_uri = single_manifest(validation, "--validation")
    check_channels(train_uri, validation_uri)
    check_documented_values(dict(raw))
    check_schedule(parse({"num_training_samples": "1", **{k: str(v) for k, v in raw.items()}}))
    built = settings(ManifestFacts(train_uri, validation_uri, "source-ref", 1))
    check = getattr(built, "check", None)
    if callable(check):
        check()


def check_job(
    train: Sequence[str],
    validation: Sequence[str],
    label_attribute: Optional[str],
    raw: dict[str, object],
    region: str,
    bucket_region: Callable[[str], str] = storage.bucket_region,
    model_uri: Optional[str] = None,
) -> tuple[ManifestFacts, Hyperparameters]:
    """Read both manifests and run every data check against ``raw`` (whose num_training_samples is filled in);
    with ``model_uri`` (incremental training) that object must exist, in the job's region too.

    ``raw`` must already have passed the hyperparameter table (so a typo costs no manifest read).
    """
    train_uri = single_manifest(train, "--train")
    validation_uri = single_manifest(validation, "--validation")
    check_channels(train_uri, validation_uri)
    check_documented_values(raw)
    train_records = read_channel(train_uri, label_attribute)
    attribute = train_records[0].label_attribute
    validation_records = read_channel(validation_uri, attribute)
    given = raw.get("num_training_samples")
    try:
        given_count = int(str(given)) if given is not None else None
    except ValueError:
        given_count = None  # the table reports it below
    raw["num_training_samples"] = str(check_sample_count(given_count, len(train_records), train_uri))
    hp = parse(raw)
    check_schedule(hp)
    buckets = check_records(train_records, validation_records, hp)
    first_line: dict[str, str] = {}
    for record in (*train_records, *validation_records):
        first_line.setdefault(storage.split_s3(record.source_ref)[0], record.where)
    sources = [(train_uri, "--train"), (validation_uri, "--validation")]
    if model_uri is not None:
        if not storage.is_s3(model_uri) or not model_uri.endswith(".tar.gz"):
            raise PreflightError(f"--model-channel must be the s3:// URI of a model.tar.gz (got {model_uri!r})")
        if not storage.exists(model_uri):
            raise PreflightError(f"--model-channel {model_uri}: no such object (the earlier job's "
                                 "ModelArtifacts.S3ModelArtifacts)")
        from cloud_training.model_channel import check_model_channel

        check_model_channel(model_uri, hp.to_strings())
        sources.append((model_uri, "--model-channel"))
    for uri, option in sources:
        bucket = storage.split_s3(uri)[0]
        buckets.add(bucket)
        first_line.setdefault(bucket, f"{option} {uri}")
    check_bucket_regions({bucket: bucket_region(bucket) for bucket in sorted(buckets)}, region, first_line)
    return ManifestFacts(train_uri, validation_uri, attribute, len(train_records)), hp
