"""The SageMaker backend of ``train`` and ``tune``: checks before any call, submission, following, fetching.

Everything SageMaker would reject after minutes of provisioning is rejected first, in one line: hyperparameters
against the algorithm's documented table (the same table the local backend uses, here), then the manifests against
them (:mod:`cloud_training.preflight`), then the job settings (:class:`~cloud_training.aws.sagemaker_jobs.JobSettings`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

from cloud_training import storage
from cloud_training.aws import sagemaker_jobs as jobs
from cloud_training.errors import AwsError, HyperparameterError, StorageError
from cloud_training.training.hyperparameters import PARSERS, SAGEMAKER_NETWORKS, float_in, parse

ARTIFACT_NAME = "model.tar.gz"


def sagemaker_hyperparameters(raw: Mapping[str, object]) -> dict[str, str]:
    """The hyperparameters to send, checked against the documented table first; values as strings, as SageMaker
    takes them. Only what the user gave is sent: the algorithm applies its own defaults to the rest."""
    hp = parse(raw)
    if hp.base_network not in SAGEMAKER_NETWORKS:
        raise HyperparameterError(
            f"hyperparameters: base_network {hp.base_network!r} runs only with --backend local; SageMaker's "
            f"algorithm offers {', '.join(SAGEMAKER_NETWORKS)}"
        )
    return {name: str(value).strip() for name, value in raw.items() if not name.startswith("_")}


def download_artifact(uri: str, out_dir: Path) -> Path:
    """Fetch ``model.tar.gz`` to ``out_dir`` through a temp file, so an interrupted download leaves nothing behind."""
    target = out_dir / ARTIFACT_NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    bucket, key = storage.split_s3(uri)
    handle, temp = tempfile.mkstemp(prefix=f".{ARTIFACT_NAME}.", suffix=".part", dir=out_dir)
    os.close(handle)
    try:
        from boto3.exceptions import S3TransferFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            storage.s3_client().download_file(bucket, key, temp)
        except (BotoCoreError, ClientError, S3TransferFailedError) as error:
            raise StorageError(f"{uri}: cannot download the model artifact ({type(error).__name__}: {error})") from None
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return target


Report = Callable[[str], None]


def print_request(request: Mapping[str, Any]) -> None:
    """What ``--dry-run`` shows: the exact request, as JSON (it holds no credentials; the role ARN is not secret)."""
    print(json.dumps(request, indent=2, sort_keys=False))


class Finished(NamedTuple):
    """A completed training job: the downloaded artifact (None without ``--out``) and its final validation:mAP."""

    artifact: Optional[Path]
    final_map: Optional[float]


def finish_training(client: Any, name: str, out_dir: Optional[Path], report: Report,
                    interval_s: float, max_wait_s: float) -> Finished:
    """Follow a training job to its end; print validation:mAP; fetch the artifact on success, or fail in one line."""
    description = jobs.follow(
        lambda: jobs.describe_training_job(client, name), jobs.training_state, jobs.training_done,
        lambda line: report(f"training job {name}: {line}"), f"training job {name}", interval_s, max_wait_s,
    )
    status = description.get("TrainingJobStatus")
    if status != "Completed":
        reason = description.get("FailureReason") or "no reason given"
        raise AwsError(f"training job {name} {str(status).lower()}: {reason}")
    score = jobs.final_metric(description)
    report(f"training job {name}: validation:mAP {score:.4f}" if score is not None
           else f"training job {name}: validation:mAP not reported")
    if out_dir is None:
        return Finished(None, score)
    uri = description.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if not uri:
        raise AwsError(f"training job {name} completed without ModelArtifacts.S3ModelArtifacts")
    path = download_artifact(uri, out_dir)
    report(f"artifact: {path} (from {uri}); next: cloud-training convert {path} --out MODEL_DIR")
    return Finished(path, score)


def finish_tuning(client: Any, name: str, out_dir: Optional[Path], report: Report,
                  interval_s: float, max_wait_s: float) -> Path | None:
    """Follow a tuning job to its end; name the best training job and its score; fetch its artifact."""
    description = jobs.follow(
        lambda: jobs.describe_tuning_job(client, name), jobs.tuning_state, jobs.tuning_done,
        lambda line: report(f"tuning job {name}: {line}"), f"tuning job {name}", interval_s, max_wait_s,
    )
    status = description.get("HyperParameterTuningJobStatus")
    best = description.get("BestTrainingJob")
    if status != "Completed" and not best:
        reason = description.get("FailureReason") or "no reason given"
        raise AwsError(f"tuning job {name} {str(status).lower()}: {reason}")
    if not best:
        raise AwsError(f"tuning job {name} completed without a best training job (did every job fail?)")
    best_name = best["TrainingJobName"]
    objective = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    value = objective.get("Value")
    tuned = ", ".join(f"{k}={v}" for k, v in sorted((best.get("TunedHyperParameters") or {}).items()))
    score = f"{objective.get('MetricName', jobs.OBJECTIVE_METRIC)} {float(value):.4f}" if value is not None else "?"
    report(f"tuning job {name}: best training job {best_name} ({score}; {tuned})")
    if out_dir is None:
        return None
    training = jobs.describe_training_job(client, best_name)
    uri = training.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if not uri:
        raise AwsError(f"best training job {best_name} has no ModelArtifacts.S3ModelArtifacts")
    path = download_artifact(uri, out_dir)
    report(f"artifact: {path} (from {uri}); next: cloud-training convert {path} --out MODEL_DIR")
    return path


def tunable_ranges() -> dict[str, str]:
    """The hyperparameters SageMaker documents as tunable for object detection, and their range kind."""
    return {
        "learning_rate": "Continuous",
        "mini_batch_size": "Integer",
        "momentum": "Continuous",
        "weight_decay": "Continuous",
        "optimizer": "Categorical",
    }


# Where the two AWS pages differ, a range follows the tuning page: "Tune an Object Detection Model"
# (https://docs.aws.amazon.com/sagemaker/latest/dg/object-detection-tuning.html) gives momentum and weight_decay
# MinValue 0.0, MaxValue 0.999, while the hyperparameter page
# (https://docs.aws.amazon.com/sagemaker/latest/dg/object-detection-api-config.html) says momentum in (0, 1] and
# weight_decay in (0, 1). learning_rate and mini_batch_size are checked against the hyperparameter page: the tuning
# page's 1e-6..0.5 and 8..64 are recommendations inside it.
TUNING_BOUNDS: dict[str, Callable[[str], Any]] = {
    "momentum": float_in(0.0, 0.999, low_open=False),
    "weight_decay": float_in(0.0, 0.999, low_open=False),
}

SCALING = {"auto": "Auto", "linear": "Linear", "log": "Logarithmic", "reverse-log": "ReverseLogarithmic"}


def parse_range(text: str) -> jobs.ParameterRange:
    """``learning_rate=0.0001:0.1[:log]``, ``mini_batch_size=8:64``, ``optimizer=sgd,adam``: each bound or choice
    checked against the algorithm's documented range, so a tuning job never launches jobs that cannot start."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    kinds = tunable_ranges()
    if not sep or not spec.strip():
        raise HyperparameterError(f"--range {text!r}: expected name=min:max[:scaling] or name=a,b,c")
    if name not in kinds:
        raise HyperparameterError(f"--range {name!r}: SageMaker tunes {', '.join(kinds)} for this algorithm")
    kind = kinds[name]
    check = TUNING_BOUNDS.get(name, PARSERS[name])

    def valid(value: str) -> str:
        try:
            check(value)
        except ValueError:
            raise HyperparameterError(f"--range {name}: {value!r} is not {check.__doc__}") from None
        return value

    if kind == "Categorical" or "," in spec:  # listed numbers too: what Grid search needs (SageMaker allows it)
        choices = tuple(valid(part.strip()) for part in spec.split(","))
        if len(set(choices)) < 2:
            raise HyperparameterError(f"--range {name}: give at least two different choices, comma-separated")
        return jobs.ParameterRange(name, "Categorical", choices)
    parts = [part.strip() for part in spec.split(":")]
    if len(parts) not in (2, 3):
        raise HyperparameterError(f"--range {name}={spec}: expected min:max or min:max:scaling")
    low, high = valid(parts[0]), valid(parts[1])
    if float(low) >= float(high):
        raise HyperparameterError(f"--range {name}: min {low} must be below max {high}")
    scaling = SCALING.get(parts[2].lower()) if len(parts) == 3 else "Auto"
    if scaling is None:
        raise HyperparameterError(f"--range {name}: scaling must be one of {', '.join(SCALING)} (got {parts[2]!r})")
    if scaling in ("Logarithmic", "ReverseLogarithmic") and float(low) <= 0:
        raise HyperparameterError(f"--range {name}: logarithmic scaling needs min > 0 (got {low})")
    return jobs.ParameterRange(name, kind, (low, high), scaling)
