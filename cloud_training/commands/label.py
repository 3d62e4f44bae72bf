"""``cloud-training label``: a Ground Truth bounding-box adjustment job on a ``manifest from-samples`` manifest."""

from __future__ import annotations

import argparse
import json
from typing import Any

from edge_runtime.argtypes import number_in

DESCRIPTION = """\
Start a SageMaker Ground Truth bounding-box ADJUSTMENT job: labelers correct the boxes the devices drew (move,
resize, relabel, delete, add the missed ones) instead of drawing every box. Its output manifest goes back into
'cloud-training manifest prepare' with the earlier jobs.

Before any SageMaker call the preflight reads the manifest and checks: the job name and label attribute (not the
adjusted one), the role and work team ARNs (the team in the job's region), the class list against every line's
class-map, s3:// images, lines under 100 KB, and every bucket in the job's region. --dry-run then prints the
CreateLabelingJob request instead of sending it (and uploads nothing)."""

EXAMPLE = """\
example:
  cloud-training label s3://my-bucket/labeling/week-49/samples.manifest --job-name week-49-adjust \\
      --role-arn arn:aws:iam::111122223333:role/GroundTruthRole \\
      --workteam-arn arn:aws:sagemaker:us-east-1:111122223333:workteam/private-crowd/boxes \\
      --output s3://my-bucket/labeling/week-49/output/ --region us-east-1 --wait

  then: cloud-training manifest prepare manifests/*.output.manifest \\
      s3://my-bucket/labeling/week-49/output/week-49-adjust/manifests/output/output.manifest --out prepared/
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "label",
        help="start a Ground Truth adjustment job on sampled frames (from-samples)",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("manifest", metavar="MANIFEST", help="s3:// URI of samples.manifest (manifest from-samples)")
    parser.add_argument("--job-name", required=True, help="the labeling job's name (unique in the account)")
    parser.add_argument("--role-arn", required=True, help="IAM role Ground Truth assumes (S3 read/write, Lambdas)")
    parser.add_argument("--workteam-arn", required=True, help="the private (or vendor) work team, in --region")
    parser.add_argument("--output", required=True, metavar="S3_PREFIX",
                        help="s3:// prefix for the job's output (and the task template and label categories)")
    parser.add_argument("--classes", metavar="A,B", help="the class list in class-id order (default: "
                        "label-categories.json beside MANIFEST, written by from-samples)")
    parser.add_argument("--adjust-attribute", default="bb", metavar="NAME",
                        help="the attribute whose boxes are adjusted (default: bb)")
    parser.add_argument("--label-attribute", metavar="NAME",
                        help="the attribute the adjusted boxes are written under (default: ADJUST-adjusted)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION or the profile's)")
    parser.add_argument("--title", default="Fix the boxes the camera drew", help="task title the labelers see")
    parser.add_argument("--description", default="Adjust, relabel, delete or add bounding boxes",
                        help="task description the labelers see")
    parser.add_argument("--workers-per-object", type=int, choices=range(1, 10), default=1, metavar="N",
                        help="labelers per image (1..9, default 1)")
    parser.add_argument("--task-time-limit", type=int, default=600, metavar="S",
                        help="seconds a labeler has per image (default 600)")
    parser.add_argument("--dry-run", action="store_true", help="run the preflight, print the request, send nothing")
    parser.add_argument("--wait", action="store_true", help="follow the job until it ends")
    parser.add_argument("--poll-interval", type=number_in(1.0, 3600.0), default=60.0, metavar="S",
                        help="--wait: seconds between DescribeLabelingJob calls (default 60)")
    parser.add_argument("--wait-timeout", type=number_in(1.0, 30 * 86400.0), default=7 * 86400.0, metavar="S",
                        help="--wait: give up following after this long (the job goes on; default 7 days)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cloud_training import labeling, storage
    from cloud_training.aws import groundtruth, session
    from cloud_training.errors import AwsError, PreflightError

    attribute = args.label_attribute or f"{args.adjust_attribute}-adjusted"
    region = session.resolve_region(args.region)
    labeling.check_names(args.job_name, attribute, args.adjust_attribute)
    labeling.check_arns(args.role_arn, args.workteam_arn, region)
    if args.classes is not None:
        classes = [name.strip() for name in args.classes.split(",")]
    else:
        categories_at = storage.join(storage.parent(args.manifest), "label-categories.json")
        if not storage.exists(categories_at):
            raise PreflightError(f"{categories_at}: not found; pass --classes A,B (the model's classes in order)")
        classes = [str(item["label"]) for item in json.loads(storage.read_text(categories_at))["labels"]]
    labeling.check_classes(classes)
    records = labeling.check(args.manifest, args.output, args.adjust_attribute, classes, region)
    output = args.output if args.output.endswith("/") else args.output + "/"
    job = groundtruth.AdjustmentJob(
        name=args.job_name, region=region, role_arn=args.role_arn, workteam_arn=args.workteam_arn,
        manifest_uri=args.manifest, output_uri=output, label_attribute=attribute,
        categories_uri=f"{output}{args.job_name}/label-categories.json",
        template_uri=f"{output}{args.job_name}/adjust-boxes.liquid.html",
        title=args.title, description=args.description, workers_per_object=args.workers_per_object,
        task_time_limit_s=args.task_time_limit,
    )
    request = groundtruth.create_request(job)
    print(f"preflight passed: {len(records)} images, classes {', '.join(classes)}, labels to {attribute}")
    if args.dry_run:
        print(json.dumps(request, indent=2))
        return 0
    storage.write_text(job.categories_uri, groundtruth.label_categories(classes))
    storage.write_text(job.template_uri, groundtruth.task_template(args.adjust_attribute, args.title, classes))
    arn = groundtruth.create(request, region)
    print(f"labeling job {args.job_name} created: {arn}")
    if not args.wait:
        print(f"follow it with: aws sagemaker describe-labeling-job --labeling-job-name {args.job_name} "
              f"--region {region}")
        return 0
    final = groundtruth.wait(args.job_name, region, print, args.poll_interval, args.wait_timeout)
    if final.get("LabelingJobStatus") != "Completed":
        raise AwsError(f"labeling job {args.job_name} ended {final.get('LabelingJobStatus')}: "
                       f"{final.get('FailureReason', 'no reason given')}")
    print(f"output manifest: {groundtruth.output_manifest(final)}")
    return 0
