"""``cloud-training train``: the SageMaker object detection algorithm's training, here with MXNet."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cloud_training.commands.sagemaker_options import add_job_options

EPILOG = """\
example:
  cloud-training train --backend local --train data/train.manifest --validation data/validation.manifest \\
      --out runs/boxes base_network=tiny-cnn num_classes=2 image_shape=256 epochs=30 use_pretrained_model=0

Hyperparameters are the SageMaker algorithm's (names, meanings, documented ranges), given as name=value words and/or a
JSON file (--hyperparameters; words win). num_training_samples defaults to the number of training images. The local
backend also accepts base_network=tiny-cnn, a small network that trains on a CPU in minutes.

DIR receives model.tar.gz (SageMaker's layout: model_algo_1-symbol.json, model_algo_1-0000.params, hyperparams.json;
the epoch with the best validation mAP), metrics.csv, metrics.png, lineage.json (data, hyperparameters, best
epoch: convert puts it in model.json) and checkpoints/ (one per epoch, for --resume, which keeps the --validation
manifests: the best epoch compares their mAPs).
Metric lines on stderr use the algorithm's format: '#quality_metric: host=algo-1, epoch=3, validation mAP <score>=(..)'.

SageMaker (the built-in algorithm, Pipe mode, one augmented manifest object per channel, images on S3):
  cloud-training train --backend sagemaker --train s3://B/prepared/train.manifest \\
      --validation s3://B/prepared/validation.manifest --output s3://B/jobs/ --role arn:aws:iam::123456789012:role/SM \\
      --instance-type ml.p3.2xlarge --wait --out runs/sm base_network=resnet-50 num_classes=2 mini_batch_size=16
Before any SageMaker call a preflight reads both manifests and asks S3 each bucket's region, and refuses (one line,
exit 2) what the job would fail on: class ids over num_classes, more boxes than label_width holds, source-refs not on
S3 in the job's region, train = validation or an image in both, a num_training_samples other than the count,
lr_scheduler_step not below epochs, a CPU instance type. --dry-run runs it, then prints the CreateTrainingJob request
(without AWS credentials it runs the checks that need no S3 read, says so, and still prints the request).
--wait follows the job, prints validation:mAP and downloads model.tar.gz to --out, ready for 'cloud-training convert'.
An --out holding a previous run is refused unless --resume (local) or --force.
--attach JOB follows a job started earlier (status, validation:mAP, model.tar.gz to --out) and starts nothing;
--model-channel s3://B/jobs/JOB/output/model.tar.gz trains incrementally from that job's model (its base_network and
num_classes must be this job's: checked in the preflight).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the SSD (locally with MXNet, same hyperparameters as SageMaker)",
        description="Train the SageMaker object detection algorithm's SSD on Ground Truth manifests.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=["local", "sagemaker"], default="local",
                        help="where to train: local = MXNet on this machine (default), sagemaker = the built-in "
                             "algorithm on SageMaker")
    parser.add_argument("--train", nargs="+", metavar="MANIFEST",
                        help="training manifest(s): local paths or s3:// URIs (required unless --attach)")
    parser.add_argument("--validation", nargs="+", metavar="MANIFEST",
                        help="validation manifest(s); never augmented (required unless --attach)")
    parser.add_argument("--attach", metavar="JOB_NAME",
                        help="follow an existing SageMaker training job instead of starting one: its status, "
                             "validation:mAP, and (with --out) its model.tar.gz")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output folder (local: required; sagemaker: where --wait downloads model.tar.gz)")
    parser.add_argument("--hyperparameters", type=Path, metavar="FILE",
                        help="JSON object of hyperparameters (string or number values), e.g. a hyperparams.json")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in DIR/checkpoints")
    parser.add_argument("--force", action="store_true",
                        help="start over in a DIR that holds a previous run (its model.tar.gz, metrics and "
                             "checkpoints are removed first); without --force or --resume such a DIR is refused")
    parser.add_argument("--pretrained-params", type=Path, metavar="FILE",
                        help="weights to start from (use_pretrained_model=1); arrays are matched by name and shape")
    parser.add_argument("--label-attribute", help="the manifests' label attribute (default: detected)")
    parser.add_argument("--seed", type=int, default=0, help="seed of shuffling and augmentation (default 0)")
    parser.add_argument("--max-expand", type=float, default=4.0, metavar="RATIO",
                        help="largest zoom-out of the online augmentation (mxnet-ssd: 4; 1 disables it)")
    parser.add_argument("assignments", nargs="*", metavar="name=value", help="hyperparameters")
    add_job_options(parser, "with --backend sagemaker")
    parser.set_defaults(handler=run)


def raw_hyperparameters(args: argparse.Namespace) -> dict[str, object]:
    """The hyperparameters as given: the JSON file's, then the name=value words over them."""
    from cloud_training.errors import HyperparameterError
    from cloud_training.training.hyperparameters import parse_assignments

    raw: dict[str, object] = {}
    if args.hyperparameters is not None:
        try:
            loaded = json.loads(args.hyperparameters.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise HyperparameterError(f"{args.hyperparameters}: cannot read a JSON object ({error})") from None
        if not isinstance(loaded, dict):
            raise HyperparameterError(f"{args.hyperparameters}: expected a JSON object")
        raw.update(loaded)
    raw.update(parse_assignments(args.assignments))
    return raw


def run(args: argparse.Namespace) -> int:
    from cloud_training.commands.sagemaker_options import split_manifest_words

    split_manifest_words(args)
    if args.resume and args.force:
        from cloud_training.errors import OutputError

        raise OutputError("--resume continues the run in --out and --force replaces it: give one")
    if args.attach is not None:
        return attach_sagemaker(args)
    for option in ("train", "validation"):
        if not getattr(args, option):
            from cloud_training.errors import ManifestError

            raise ManifestError(f"--{option} is required (unless --attach JOB follows an existing job)")
    if args.backend == "sagemaker":
        return run_sagemaker(args)
    return run_local(args)


def run_local(args: argparse.Namespace) -> int:
    from cloud_training.errors import HyperparameterError, TrainingError
    from cloud_training.manifest.io import expand, read_records
    from cloud_training.run_folder import check_run_folder, clear_run
    from cloud_training.training.augmentation import AugmentationConfig
    from cloud_training.training.hyperparameters import parse
    from cloud_training.training.local import LocalTrainer, TrainOptions

    if args.out is None:
        raise TrainingError("--out is required with --backend local")
    check_run_folder(args.out, args.resume, args.force)
    raw = raw_hyperparameters(args)
    if "num_training_samples" not in raw:
        records, _, _ = read_records(expand(args.train), args.label_attribute, skip_invalid=False)
        raw["num_training_samples"] = str(len(records))
    hp = parse(raw)
    from cloud_training.preflight import check_schedule

    check_schedule(hp)  # as SageMaker refuses it: a step at or after the last epoch is never taken
    if not 1.0 <= args.max_expand <= 8.0:
        raise HyperparameterError(f"--max-expand must be between 1 and 8 (got {args.max_expand})")
    options = TrainOptions(
        train=args.train, validation=args.validation, out_dir=args.out, resume=args.resume,
        pretrained_params=args.pretrained_params, augmentation=AugmentationConfig(max_expand_ratio=args.max_expand),
        seed=args.seed, label_attribute=args.label_attribute,
    )
    if args.force:
        clear_run(args.out)
    created = not args.out.exists()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        state = LocalTrainer(hp, options).run()
    except BaseException:
        if created and not any(args.out.iterdir()):  # a refused run leaves no empty folder behind
            args.out.rmdir()
        raise
    print(f"trained {hp.base_network}/{hp.image_shape} for {state.epochs_done} epoch(s);"
          f" best validation mAP {state.best_map:.4f} at epoch {state.best_epoch}")
    print(f"artifact: {args.out / 'model.tar.gz'}")
    return 0


def run_sagemaker(args: argparse.Namespace) -> int:
    """Check everything (the preflight), build the CreateTrainingJob request, then (unless --dry-run) submit and
    maybe follow it. Nothing calls SageMaker before every check has passed."""
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
    )
    from cloud_training.errors import AwsError, CredentialsError
    from cloud_training.training import remote

    require(args, "--role", "--output")
    if args.resume or args.pretrained_params is not None:
        raise AwsError("--resume and --pretrained-params are for --backend local (SageMaker: use_pretrained_model=1)")
    check_wait_target(args)
    raw = raw_hyperparameters(args)
    # the table first (a typo should not cost a manifest read); the count is filled in by the preflight
    remote.sagemaker_hyperparameters({"num_training_samples": "1", **raw})
    region = session.resolve_region(args.region)
    image = jobs.image_uri(region)
    preflight.check_before_reading(args.train, args.validation, raw, lambda facts: job_settings(args, facts, image))
    try:
        facts, _ = preflight.check_job(args.train, args.validation, args.label_attribute, raw, region,
                                       model_uri=args.model_channel)
    except CredentialsError as error:  # --dry-run previews the request without the S3 reads
        facts = preview_facts(args, error)
    hyperparameters = remote.sagemaker_hyperparameters({"num_training_samples": "1", **raw})
    if "num_training_samples" not in raw:
        hyperparameters["num_training_samples"] = COUNTED_AT_SUBMIT
    name = args.job_name or default_job_name()
    request = jobs.training_request(name, hyperparameters, job_settings(args, facts, jobs.image_uri(region)))
    if args.dry_run:
        remote.print_request(request)
        return 0
    client = session.client("sagemaker", region)
    arn = jobs.create_training_job(client, request)
    print(f"training job {name} created: {arn}")
    if args.wait:
        finished = remote.finish_training(client, name, args.out, print, args.poll_interval, args.wait_timeout)
        if finished.artifact is not None:  # lineage hand-off (issue 17): convert copies it into model.json
            from cloud_training.lineage import record_sagemaker_run

            record_sagemaker_run(finished.artifact, name, arn, region, args.train, args.validation, hyperparameters,
                                 finished.final_map)
    else:
        print(f"follow it with: aws sagemaker describe-training-job --training-job-name {name} --region {region}")
    return 0


def attach_sagemaker(args: argparse.Namespace) -> int:
    """``--attach JOB``: follow a training job started earlier (here or elsewhere) as ``--wait`` would."""
    from cloud_training.aws import session
    from cloud_training.commands.sagemaker_options import check_wait_target
    from cloud_training.errors import AwsError
    from cloud_training.training import remote

    extra = [flag for flag, given in (("--train", args.train), ("--validation", args.validation),
                                      ("hyperparameters", args.assignments or args.hyperparameters),
                                      ("--dry-run", args.dry_run), ("--resume", args.resume)) if given]
    if extra:
        raise AwsError(f"--attach follows an existing job; {extra[0]} is for starting one")
    args.wait = True
    check_wait_target(args)
    region = session.resolve_region(args.region)
    client = session.client("sagemaker", region)
    remote.finish_training(client, args.attach, args.out, print, args.poll_interval, args.wait_timeout)
    return 0
