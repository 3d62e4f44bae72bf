"""The options ``train --backend sagemaker`` and ``tune`` share: where the job runs, how big, how long, who pays.

Kept in one place so the two commands cannot drift apart, and so the job settings are built (and checked) once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
from pathlib import Path
from typing import Any, Optional

from cloud_training.errors import AwsError, HyperparameterError, OutputError
from edge_runtime.argtypes import int_at_least, number_in

positive_seconds = number_in(0.0, math.inf, low_open=True)


def add_job_options(parser: argparse.ArgumentParser, group_title: str) -> None:
    """Register the SageMaker job options on ``parser``."""
    group = parser.add_argument_group(group_title)
    group.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / your profile)")
    group.add_argument("--role", metavar="ARN", help="IAM role SageMaker assumes to read the data and write the model")
    group.add_argument("--output", metavar="S3_URI", help="S3 prefix for the job's output (model.tar.gz)")
    group.add_argument("--job-name", help="job name (default: ssd-<UTC timestamp>)")
    group.add_argument("--instance-type", default="ml.p3.2xlarge",
                       help="training instance type (default ml.p3.2xlarge)")
    group.add_argument("--instance-count", type=int_at_least(1), default=1, help="instances per job (default 1)")
    group.add_argument("--volume-size", type=int_at_least(1), default=50, metavar="GB",
                       help="EBS volume per instance in GB (default 50)")
    group.add_argument("--max-runtime", type=int_at_least(1), default=86400, metavar="SECONDS",
                       help="stop the job after this long (default 86400)")
    group.add_argument("--spot", action="store_true", help="managed spot training (cheaper; may wait for capacity)")
    group.add_argument("--spot-max-wait", type=int_at_least(1), metavar="SECONDS",
                       help="with --spot: runtime plus time waiting for spot capacity (default 2 x --max-runtime)")
    group.add_argument("--checkpoint-s3", metavar="S3_URI", help="with --spot: where the job keeps checkpoints")
    group.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag for the job (repeat)")
    group.add_argument("--model-channel", metavar="S3_URI",
                       help="incremental training: start from this model.tar.gz of an earlier job (the algorithm's "
                            "'model' channel; keep its num_classes, base_network and image_shape)")
    group.add_argument("--wait", action="store_true",
                       help="follow the job to its end, print validation:mAP and download model.tar.gz to --out")
    group.add_argument("--poll-interval", type=positive_seconds, default=30.0, metavar="SECONDS",
                       help="with --wait: seconds between status checks (default 30)")
    group.add_argument("--wait-timeout", type=positive_seconds, default=172800.0, metavar="SECONDS",
                       help="with --wait: give up waiting after this long; the job goes on (default 172800)")
    group.add_argument("--dry-run", action="store_true",
                       help="print the request and exit without calling SageMaker")


def parse_tags(words: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key.strip():
            raise AwsError(f"--tag expects KEY=VALUE (got {word!r})")
        tags[key.strip()] = value.strip()
    return tags


def default_job_name(now: Optional[dt.datetime] = None) -> str:
    """``ssd-20240131-120000``: unique per second, sortable, within the 32 characters tuning jobs allow."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"ssd-{now:%Y%m%d-%H%M%S}"


def require(args: argparse.Namespace, *names: str) -> None:
    """Options argparse cannot mark required because only one backend needs them."""
    for name in names:
        if getattr(args, name.lstrip("-").replace("-", "_")) is None:
            raise AwsError(f"{name} is required with SageMaker")


def job_settings(args: argparse.Namespace, facts: Any, image: str) -> Any:
    """The job settings from the options and what the manifests told us."""
    from cloud_training.aws.sagemaker_jobs import JobSettings

    return JobSettings(
        train_manifest=facts.train, validation_manifest=facts.validation, label_attribute=facts.label_attribute,
        output_path=args.output, role_arn=args.role, image=image, instance_type=args.instance_type,
        instance_count=args.instance_count, volume_size_gb=args.volume_size, max_runtime_s=args.max_runtime,
        spot=args.spot, max_wait_s=args.spot_max_wait, checkpoint_uri=args.checkpoint_s3, tags=parse_tags(args.tag),
        model_uri=args.model_channel,
    )


ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
COUNTED_AT_SUBMIT = "<counted from --train when submitted>"


def preview_facts(args: argparse.Namespace, error: Exception) -> Any:
    """``--dry-run`` without AWS credentials: the request can still be previewed, built from the flags alone.

    The preflight's S3 reads (manifest lines, image buckets and their regions) could not run (``error``), so it says
    so on stderr, and what only the manifests tell stays a placeholder (the label attribute unless --label-attribute,
    the count unless num_training_samples is given). Without --dry-run the error stands.
    """
    import logging

    from cloud_training.preflight import ManifestFacts

    if not args.dry_run:
        raise error
    logging.getLogger("cloud_training").warning(
        "no AWS credentials: --dry-run prints the request built from the flags alone; the preflight's S3 checks"
        " (manifest lines, image buckets and regions) run once credentials are configured")
    return ManifestFacts(args.train[0], args.validation[0], args.label_attribute or "<label attribute of --train>", 0)


def split_manifest_words(args: argparse.Namespace) -> None:
    """``--validation B num_classes=2`` gives argparse's ``nargs="+"`` every word up to the next option, so the
    hyperparameters would be read as manifests. A ``name=value`` word is never a manifest: move those back to the
    hyperparameters, in the order given."""
    moved: list[str] = []
    for option in ("train", "validation"):
        words = getattr(args, option, None) or []
        kept = [word for word in words if not ASSIGNMENT.match(word)]
        moved += [word for word in words if ASSIGNMENT.match(word)]
        if words and not kept:
            raise HyperparameterError(f"--{option} needs a manifest before the name=value words "
                                      f"(got {' '.join(words)})")
        setattr(args, option, kept)
    args.assignments = moved + list(args.assignments)


def check_wait_target(args: argparse.Namespace) -> None:
    """``--wait --out DIR`` downloads model.tar.gz into DIR: refuse, before the job is paid for, to replace a
    model that is already there (unless --force)."""
    out: Optional[Path] = args.out
    if not args.wait or out is None or args.force:
        return
    if (out / "model.tar.gz").exists():
        raise OutputError(f"--out {out}: already holds model.tar.gz (a previous run); choose another --out, or "
                          "--force to replace it")
