"""``gdk component publish``, refused before any upload when it would overwrite a published version's artifacts.

    python components/publish.py [--project DIR] [gdk publish options: --bucket B --region R --options JSON]
    make publish                  # the inference component, from the repository root

gdk 1.6 uploads every built artifact to ``s3://<bucket>/<name>/<version>/`` and only then asks Greengrass to create
the version. Publishing a version that exists (gdk-config.json's fixed version, published before) therefore
overwrites the live version's artifacts, then fails with ConflictException: every device that downloads them
afterwards fails the recipe's digest check. So before gdk runs, this script asks, with the publisher's credentials:

1. Greengrass (DescribeComponent on the version's ARN): a version that exists is refused, whatever S3 holds;
2. S3 (each artifact's key): an object that is there with other bytes (SHA-256 compared) is refused; one with the
   same bytes (a publish that failed at CreateComponentVersion, retried) is fine.

Either refusal is one line on stderr and exit 2, and gdk is not run. Otherwise gdk's own ``component publish`` runs
with the same options and its exit status is returned. ``NEXT_PATCH`` is resolved as gdk does (the account's
highest version's next patch, or 1.0.0). The check and gdk's upload are two steps: two publishers racing on one
version are not covered (CreateComponentVersion still refuses the second).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
NEXT_PATCH = "NEXT_PATCH"
CHUNK = 1 << 20


class PublishRefused(Exception):
    """Publishing would overwrite what a published version's devices download (message: one line)."""


def read_project(project: Path) -> tuple[str, str, dict[str, Any]]:
    """(component name, version as configured, publish settings) from the project's gdk-config.json."""
    config = json.loads((project / "gdk-config.json").read_text())
    ((name, component),) = config["component"].items()
    return name, str(component.get("version", NEXT_PATCH)), dict(component.get("publish", {}))


def next_patch(versions: list[str]) -> str:
    """gdk's NEXT_PATCH: the highest version's patch + 1, or 1.0.0 without any."""
    if not versions:
        return "1.0.0"
    major, minor, patch = max(tuple(int(part) for part in v.split("-")[0].split(".")) for v in versions)
    return f"{major}.{minor}.{patch + 1}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_object(s3: Any, bucket: str, key: str) -> Optional[str]:
    """The SHA-256 of an S3 object's bytes (streamed), or None when there is no such object."""
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
            return None
        raise
    digest = hashlib.sha256()
    for block in iter(lambda: body.read(CHUNK), b""):
        digest.update(block)
    return digest.hexdigest()


def check(project: Path, bucket: Optional[str], region: Optional[str], client: Callable[..., Any] | None = None
          ) -> tuple[str, str, list[str]]:
    """(component, resolved version, S3 keys checked); PublishRefused when publishing would overwrite."""
    import boto3
    from botocore.exceptions import ClientError

    make = client or boto3.client
    name, configured, settings = read_project(project)
    region = region or settings.get("region", "")
    if not region:
        raise PublishRefused(f"{project / 'gdk-config.json'}: no publish.region (or --region)")
    account = make("sts", region_name=region).get_caller_identity()["Account"]
    bucket = bucket or f"{str(settings.get('bucket', '')).strip()}-{region}-{account}"
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    component_arn = f"arn:{partition}:greengrass:{region}:{account}:components:{name}"
    greengrass = make("greengrassv2", region_name=region)
    if configured == NEXT_PATCH:
        listed = greengrass.list_component_versions(arn=component_arn)["componentVersions"]
        version = next_patch([item["componentVersion"] for item in listed])
    else:
        version = configured
        try:
            greengrass.describe_component(arn=f"{component_arn}:versions:{version}")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        else:
            raise PublishRefused(
                f"{name} {version} already exists in {region}: component versions are immutable, and gdk would "
                f"overwrite its artifacts in s3://{bucket}/{name}/{version}/ before Greengrass refuses it; raise "
                f"component.{name}.version in {project / 'gdk-config.json'}")
    built = project / "greengrass-build" / "artifacts" / name / configured
    if not built.is_dir():
        raise PublishRefused(f"{built}: not built; run `gdk component build` in {project} first")
    s3 = make("s3", region_name=region)
    keys = []
    for artifact in sorted(path for path in built.iterdir() if path.is_file()):
        key = f"{name}/{version}/{artifact.name}"
        there = sha256_object(s3, bucket, key)
        if there is not None and there != sha256_file(artifact):
            raise PublishRefused(
                f"s3://{bucket}/{key} exists with other content (SHA-256 {there[:12]}...) though no {name} {version} "
                "uses it: publish a new version, or delete that object if it is a leftover of a failed publish")
        keys.append(key)
    return name, version, keys


def run_gdk(project: Path, options: list[str]) -> int:
    """gdk's own ``component publish`` in the project (the gdk beside this interpreter, else on PATH)."""
    gdk = Path(sys.executable).parent / "gdk"
    command = str(gdk) if gdk.is_file() else shutil.which("gdk")
    if command is None:
        print("publish: error: the gdk CLI is not installed (`make setup` installs it)", file=sys.stderr)
        return 2
    return subprocess.run([command, "component", "publish", *options], cwd=project).returncode


def main(argv: Optional[list[str]] = None, client: Callable[..., Any] | None = None,
         gdk: Callable[[Path, list[str]], int] = run_gdk) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=ROOT,
                        help="the gdk project (default: the repository root, the inference component; "
                             "components/ssd.ObjectDetector.Wheelhouse, components/ssd.ObjectDetector.Model)")
    parser.add_argument("--bucket", help="gdk publish --bucket: the bucket as named (default: gdk-config.json's "
                                         "publish.bucket-<region>-<account>)")
    parser.add_argument("--region", help="gdk publish --region (default: gdk-config.json's publish.region)")
    parser.add_argument("--options", help="gdk publish --options, passed on")
    args = parser.parse_args(argv)
    project = args.project.resolve()
    try:
        name, version, keys = check(project, args.bucket, args.region, client)
    except PublishRefused as error:
        print(f"publish: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # no credentials, access denied, no network: gdk would fail the same way
        text = (str(error).strip().splitlines() or [""])[0]
        print(f"publish: error: cannot check what is published ({type(error).__name__}: {text})", file=sys.stderr)
        return 2
    print(f"publish: {name} {version} is new and {len(keys)} artifact(s) overwrite nothing: running gdk",
          file=sys.stderr)
    options = [item for flag in ("bucket", "region", "options") if getattr(args, flag)
               for item in (f"--{flag}", getattr(args, flag))]  # fmt: skip
    return gdk(project, options)


if __name__ == "__main__":
    sys.exit(main())
