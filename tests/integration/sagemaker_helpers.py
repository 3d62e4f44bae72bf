"""Arrangements shared by the SageMaker and publish tests: manifests and artifacts on moto's S3, stubbed clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from cloud_training.aws import session
from tests.support.groundtruth import gt_line
from tests.support.models import training_artifact_files, write_tarball

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
SECRET = "SECRETx9Q2testonlyNEVERprint"  # a dummy secret key whose appearance in any output would be a leak


def put_manifests(bucket: Any, train_lines: int = 7, validation_lines: int = 3) -> tuple[str, str]:
    """Ground Truth lines (images on S3, label attribute ``bb``) as train and validation manifests on moto."""
    def text(count: int, prefix: str) -> str:
        lines = [gt_line(f"s3://{bucket.name}/frames/{prefix}{i}.jpg", [(10, 10, 50, 40)],
                         color="blue" if i % 2 else "yellow") for i in range(count)]
        return "".join(json.dumps(line) + "\n" for line in lines)

    return (bucket.put("prepared/train.manifest", text(train_lines, "t")),
            bucket.put("prepared/validation.manifest", text(validation_lines, "v")))


def put_artifact(bucket: Any, key: str, tmp_path: Path, hyperparameters: Optional[dict[str, str]] = None) -> bytes:
    """A real SageMaker-layout model.tar.gz (tiny-cnn, random weights) at ``key``, as a finished job leaves it;
    ``hyperparameters`` over its hyperparams.json (what a --model-channel check reads)."""
    tarball = write_tarball(tmp_path / "upload-model.tar.gz", training_artifact_files(hyperparameters=hyperparameters))
    data = tarball.read_bytes()
    bucket.put(key, data)
    return data


def use_client(monkeypatch: Any, service: str, client: Any) -> None:
    """Route ``session.client(service, ...)`` to ``client`` (a stubbed one); every other service stays real."""
    real = session.make_client

    def make(name: str, region: str) -> Any:
        return client if name == service else real(name, region)

    monkeypatch.setattr(session, "make_client", make)


def stubbed(service: str) -> tuple[Any, Any]:
    """A real botocore client for ``service`` with a Stubber, so each request is checked against the service model."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.session.Session().client(service, region_name="us-east-1")
    return client, Stubber(client)
