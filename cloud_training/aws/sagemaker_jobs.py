"""SageMaker training and tuning jobs for the built-in object detection algorithm, as explicit request dicts.

We build ``CreateTrainingJob`` / ``CreateHyperParameterTuningJob`` requests ourselves instead of going through the
SDK's ``Estimator``: the request is then one plain dict that ``--dry-run`` prints, that tests compare field by field,
and that botocore validates against the service model. The SDK is used for one thing only, the algorithm's image
URI for a region (a table lookup inside the SDK, no AWS call, no credentials).

Waiting is bounded polling: :func:`follow` reports every change of (status, secondary status) and gives up after
``max_wait`` seconds with a line that says the job goes on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from cloud_training.aws.session import call
from cloud_training.errors import AwsError

ALGORITHM = "object-detection"
OBJECTIVE_METRIC = "validation:mAP"
# SageMaker job names: letters, digits and single hyphens; 63 characters for training jobs, 32 for tuning jobs
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
TUNING_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
TRAINING_TERMINAL = ("Completed", "Failed", "Stopped")
TUNING_TERMINAL = ("Completed", "Failed", "Stopped")

log = logging.getLogger(__name__)


def image_uri(region: str) -> str:
    """The built-in object detection algorithm's container for ``region``, from the SageMaker SDK's table."""
    # the SDK logs where it looked for its defaults file at import time; that is noise on our stderr
    for name in ("sagemaker", "sagemaker.config"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from sagemaker import image_uris

    try:
        uri: str = image_uris.retrieve(ALGORITHM, region)
    except ValueError as error:
        raise AwsError(f"no {ALGORITHM} algorithm image for region {region!r}: {error}") from None
    return uri


def training_instance_types() -> tuple[str, ...]:
    """Every instance type CreateTrainingJob accepts, from botocore's service model (no call)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return tuple(model.shape_for("TrainingInstanceType").enum)


@dataclass(frozen=True)
class JobSettings:
    """Everything about a job except its hyperparameters; shared by training jobs and tuning job definitions."""

    train_manifest: str
    validation_manifest: str
    label_attribute: str
    output_path: str
    role_arn: str
    image: str
    instance_type: str = "ml.p3.2xlarge"
    instance_count: int = 1
    volume_size_gb: int = 50
    max_runtime_s: int = 86400
    spot: bool = False
    max_wait_s: Optional[int] = None  # spot only: runtime plus time waiting for capacity
    checkpoint_uri: Optional[str] = None
    tags: Mapping[str, str] = field(default_factory=dict)
    model_uri: Optional[str] = None  # incremental training: a previous job's model.tar.gz, as the "model" channel

    def check(self) -> None:
        """Everything SageMaker would refuse later, refused now (one line each)."""
        for name, uri in (("--train", self.train_manifest), ("--validation", self.validation_manifest),
                          ("--output", self.output_path)):
            if not uri.startswith("s3://") or len(uri) <= len("s3://"):
                raise AwsError(f"{name} must be an s3:// URI for SageMaker (got {uri!r})")
        if not ROLE_ARN.match(self.role_arn):
            raise AwsError(f"--role must be an IAM role ARN like arn:aws:iam::123456789012:role/Name "
                           f"(got {self.role_arn!r})")
        from cloud_training.preflight import check_instance_type, check_tags

        check_instance_type(self.instance_type, training_instance_types)
        check_tags(self.tags)
        if self.spot:
            if self.max_wait_s is not None and self.max_wait_s < self.max_runtime_s:
                raise AwsError(f"--spot-max-wait ({self.max_wait_s}) must be at least --max-runtime "
                               f"({self.max_runtime_s}) for spot training")
            if self.checkpoint_uri is not None and not self.checkpoint_uri.startswith("s3://"):
                raise AwsError(f"--checkpoint-s3 must be an s3:// URI (got {self.checkpoint_uri!r})")
        elif self.checkpoint_uri is not None:
            raise AwsError("--checkpoint-s3 is for managed spot training: add --spot")
        if self.model_uri is not None and (not self.model_uri.startswith("s3://")
                                           or not self.model_uri.endswith(".tar.gz")):
            raise AwsError(f"--model-channel must be the s3:// URI of a model.tar.gz (got {self.model_uri!r})")


def _channel(name: str, manifest: str, label_attribute: str) -> dict[str, Any]:
    """A Pipe-mode channel on an augmented manifest: SageMaker streams each line's image and label as RecordIO."""
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "AugmentedManifestFile",
                "S3Uri": manifest,
                "S3DataDistributionType": "FullyReplicated",
                "AttributeNames": ["source-ref", label_attribute],  # the image, then its boxes
            }
        },
        "ContentType": "application/x-recordio",
        "RecordWrapperType": "RecordIO",
        "CompressionType": "None",
        "InputMode": "Pipe",
    }


def _model_channel(uri: str) -> dict[str, Any]:
    """Incremental training: the algorithm starts from the weights of ``uri`` (a model.tar.gz it wrote), read in File
    mode whatever the other channels' mode, as the SageMaker SDK's ``model_uri`` sends it."""
    return {
        "ChannelName": "model",
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        },
        "ContentType": "application/x-sagemaker-model",
        "CompressionType": "None",
        "InputMode": "File",
    }


def _definition(settings: JobSettings) -> dict[str, Any]:
    """The parts a training job and a tuning job's training definition share."""
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": settings.max_runtime_s}
    definition: dict[str, Any] = {
        "AlgorithmSpecification": {"TrainingImage": settings.image, "TrainingInputMode": "Pipe"},
        "RoleArn": settings.role_arn,
        "InputDataConfig": [
            _channel("train", settings.train_manifest, settings.label_attribute),
            _channel("validation", settings.validation_manifest, settings.label_attribute),
        ],
        "OutputDataConfig": {"S3OutputPath": settings.output_path},
        "ResourceConfig": {
            "InstanceType": settings.instance_type,
            "InstanceCount": settings.instance_count,
            "VolumeSizeInGB": settings.volume_size_gb,
        },
        "StoppingCondition": stopping,
    }
    if settings.model_uri:
        definition["InputDataConfig"].append(_model_channel(settings.model_uri))
    if settings.spot:
        stopping["MaxWaitTimeInSeconds"] = settings.max_wait_s or 2 * settings.max_runtime_s
        definition["EnableManagedSpotTraining"] = True
        if settings.checkpoint_uri:
            definition["CheckpointConfig"] = {"S3Uri": settings.checkpoint_uri}
    return definition


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def training_request(name: str, hyperparameters: Mapping[str, str], settings: JobSettings) -> dict[str, Any]:
    """The whole CreateTrainingJob request (hyperparameters already validated against the documented table)."""
    if not JOB_NAME.match(name):
        raise AwsError(f"--job-name {name!r}: up to 63 letters, digits and hyphens, starting with a letter or digit")
    settings.check()
    request: dict[str, Any] = {"TrainingJobName": name, "HyperParameters": dict(hyperparameters)}
    request.update(_definition(settings))
    if settings.tags:
        request["Tags"] = _tags(settings.tags)
    return request


@dataclass(frozen=True)
class ParameterRange:
    """One tuned hyperparameter: ``kind`` is Integer, Continuous or Categorical (SageMaker's range types)."""

    name: str
    kind: str
    values: tuple[str, ...]  # (min, max) for Integer/Continuous, the choices for Categorical
    scaling: str = "Auto"

    def as_request(self) -> dict[str, Any]:
        if self.kind == "Categorical":
            return {"Name": self.name, "Values": list(self.values)}
        return {"Name": self.name, "MinValue": self.values[0], "MaxValue": self.values[1], "ScalingType": self.scaling}


def tuning_request(
    name: str,
    static_hyperparameters: Mapping[str, str],
    ranges: Sequence[ParameterRange],
    settings: JobSettings,
    max_jobs: int,
    parallel_jobs: int,
    strategy: str = "Bayesian",
) -> dict[str, Any]:
    """The whole CreateHyperParameterTuningJob request: maximise validation:mAP over ``ranges``."""
    if not TUNING_JOB_NAME.match(name):
        raise AwsError(f"--job-name {name!r}: up to 32 letters, digits and hyphens, starting with a letter or digit")
    settings.check()
    if not ranges:
        raise AwsError("give at least one --range to tune")
    if parallel_jobs > max_jobs:
        raise AwsError(f"--parallel-jobs ({parallel_jobs}) exceeds --max-jobs ({max_jobs})")
    tuned = {r.name for r in ranges}
    clash = sorted(tuned & set(static_hyperparameters))
    if clash:
        raise AwsError(f"{', '.join(clash)} is both fixed and tuned: give it as a --range or a name=value, not both")
    grouped: dict[str, list[dict[str, Any]]] = {
        "IntegerParameterRanges": [], "ContinuousParameterRanges": [], "CategoricalParameterRanges": [],
    }  # fmt: skip
    for item in ranges:
        grouped[f"{item.kind}ParameterRanges"].append(item.as_request())
    definition = {"StaticHyperParameters": dict(static_hyperparameters)}
    definition.update(_definition(settings))
    request: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": OBJECTIVE_METRIC},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": parallel_jobs},
            "ParameterRanges": grouped,
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": definition,
    }
    if settings.tags:
        request["Tags"] = _tags(settings.tags)
    return request


def create_training_job(client: Any, request: Mapping[str, Any]) -> str:
    """Submit a training job; returns its ARN."""
    arn: str = call(client, "CreateTrainingJob", **request)["TrainingJobArn"]
    return arn


def describe_training_job(client: Any, name: str) -> dict[str, Any]:
    return call(client, "DescribeTrainingJob", TrainingJobName=name)


def create_tuning_job(client: Any, request: Mapping[str, Any]) -> str:
    """Submit a tuning job; returns its ARN."""
    arn: str = call(client, "CreateHyperParameterTuningJob", **request)["HyperParameterTuningJobArn"]
    return arn


def describe_tuning_job(client: Any, name: str) -> dict[str, Any]:
    return call(client, "DescribeHyperParameterTuningJob", HyperParameterTuningJobName=name)


def follow(
    describe: Callable[[], dict[str, Any]],
    state: Callable[[dict[str, Any]], str],
    terminal: Callable[[dict[str, Any]], bool],
    report: Callable[[str], None],
    what: str,
    interval_s: float,
    max_wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll ``describe`` until ``terminal``; report each new ``state`` line once; never wait past ``max_wait_s``."""
    deadline = clock() + max_wait_s
    last = ""
    while True:
        description = describe()
        line = state(description)
        if line != last:
            report(line)
            last = line
        if terminal(description):
            return description
        remaining = deadline - clock()
        if remaining <= 0:
            raise AwsError(f"{what} is still running after --wait-timeout {max_wait_s:g} s ({line}); it goes on in "
                           "SageMaker: wait again later, or stop it in the console")
        sleep(min(interval_s, remaining))


def training_state(description: Mapping[str, Any]) -> str:
    """``InProgress / Training: Downloading the training image`` from a DescribeTrainingJob response."""
    status = str(description.get("TrainingJobStatus", "?"))
    secondary = description.get("SecondaryStatus")
    line = f"{status} / {secondary}" if secondary else status
    transitions = description.get("SecondaryStatusTransitions") or []
    message = transitions[-1].get("StatusMessage") if transitions else None
    return f"{line}: {message}" if message else line


def training_done(description: Mapping[str, Any]) -> bool:
    return description.get("TrainingJobStatus") in TRAINING_TERMINAL


def tuning_state(description: Mapping[str, Any]) -> str:
    """``InProgress: 3 completed, 2 in progress, 0 failed`` from a DescribeHyperParameterTuningJob response."""
    status = str(description.get("HyperParameterTuningJobStatus", "?"))
    counters = description.get("TrainingJobStatusCounters") or {}
    failed = int(counters.get("RetryableError", 0)) + int(counters.get("NonRetryableError", 0))
    return (f"{status}: {counters.get('Completed', 0)} completed, {counters.get('InProgress', 0)} in progress, "
            f"{failed} failed, {counters.get('Stopped', 0)} stopped")


def tuning_done(description: Mapping[str, Any]) -> bool:
    return description.get("HyperParameterTuningJobStatus") in TUNING_TERMINAL


def final_metric(description: Mapping[str, Any], name: str = OBJECTIVE_METRIC) -> Optional[float]:
    """The last value SageMaker recorded for ``name`` (None when the algorithm reported none)."""
    for metric in description.get("FinalMetricDataList") or []:
        if metric.get("MetricName") == name:
            return float(metric["Value"])
    return None
