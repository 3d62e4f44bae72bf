"""``cloud-training publish``: a converted model onto the fleet as a Greengrass v2 model component version."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

EPILOG = """\
example:
  cloud-training publish models/boxes --bucket my-gg-artifacts --component-version 1.0.0 \\
      --deploy-to arn:aws:iot:us-east-1:123456789012:thinggroup/Cameras

MODEL_DIR is a deploy model folder from 'cloud-training convert'. The files its model.json lists, and model.json,
are zipped (at the zip's root) to s3://BUCKET/NAME/VERSION/model.zip, and NAME VERSION is created in Greengrass
with the recipe inline (artifact URI, base64 SHA-256 digest, Unarchive ZIP: devices find the files in
{artifacts:decompressedPath}/model/).
--deploy-to waits until the version is deployable, then creates a deployment for the thing or thing group with the
inference component (--runtime-component, version --runtime-version, default: the version of its built recipe,
else its gdk-config.json) and this model, merged into the target's current deployment: its other components and
their configuration updates are kept (a new deployment replaces the old one for a thing group, so the merge is
done here; --replace deploys only these two).
--dry-run checks the folder and prints the upload, the recipe and the deployment without calling AWS. Either way,
before anything: --component-version must equal model.json's version (its default), --bucket must follow S3's
naming rules, and a --deploy-to ARN must be in the publishing region (--region / AWS_REGION / your profile).
"""


def register(subparsers: Any) -> None:
    from cloud_training.aws.recipes import INFERENCE_COMPONENT, MODEL_COMPONENT

    parser = subparsers.add_parser(
        "publish",
        help="upload a converted model and create its Greengrass model component version (and a deployment)",
        description="Publish a deploy model folder to AWS IoT Greengrass v2 as a model component version.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="deploy model folder (from convert)")
    parser.add_argument("--bucket", required=True, help="S3 bucket for the artifact (in the devices' region)")
    parser.add_argument("--component-name", default=MODEL_COMPONENT, help=f"default {MODEL_COMPONENT}")
    parser.add_argument("--component-version", metavar="X.Y.Z",
                        help="the new version (default: model.json's; a different one is refused)")
    parser.add_argument("--deploy-to", metavar="TARGET_ARN", help="thing group (or thing) ARN to deploy to")
    parser.add_argument("--runtime-component", default=INFERENCE_COMPONENT,
                        help=f"inference component to deploy with the model (default {INFERENCE_COMPONENT})")
    parser.add_argument("--runtime-version", metavar="X.Y.Z",
                        help="its version (default: its built recipe's, else the repository root's "
                             "gdk-config.json's)")
    parser.add_argument("--replace", action="store_true",
                        help="deploy only these two components, dropping the others of the current deployment")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / your profile)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite a different model.zip already at the URI, when no published version uses it")
    parser.add_argument("--dry-run", action="store_true", help="print what would be done; call nothing")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cloud_training import publishing
    from cloud_training.aws import session
    from cloud_training.errors import AwsError

    runtime = publishing.runtime_version(args.runtime_version) if args.deploy_to else args.runtime_version or "0.0.0"
    try:
        region: Optional[str] = session.resolve_region(args.region)
    except AwsError:
        if not args.dry_run:
            raise
        region = None  # a dry run without a region checks everything else
    planned = publishing.plan(args.model_dir, args.bucket, args.component_name, args.component_version,
                              args.deploy_to, args.runtime_component, runtime, region)
    if args.dry_run:
        print(json.dumps(planned.describe(), indent=2))
        return 0
    assert region is not None
    client = session.client("greengrassv2", region)
    account = session.call(session.client("sts", region), "GetCallerIdentity")["Account"]  # the version's ARN
    publishing.publish(planned, client, print, force=args.force, replace=args.replace, account=account)
    return 0
