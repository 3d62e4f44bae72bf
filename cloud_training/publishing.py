"""Ship a deploy model folder to the fleet: ``model.zip`` on S3, a model component version, optionally a deployment.

The zip holds what the device runs (``model.onnx``, not MXNet's graph and weights when it is there) and its
``model.json`` at its root (Greengrass unzips it to
``{artifacts:decompressedPath}/model/``, where the inference component looks). It is built deterministically (sorted
names, fixed timestamps), so publishing the same folder twice gives the same bytes and the same digest. Before
anything is uploaded, each file is checked against the SHA-256 that ``model.json`` records: a corrupted folder is
refused here, not on a thousand devices.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from cloud_training import storage
from cloud_training.aws import greengrass, session
from cloud_training.aws.recipes import ARTIFACT_NAME, INFERENCE_COMPONENT, greengrass_digest, model_recipe
from cloud_training.errors import ArtifactError, AwsError
from edge_runtime.errors import ModelError
from edge_runtime.model import read_model_info
from edge_runtime.model_format import MODEL_JSON, device_files

REPO = Path(__file__).resolve().parents[1]  # the checkout: components/ and greengrass-build/ live there
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
ZIP_DATE = (2020, 1, 25, 0, 0, 0)  # as components/build.py: one model folder, one digest


def check_model_folder(folder: Path) -> dict[str, Any]:
    """The folder's ``model.json`` after checking every file is there and matches its recorded SHA-256."""
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: not a deploy model folder (make one with 'cloud-training convert')")
    if not (folder / MODEL_JSON).is_file():
        raise ArtifactError(f"{folder}: missing {MODEL_JSON}; make a deploy model folder with 'cloud-training convert'")
    try:  # the device's own reading: what publish accepts, the device loads (digests checked before anything)
        read_model_info(folder, verify_digests=True)
    except ModelError as error:
        raise ArtifactError(f"{error}; convert the model again if the folder was changed") from None
    metadata: dict[str, Any] = json.loads((folder / MODEL_JSON).read_text())
    return metadata


def zip_model_folder(folder: Path) -> bytes:
    """The files model.json lists and model.json at the zip's root, in a fixed order with fixed timestamps: same
    folder, same bytes (and the same bytes ``make component`` writes, so both give one digest)."""
    files = device_files(folder)  # without MXNet's files when model.onnx is there: the device runs ONNX Runtime
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100000 | 0o644) << 16  # a regular file, rw-r--r--: as components/build.py
            archive.writestr(info, files[name])
    return buffer.getvalue()


@dataclass(frozen=True)
class PublishPlan:
    """Everything publish will do, computed before any call (and all that --dry-run prints)."""

    artifact_uri: str
    artifact: bytes
    digest: str
    recipe: dict[str, Any]
    deployment: Optional[dict[str, Any]]

    def describe(self) -> dict[str, Any]:
        return {
            "upload": {"uri": self.artifact_uri, "bytes": len(self.artifact), "sha256_base64": self.digest},
            "create_component_version": {"inlineRecipe": self.recipe},
            "create_deployment": self.deployment,
        }


def runtime_version(explicit: Optional[str], root: Path = REPO) -> str:
    """The inference component's version to deploy: ``--runtime-version``, else the version of its built recipe
    (what ``gdk component build``/``publish`` or ``make component`` wrote), else its gdk-config.json version."""
    if explicit:
        return explicit
    project = root  # the inference component's gdk project is the repository root
    recipe = root / "greengrass-build" / "recipes" / f"{INFERENCE_COMPONENT}.json"  # gdk's build and make component's
    if recipe.is_file():
        version = str(json.loads(recipe.read_text()).get("ComponentVersion", ""))
        if VERSION.match(version):
            return version
    config = project / "gdk-config.json"
    if config.is_file():
        version = str(json.loads(config.read_text())["component"][INFERENCE_COMPONENT].get("version", ""))
        if VERSION.match(version):
            return version
    raise AwsError(
        f"--runtime-version is needed: no built recipe of {INFERENCE_COMPONENT} with a MAJOR.MINOR.PATCH version"
        f" (build it with `make component` or `gdk component build` in {project}, or name the published version)"
    )


# S3 general purpose bucket names (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html)
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IP_ADDRESS = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
TARGET_ARN = re.compile(r"^arn:aws[a-z-]*:iot:([a-z0-9-]+):\d{12}:(thing|thinggroup)/.+$")


def check_bucket_name(bucket: str) -> None:
    """S3's naming rules, so a typo is one line here instead of an InvalidBucketName after the zip is built."""
    if not bucket or "/" in bucket or bucket.startswith("s3:"):
        raise AwsError(f"--bucket takes a bucket name, not a URI (got {bucket!r})")
    problem = None
    if not BUCKET_NAME.match(bucket):
        problem = "3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
    elif ".." in bucket or ".-" in bucket or "-." in bucket:
        problem = "no two adjacent dots, and no dot next to a hyphen"
    elif IP_ADDRESS.match(bucket):
        problem = "not formatted like an IP address"
    elif bucket.startswith(BUCKET_PREFIXES) or bucket.endswith(BUCKET_SUFFIXES):
        problem = f"not starting with {', '.join(BUCKET_PREFIXES)} nor ending with {', '.join(BUCKET_SUFFIXES)}"
    if problem:
        raise AwsError(f"--bucket {bucket!r} is not a valid S3 bucket name: {problem}")


def check_target_region(deploy_to: Optional[str], region: Optional[str]) -> None:
    """A deployment goes to a thing or group of the publishing region: the component version exists only there."""
    if not deploy_to or not region:
        return
    found = TARGET_ARN.match(deploy_to)
    if found and found.group(1) != region:
        raise AwsError(f"--deploy-to {deploy_to} is in {found.group(1)}, but the component is published in {region}; "
                       f"pass --region {found.group(1)} or a target of {region}")


def component_version(given: Optional[str], metadata: dict[str, Any], folder: Path) -> str:
    """The version to publish: model.json's, which the device reports; a different --component-version is refused
    (a fleet would run "2.0.0" that says it is 1.0.0)."""
    recorded = str(metadata.get("version", "")) or None
    if given is None:
        if recorded is None:
            raise AwsError(f"{folder}/{MODEL_JSON} records no version: pass --component-version")
        return recorded
    if recorded is not None and recorded != given:
        raise AwsError(f"--component-version {given} but {folder}/{MODEL_JSON} says version {recorded}; publish "
                       f"{recorded}, or convert again with --model-version {given}")
    return given


def plan(folder: Path, bucket: str, name: str, version: Optional[str], deploy_to: Optional[str],
         runtime_component: str, runtime_version: str, region: Optional[str] = None) -> PublishPlan:
    """Check the folder and the arguments, zip, digest, and write the recipe and deployment requests."""
    if version is not None and not VERSION.match(version):
        raise AwsError(f"--component-version must be MAJOR.MINOR.PATCH (got {version!r})")
    if not VERSION.match(runtime_version):
        raise AwsError(f"--runtime-version must be MAJOR.MINOR.PATCH (got {runtime_version!r})")
    check_bucket_name(bucket)
    check_target_region(deploy_to, region)
    metadata = check_model_folder(folder)
    version = component_version(version, metadata, folder)
    if not VERSION.match(version):
        raise AwsError(f"{folder}/{MODEL_JSON} version {version!r} is not MAJOR.MINOR.PATCH, which Greengrass needs; "
                       "convert again with --model-version X.Y.Z")
    artifact = zip_model_folder(folder)
    uri = f"s3://{bucket}/{name}/{version}/{ARTIFACT_NAME}"
    digest = greengrass_digest(artifact)
    classes = ", ".join(str(c) for c in metadata.get("class_names", []))
    description = f"SSD model {metadata.get('name', folder.name)} {version}: {classes}"
    recipe = model_recipe(name, version, uri, digest, description)
    deployment = None
    if deploy_to:
        deployment = greengrass.deployment_request(
            deploy_to, {runtime_component: runtime_version, name: version}, f"{name}-{version}"
        )
    return PublishPlan(uri, artifact, digest, recipe, deployment)


def check_unpublished(client: Any, version_arn: str) -> None:
    """AwsError when the component version exists: its devices download what its recipe names, and an upload now
    would replace those bytes under them (the service would then refuse the version as a duplicate anyway)."""
    from botocore.exceptions import ClientError

    try:
        client.describe_component(arn=version_arn)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return
        with session.calling("greengrassv2", "DescribeComponent"):
            raise
    name, version = version_arn.split(":components:", 1)[1].split(":versions:")
    raise AwsError(f"{name} {version} is already published ({version_arn}): component versions are immutable and "
                   "its artifact is what devices download; choose a new --component-version")


def publish(plan_: PublishPlan, client: Any, report: Callable[[str], None], force: bool = False,
            wait_s: float = 120.0, replace: bool = False, account: Optional[str] = None) -> dict[str, Any]:
    """Upload, create the component version, and (with a deployment) wait until it is deployable, then deploy:
    merged into the target's current deployment (its other components kept) unless ``replace``.

    Nothing is uploaded when the version exists (with ``account``: asked of Greengrass first) or when the URI holds
    other bytes (unless ``force``: an unused upload); the same bytes are not uploaded again."""
    uri = plan_.artifact_uri
    if account is not None:
        name, version = plan_.recipe["ComponentName"], plan_.recipe["ComponentVersion"]
        region = client.meta.region_name
        partition = client.meta.partition
        check_unpublished(client, f"arn:{partition}:greengrass:{region}:{account}:components:{name}:versions:{version}")
    there = storage.read_bytes(uri) if storage.exists(uri) else None
    if there is not None and there != plan_.artifact and not force:
        raise AwsError(f"{uri} exists with other content; component versions are immutable: "
                       "choose a new --component-version (or --force to overwrite an unused upload)")
    if there == plan_.artifact:
        report(f"{uri} holds these bytes already (SHA-256 {plan_.digest}): not uploaded again")
    else:
        storage.write_bytes(plan_.artifact_uri, plan_.artifact)
        report(f"uploaded {plan_.artifact_uri} ({len(plan_.artifact)} bytes, SHA-256 {plan_.digest})")
    created = greengrass.create_component_version(client, plan_.recipe)
    arn = str(created.get("arn"))
    report(f"component {created.get('componentName')} {created.get('componentVersion')} created: {arn}")
    result: dict[str, Any] = {"component_arn": arn}
    if plan_.deployment is not None:
        greengrass.wait_deployable(client, arn, report, max_wait_s=wait_s)
        request = dict(plan_.deployment)
        if not replace:
            current = greengrass.current_components(client, request["targetArn"])
            kept = sorted(set(current) - set(request["components"]))
            request["components"] = greengrass.merged_components(current, request["components"])
            if kept:
                report(f"keeping {', '.join(kept)} of the current deployment (--replace drops them)")
        deployed = greengrass.create_deployment(client, request)
        report(f"deployment {deployed.get('deploymentId')} to {plan_.deployment['targetArn']} created")
        result["deployment_id"] = deployed.get("deploymentId")
    return result
