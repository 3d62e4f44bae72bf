"""The preflight against moto's server (real boto3 calls on loopback): it reads the manifests and asks S3 each
bucket's region, refuses in one line, and SageMaker then never hears of the job."""

from __future__ import annotations

import json
import uuid

from cloud_training.cli import main
from tests.integration.sagemaker_helpers import ROLE, put_manifests
from tests.support.groundtruth import gt_line


def sagemaker_jobs(endpoint: str) -> set[str]:
    import boto3

    client = boto3.session.Session().client("sagemaker", endpoint_url=endpoint, region_name="us-east-1")
    return {job["TrainingJobName"] for job in client.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]}


def train_args(train: str, validation: str, output: str, name: str, *words: str) -> list[str]:
    return ["train", "--backend", "sagemaker", "--train", train, "--validation", validation, "--output", output,
            "--role", ROLE, "--job-name", name, *words]


def test_images_in_a_bucket_of_another_region_are_refused_and_no_job_is_created(s3_bucket, moto_endpoint, capsys):
    elsewhere = f"images-{uuid.uuid4().hex[:8]}"
    s3_bucket.client.create_bucket(Bucket=elsewhere, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    lines = [gt_line(f"s3://{elsewhere}/frames/{i}.jpg", [(1, 1, 5, 5)]) for i in range(4)]
    train = s3_bucket.put("p/train.manifest", "".join(json.dumps(line) + "\n" for line in lines[:3]))
    validation = s3_bucket.put("p/validation.manifest", json.dumps(lines[3]) + "\n")
    name = f"ssd-{uuid.uuid4().hex[:8]}"
    assert main(train_args(train, validation, s3_bucket.uri("jobs"), name, "num_classes=1")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"cloud-training: error: {train}:1: bucket {elsewhere} is in eu-west-1, not in the job's region "
                   "us-east-1; copy the data there or pass --region eu-west-1\n")
    assert name not in sagemaker_jobs(moto_endpoint)


def test_a_wrong_sample_count_is_refused_and_the_counted_one_is_sent(s3_bucket, moto_endpoint, capsys):
    train, validation = put_manifests(s3_bucket, train_lines=6, validation_lines=2)
    name = f"ssd-{uuid.uuid4().hex[:8]}"
    assert main(train_args(train, validation, s3_bucket.uri("jobs"), name, "num_classes=1",
                           "num_training_samples=5000")) == 2
    assert f"num_training_samples=5000 but {train} has 6 labelled lines" in capsys.readouterr().err
    assert name not in sagemaker_jobs(moto_endpoint)
    assert main(train_args(train, validation, s3_bucket.uri("jobs"), name, "num_classes=1")) == 0
    import boto3

    client = boto3.session.Session().client("sagemaker", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert client.describe_training_job(TrainingJobName=name)["HyperParameters"]["num_training_samples"] == "6"


def test_tune_refuses_a_cpu_instance_after_reading_and_before_creating(s3_bucket, moto_endpoint, capsys):
    train, validation = put_manifests(s3_bucket, train_lines=4, validation_lines=2)
    assert main(["tune", "--train", train, "--validation", validation, "--output", s3_bucket.uri("t"), "--role", ROLE,
                 "--job-name", "tune-cpu", "--instance-type", "ml.c5.xlarge", "--range", "optimizer=sgd,adam",
                 "num_classes=1"]) == 2
    assert "--instance-type ml.c5.xlarge: the object detection algorithm trains on GPU instances only" in \
        capsys.readouterr().err
