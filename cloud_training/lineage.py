"""Where a model came from: the data it was trained and validated on, how, and how well, recorded beside it.

``model.tar.gz`` must stay exactly SageMaker's three files, so a training run writes ``lineage.json`` beside it
(the local trainer into its run folder; ``train --backend sagemaker --wait`` beside the download). ``convert`` copies it
into model.json's ``lineage`` when its ``artifact_sha256`` is the artifact's own: a lineage left over from another run
in the same folder is not attached to a model it does not describe. A manifest is identified by its SHA-256 and its
line count, which is what tells two data sets apart when their file names are the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from cloud_training import storage
from cloud_training.manifest.io import expand

LINEAGE_FILE = "lineage.json"
log = logging.getLogger(__name__)


def manifest_identity(location: str) -> dict[str, Any]:
    """``{"uri", "sha256", "lines"}`` of one manifest (local or s3://); lines are the non-blank ones."""
    data = storage.read_bytes(location)
    lines = sum(1 for line in data.splitlines() if line.strip())
    return {"uri": location, "sha256": hashlib.sha256(data).hexdigest(), "lines": lines}


def manifests_identity(locations: Sequence[str]) -> list[dict[str, Any]]:
    return [manifest_identity(location) for location in expand(list(locations))]


def training_lineage(
    *,
    backend: str,
    job: Mapping[str, Any],
    train: Sequence[str],
    validation: Sequence[str],
    hyperparameters: Mapping[str, str],
    artifact_sha256: Optional[str],
    best_epoch: Optional[int] = None,
    best_validation_map: Optional[float] = None,
    epochs_done: Optional[int] = None,
) -> dict[str, Any]:
    """The lineage record: backend and job (run folder or SageMaker job ARN), data, hyperparameters, best epoch."""
    return {
        "backend": backend,
        "job": dict(job),
        "train_manifests": manifests_identity(train),
        "validation_manifests": manifests_identity(validation),
        "hyperparameters": dict(hyperparameters),
        "epochs_done": epochs_done,
        "best_epoch": best_epoch,
        "best_validation_map": best_validation_map,
        "artifact_sha256": artifact_sha256,
    }


def write_lineage(folder: Path, lineage: Mapping[str, Any]) -> Path:
    target = folder / LINEAGE_FILE
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(lineage, indent=2) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target


def lineage_for(artifact: Path, artifact_sha256: str, explicit: Optional[Path] = None) -> Optional[dict[str, Any]]:
    """The lineage describing ``artifact``: ``explicit``, else ``lineage.json`` beside a tarball; None if there is none
    or it describes another artifact (logged, so a stale file is not silently ignored)."""
    path = explicit if explicit is not None else (artifact.parent / LINEAGE_FILE if artifact.is_file() else None)
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("%s: not readable as JSON (%s); no lineage recorded", path, error)
        return None
    if not isinstance(data, dict):
        return None
    if data.get("artifact_sha256") not in (None, artifact_sha256):
        log.warning("%s describes another artifact (sha256 %s…, this one is %s…); no lineage recorded", path,
                    str(data.get("artifact_sha256"))[:12], artifact_sha256[:12])
        return None
    return data


def record_sagemaker_run(artifact: Path, job_name: str, job_arn: str, region: str, train: Sequence[str],
                         validation: Sequence[str], hyperparameters: Mapping[str, str],
                         final_validation_map: Optional[float] = None) -> Optional[Path]:
    """``lineage.json`` beside a downloaded SageMaker artifact. The job is paid for and done by now, so a manifest
    that cannot be read again only costs the lineage (a warning), never the command's success."""
    from cloud_training.errors import CloudTrainingError
    from edge_runtime.model import sha256_of

    try:
        lineage = training_lineage(
            backend="sagemaker", job={"training_job_name": job_name, "training_job_arn": job_arn, "region": region},
            train=train, validation=validation, hyperparameters=hyperparameters, artifact_sha256=sha256_of(artifact),
            epochs_done=int(hyperparameters["epochs"]) if str(hyperparameters.get("epochs", "")).isdigit() else None,
        )
        # the built-in algorithm reports validation:mAP per epoch; SageMaker keeps the last as the job's final metric
        # (which epoch was best is in the job's CloudWatch log, not its description)
        lineage["final_validation_map"] = final_validation_map
    except CloudTrainingError as error:
        log.warning("no lineage.json beside %s: %s", artifact, error)
        return None
    return write_lineage(artifact.parent, lineage)


def describe_score(lineage: Mapping[str, Any]) -> str:
    """How the run scored, in the words inspect, convert and the report share: the best epoch of a local run, or a
    SageMaker job's final validation:mAP."""

    def number(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, (int, float)) else "-"

    if lineage.get("best_epoch") is None and lineage.get("final_validation_map") is not None:
        final = number(lineage["final_validation_map"])
        return f"final validation mAP {final} after {lineage.get('epochs_done')} epochs"
    return (f"best epoch {lineage.get('best_epoch')} of {lineage.get('epochs_done')},"
            f" validation mAP {number(lineage.get('best_validation_map'))}")  # fmt: skip
