"""``cloud-training tune``: SageMaker automatic model tuning of the built-in algorithm, maximising validation:mAP."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cloud_training.commands.sagemaker_options import add_job_options
from edge_runtime.argtypes import int_at_least

EPILOG = """\
example:
  cloud-training tune --train s3://B/prepared/train.manifest --validation s3://B/prepared/validation.manifest \\
      --output s3://B/tuning/ --role arn:aws:iam::123456789012:role/SM --max-jobs 12 --parallel-jobs 3 \\
      --range learning_rate=0.0001:0.05:log --range mini_batch_size=8:32 --range momentum=0.8:0.99 \\
      --range optimizer=sgd,adam --wait --out runs/tuned base_network=resnet-50 num_classes=2 epochs=30

Ranges: name=min:max[:auto|linear|log|reverse-log] for learning_rate, momentum, weight_decay (continuous) and
mini_batch_size (integer); name=a,b,.. for optimizer, or any of them as listed values (learning_rate=0.001,0.01).
These are the hyperparameters SageMaker documents as tunable for object detection; each bound is checked against
the algorithm's documented range (momentum and weight_decay: the tuning page's 0.0..0.999). One --range per
hyperparameter; --strategy Grid takes listed values only. name=value words are fixed for every training job
(num_training_samples is counted from the training manifest, and a given one must equal it); the same preflight as
train's runs first (see train --help). --wait follows the tuning job, names the best training job and its
validation:mAP, and downloads its model.tar.gz to --out.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="SageMaker automatic model tuning of the SSD (objective validation:mAP, maximised)",
        description="Tune the SageMaker object detection algorithm's hyperparameters on Ground Truth manifests.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--train", nargs="+", required=True, metavar="S3_MANIFEST", help="training manifest (s3://)")
    parser.add_argument("--validation", nargs="+", required=True, metavar="S3_MANIFEST",
                        help="validation manifest (s3://); the objective is measured on it")
    parser.add_argument("--range", action="append", default=[], dest="ranges", metavar="NAME=SPEC",
                        help="a tuned hyperparameter (repeat): learning_rate=0.0001:0.1:log, optimizer=sgd,adam")
    parser.add_argument("--max-jobs", type=int_at_least(1), default=10, help="training jobs in total (default 10)")
    parser.add_argument("--parallel-jobs", type=int_at_least(1), default=2, help="training jobs at once (default 2)")
    parser.add_argument("--strategy", choices=["Bayesian", "Random", "Hyperband", "Grid"], default="Bayesian",
                        help="search strategy (default Bayesian)")
    parser.add_argument("--label-attribute", help="the manifests' label attribute (default: detected)")
    parser.add_argument("--hyperparameters", type=Path, metavar="FILE", help="JSON object of fixed hyperparameters")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where --wait downloads the best model.tar.gz")
    parser.add_argument("--force", action="store_true", help="with --wait: replace a model.tar.gz already in --out")
    parser.add_argument("assignments", nargs="*", metavar="name=value", help="fixed hyperparameters")
    add_job_options(parser, "the training jobs")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cloud_training import preflight
    from cloud_training.aws import sagemaker_jobs as jobs
    from cloud_training.aws import session
    from cloud_training.commands.sagemaker_options import (
        COUNTED_AT_SUBMIT,
        check_wait_target,
        default_job_name,
        job_settings,
        preview_facts,
        require,
        split_manifest_words,
    )
    from cloud_training.commands.train import raw_hyperparameters
    from cloud_training.errors import CredentialsError
    from cloud_training.training import remote

    split_manifest_words(args)
    require(args, "--role", "--output")
    if args.parallel_jobs > args.max_jobs:  # a flag mistake: refused before any manifest read or AWS call
        from cloud_training.errors import AwsError

        raise AwsError(f"--parallel-jobs ({args.parallel_jobs}) exceeds --max-jobs ({args.max_jobs})")
    check_wait_target(args)
    ranges = [remote.parse_range(text) for text in args.ranges]
    preflight.check_ranges(ranges, args.strategy)
    raw = raw_hyperparameters(args)
    # every fixed value against the table (the tuned ones were checked as ranges)
    remote.sagemaker_hyperparameters({"num_training_samples": "1", **raw})
    region = session.resolve_region(args.region)
    image = jobs.image_uri(region)
    preflight.check_before_reading(args.train, args.validation, raw, lambda facts: job_settings(args, facts, image))
    try:
        facts, _ = preflight.check_job(args.train, args.validation, args.label_attribute, raw, region,
                                       model_uri=args.model_channel)
    except CredentialsError as error:  # --dry-run previews the request without the S3 reads
        facts = preview_facts(args, error)
    static = {name: str(value).strip() for name, value in raw.items() if not name.startswith("_")}
    static.setdefault("num_training_samples", COUNTED_AT_SUBMIT)
    name = args.job_name or default_job_name()
    settings = job_settings(args, facts, jobs.image_uri(region))
    request = jobs.tuning_request(name, static, ranges, settings, args.max_jobs, args.parallel_jobs, args.strategy)
    if args.dry_run:
        remote.print_request(request)
        return 0
    client = session.client("sagemaker", region)
    arn = jobs.create_tuning_job(client, request)
    print(f"tuning job {name} created: {arn}")
    if args.wait:
        remote.finish_tuning(client, name, args.out, print, args.poll_interval, args.wait_timeout)
    else:
        print(f"follow it with: aws sagemaker describe-hyper-parameter-tuning-job "
              f"--hyper-parameter-tuning-job-name {name} --region {region}")
    return 0
