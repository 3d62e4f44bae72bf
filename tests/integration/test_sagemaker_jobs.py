"""train --backend sagemaker and tune, end to end against moto's server on loopback (real boto3 calls), and the
paths moto cannot produce (status transitions, failures, AccessDenied, throttling) with botocore's Stubber or a
loopback server that throttles. No network beyond 127.0.0.1, no credentials (dummy ones from the fixture)."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from typing import ClassVar

import pytest

from cloud_training.cli import main
from tests.integration.sagemaker_helpers import ROLE, SECRET, put_artifact, put_manifests, stubbed, use_client

IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"


def sagemaker_client(endpoint: str):
    import boto3

    return boto3.session.Session().client("sagemaker", endpoint_url=endpoint, region_name="us-east-1")


def expected_channel(name: str, uri: str) -> dict:
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": "AugmentedManifestFile", "S3Uri": uri,
                                        "S3DataDistributionType": "FullyReplicated",
                                        "AttributeNames": ["source-ref", "bb"]}},
        "ContentType": "application/x-recordio", "RecordWrapperType": "RecordIO", "CompressionType": "None",
        "InputMode": "Pipe",
    }  # fmt: skip


def test_train_on_moto_creates_the_job_follows_it_downloads_and_converts(s3_bucket, moto_endpoint, tmp_path, capsys):
    train, validation = put_manifests(s3_bucket, train_lines=7)
    name = f"ssd-moto-{uuid.uuid4().hex[:8]}"
    artifact = put_artifact(s3_bucket, f"jobs/{name}/output/model.tar.gz", tmp_path)
    code = main([
        "train", "--backend", "sagemaker", "--train", train, "--validation", validation,
        "--output", s3_bucket.uri("jobs"), "--role", ROLE, "--job-name", name, "--instance-type", "ml.p3.8xlarge",
        "--volume-size", "200", "--max-runtime", "3600", "--tag", "project=ssd", "--spot",
        "--checkpoint-s3", s3_bucket.uri("checkpoints/"), "--wait", "--poll-interval", "0.1", "--out",
        str(tmp_path / "run"), "base_network=resnet-50", "num_classes=2", "image_shape=512", "mini_batch_size=16",
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    job = sagemaker_client(moto_endpoint).describe_training_job(TrainingJobName=name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert job["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
    assert job["InputDataConfig"] == [expected_channel("train", train), expected_channel("validation", validation)]
    assert job["HyperParameters"] == {"base_network": "resnet-50", "num_classes": "2", "image_shape": "512",
                                      "mini_batch_size": "16", "num_training_samples": "7"}
    assert job["RoleArn"] == ROLE
    assert job["ResourceConfig"] == {"InstanceType": "ml.p3.8xlarge", "InstanceCount": 1, "VolumeSizeInGB": 200}
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert job["EnableManagedSpotTraining"] is True
    assert job["CheckpointConfig"] == {"S3Uri": s3_bucket.uri("checkpoints/")}
    assert job["OutputDataConfig"]["S3OutputPath"] == s3_bucket.uri("jobs")
    assert f"training job {name}: Completed" in out
    assert "validation:mAP not reported" in out  # moto records no algorithm metrics
    downloaded = tmp_path / "run" / "model.tar.gz"
    assert downloaded.read_bytes() == artifact
    assert main(["convert", str(downloaded), "--out", str(tmp_path / "model")]) == 0, capsys.readouterr().err
    assert (tmp_path / "model" / "deploy_model_algo_1-symbol.json").is_file()


def test_tune_on_moto_creates_the_tuning_job_and_fetches_the_best_artifact(
    s3_bucket, moto_endpoint, tmp_path, capsys
):
    train, validation = put_manifests(s3_bucket, train_lines=5)
    client = sagemaker_client(moto_endpoint)
    # moto's tuning jobs always name "FakeTrainingJobName" as the best job: make that job exist, with an artifact
    best = "FakeTrainingJobName"
    existing = {j["TrainingJobName"] for j in client.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]}
    if best not in existing:
        client.create_training_job(
            TrainingJobName=best, AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"},
            RoleArn=ROLE, OutputDataConfig={"S3OutputPath": s3_bucket.uri("tuning")},
            ResourceConfig={"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
        )
    artifact_uri = client.describe_training_job(TrainingJobName=best)["ModelArtifacts"]["S3ModelArtifacts"]
    bucket_name, _, key = artifact_uri[len("s3://"):].partition("/")
    s3_bucket.client.put_object(Bucket=bucket_name, Key=key, Body=put_artifact(s3_bucket, "spare.tar.gz", tmp_path))
    name = f"tune-{uuid.uuid4().hex[:8]}"
    code = main([
        "tune", "--train", train, "--validation", validation, "--output", s3_bucket.uri("tuning"), "--role", ROLE,
        "--job-name", name, "--max-jobs", "6", "--parallel-jobs", "2",
        "--range", "learning_rate=0.0001:0.05:log", "--range", "mini_batch_size=8:32", "--range", "momentum=0.8:0.99",
        "--range", "weight_decay=0.0001:0.001", "--range", "optimizer=sgd,adam",
        "--wait", "--poll-interval", "0.1", "--out", str(tmp_path / "tuned"),
        "base_network=resnet-50", "num_classes=2", "epochs=10",
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    job = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    config = job["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:mAP"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}
    ranges = config["ParameterRanges"]
    assert ranges["IntegerParameterRanges"] == [
        {"Name": "mini_batch_size", "MinValue": "8", "MaxValue": "32", "ScalingType": "Auto"}]
    assert ranges["ContinuousParameterRanges"][0] == {
        "Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "0.05", "ScalingType": "Logarithmic"}
    assert ranges["CategoricalParameterRanges"] == [{"Name": "optimizer", "Values": ["sgd", "adam"]}]
    definition = job["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {
        "base_network": "resnet-50", "num_classes": "2", "epochs": "10", "num_training_samples": "5"}
    assert definition["AlgorithmSpecification"] == {"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"}
    assert definition["InputDataConfig"][0] == expected_channel("train", train)
    assert f"tuning job {name}: Completed" in out and f"best training job {best}" in out
    downloaded = tmp_path / "tuned" / "model.tar.gz"
    assert main(["convert", str(downloaded), "--out", str(tmp_path / "model")]) == 0, capsys.readouterr().err


def job_args(bucket, *extra: str) -> list[str]:
    """A training submission on 40 training lines (the count given, and checked by the preflight)."""
    train, validation = put_manifests(bucket, train_lines=40, validation_lines=3)
    return [
        "train", "--backend", "sagemaker", "--train", train,
        "--validation", validation, "--output", bucket.uri("jobs"), "--role", ROLE,
        "--label-attribute", "bb", *extra,
        "base_network=vgg-16", "num_classes=3", "num_training_samples=40",
    ]  # fmt: skip


def described(status: str, secondary: str, message: str = "", **extra) -> dict:
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    response = {
        "TrainingJobName": "ssd-stub",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/ssd-stub",
        "ModelArtifacts": {"S3ModelArtifacts": extra.pop("artifact", "s3://nowhere/x")},
        "TrainingJobStatus": status, "SecondaryStatus": secondary,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"},
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400}, "CreationTime": now,
        "SecondaryStatusTransitions": [{"Status": secondary, "StartTime": now, "StatusMessage": message}],
    }  # fmt: skip
    response.update(extra)
    return response


def test_wait_reports_transitions_and_the_final_map_then_downloads(s3_bucket, tmp_path, monkeypatch, capsys):
    client, stub = stubbed("sagemaker")
    artifact = put_artifact(s3_bucket, "jobs/ssd-stub/output/model.tar.gz", tmp_path)
    stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/ssd-stub"})
    for response in (
        described("InProgress", "Starting", "Preparing the instances for training"),
        described("InProgress", "Starting", "Preparing the instances for training"),
        described("InProgress", "Training", "Training image download completed. Training in progress."),
        described("Completed", "Completed", "Training job completed", artifact=s3_bucket.uri(
            "jobs/ssd-stub/output/model.tar.gz"), FinalMetricDataList=[
            {"MetricName": "validation:mAP", "Value": 0.8125}, {"MetricName": "train:progress", "Value": 100.0}]),
    ):
        stub.add_response("describe_training_job", response, {"TrainingJobName": "ssd-stub"})
    use_client(monkeypatch, "sagemaker", client)
    with stub:
        code = main(job_args(s3_bucket, "--job-name", "ssd-stub", "--wait", "--poll-interval", "0.01",
                             "--out", str(tmp_path / "run")))
        stub.assert_no_pending_responses()
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("training job ssd-stub:")]
    assert lines == [
        "training job ssd-stub: InProgress / Starting: Preparing the instances for training",
        "training job ssd-stub: InProgress / Training: Training image download completed. Training in progress.",
        "training job ssd-stub: Completed / Completed: Training job completed",
        "training job ssd-stub: validation:mAP 0.8125",
    ]
    assert (tmp_path / "run" / "model.tar.gz").read_bytes() == artifact
    lineage = json.loads((tmp_path / "run" / "lineage.json").read_text())  # for convert, into model.json
    assert lineage["backend"] == "sagemaker" and lineage["final_validation_map"] == 0.8125
    assert lineage["job"]["training_job_arn"] == "arn:aws:sagemaker:us-east-1:1:training-job/ssd-stub"
    from cloud_training.lineage import describe_score

    assert describe_score(lineage).startswith("final validation mAP 0.8125 after ")


def test_a_failed_job_prints_its_failure_reason_and_exits_non_zero(s3_bucket, tmp_path, monkeypatch, capsys):
    client, stub = stubbed("sagemaker")
    stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/ssd-stub"})
    stub.add_response("describe_training_job", described("InProgress", "Training"), {"TrainingJobName": "ssd-stub"})
    reason = "ClientError: Unable to initialize the algorithm. label_width is too small"
    stub.add_response("describe_training_job", described("Failed", "Failed", FailureReason=reason),
                      {"TrainingJobName": "ssd-stub"})
    use_client(monkeypatch, "sagemaker", client)
    with stub:
        code = main(job_args(s3_bucket, "--job-name", "ssd-stub", "--wait", "--poll-interval", "0.01",
                             "--out", str(tmp_path / "run")))
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"cloud-training: error: training job ssd-stub failed: {reason}\n"
    assert not (tmp_path / "run").exists()


def test_waiting_is_bounded(s3_bucket, tmp_path, monkeypatch, capsys):
    client, stub = stubbed("sagemaker")
    stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/ssd-stub"})
    for _ in range(50):
        stub.add_response("describe_training_job", described("InProgress", "Training"), {"TrainingJobName": "ssd-stub"})
    use_client(monkeypatch, "sagemaker", client)
    with stub:
        code = main(job_args(s3_bucket, "--job-name", "ssd-stub", "--wait", "--poll-interval", "0.05",
                             "--wait-timeout", "0.2"))
    err = capsys.readouterr().err
    assert code == 2 and "training job ssd-stub is still running after --wait-timeout 0.2 s" in err


def test_access_denied_names_the_action_and_prints_no_secret(s3_bucket, monkeypatch, capsys):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    client, stub = stubbed("sagemaker")
    stub.add_client_error(
        "create_training_job", service_error_code="AccessDeniedException", http_status_code=400,
        service_message="User: arn:aws:iam::123456789012:user/ml is not authorized to perform: "
                        "sagemaker:CreateTrainingJob on resource: training-job/x",
    )  # fmt: skip
    use_client(monkeypatch, "sagemaker", client)
    with stub:
        code = main(job_args(s3_bucket, "--job-name", "x"))
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("cloud-training: error: access denied: the caller may not sagemaker:CreateTrainingJob (")
    assert err.count("\n") == 1 and SECRET not in out + err


def test_missing_region_and_missing_credentials_are_one_line_each(s3_bucket, tmp_path, monkeypatch, capsys):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    assert main(job_args(s3_bucket, "--job-name", "x")) == 2
    assert capsys.readouterr().err == (
        "cloud-training: error: no AWS region: pass --region or set AWS_REGION (or a region in your AWS profile)\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance metadata service
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    args = job_args(s3_bucket, "--job-name", "x", "--region", "eu-west-1")
    assert main(args) == 2
    err = capsys.readouterr().err  # the preflight's first read is the first call that needs them
    assert err.startswith(f"cloud-training: error: {args[args.index('--train') + 1]}: no AWS credentials: ")
    assert err.count("\n") == 1


class Throttler(http.server.BaseHTTPRequestHandler):
    """SageMaker's JSON protocol on loopback: answers ThrottlingException ``throttles`` times, then success."""

    throttles: ClassVar[int] = 0
    requests: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).requests.append(self.headers.get("X-Amz-Target", ""))
        if len(type(self).requests) <= type(self).throttles:
            body, status = {"__type": "ThrottlingException", "message": "Rate exceeded"}, 400
        else:
            body, status = {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x"}, 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def throttler(s3_bucket, moto_endpoint, monkeypatch) -> Iterator[type[Throttler]]:
    """The loopback throttling server as SageMaker's endpoint (S3 stays moto's, for the preflight's reads), with
    botocore's backoff sleeps made zero-length (the retry decisions stay botocore's own)."""
    from botocore.retries import standard

    from cloud_training import storage

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    storage._client.cache_clear()

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    Throttler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Throttler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield Throttler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_throttled_call_is_retried_by_botocore_then_succeeds(s3_bucket, throttler, capsys):
    throttler.throttles = 2
    code = main(job_args(s3_bucket, "--job-name", "x"))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert throttler.requests == ["SageMaker.CreateTrainingJob"] * 3
    assert "training job x created" in out


def test_a_call_still_throttled_after_the_retries_is_one_line(s3_bucket, throttler, capsys):
    throttler.throttles = 99
    assert main(job_args(s3_bucket, "--job-name", "x")) == 2
    out, err = capsys.readouterr()
    assert throttler.requests == ["SageMaker.CreateTrainingJob"] * 3
    assert err == ("cloud-training: error: sagemaker:CreateTrainingJob was throttled (ThrottlingException) and still "
                   "failed after 3 attempt(s); try again later or raise AWS_MAX_ATTEMPTS\n")
    assert SECRET not in out + err


def test_a_failed_tuning_job_is_one_line_after_its_progress(s3_bucket, monkeypatch, capsys):
    client, stub = stubbed("sagemaker")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/tune-stub"
    stub.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": arn})
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)

    def tuning(status: str, completed: int, running: int, failed: int, **extra) -> dict:
        return {
            "HyperParameterTuningJobName": "tune-stub", "HyperParameterTuningJobArn": arn,
            "HyperParameterTuningJobConfig": {"Strategy": "Bayesian",
                                              "ResourceLimits": {"MaxParallelTrainingJobs": 2}},
            "HyperParameterTuningJobStatus": status, "CreationTime": now,
            "TrainingJobStatusCounters": {"Completed": completed, "InProgress": running, "NonRetryableError": failed},
            "ObjectiveStatusCounters": {}, **extra,
        }  # fmt: skip

    for response in (tuning("InProgress", 0, 2, 0), tuning("InProgress", 1, 1, 1),
                     tuning("Failed", 1, 0, 3, FailureReason="too many training jobs failed")):
        stub.add_response("describe_hyper_parameter_tuning_job", response,
                          {"HyperParameterTuningJobName": "tune-stub"})
    use_client(monkeypatch, "sagemaker", client)
    with stub:
        train, validation = put_manifests(s3_bucket, train_lines=9, validation_lines=3)
        code = main(["tune", "--train", train, "--validation", validation,
                     "--output", s3_bucket.uri("tuning"), "--role", ROLE, "--label-attribute", "bb",
                     "--job-name", "tune-stub", "--range", "momentum=0.5:0.95", "--max-jobs", "4",
                     "--wait", "--poll-interval", "0.01", "num_classes=2", "num_training_samples=9"])
    out, err = capsys.readouterr()
    assert code == 2
    assert [line for line in out.splitlines() if line.startswith("tuning job tune-stub:")] == [
        "tuning job tune-stub: InProgress: 0 completed, 2 in progress, 0 failed, 0 stopped",
        "tuning job tune-stub: InProgress: 1 completed, 1 in progress, 1 failed, 0 stopped",
        "tuning job tune-stub: Failed: 1 completed, 0 in progress, 3 failed, 0 stopped",
    ]
    assert err == "cloud-training: error: tuning job tune-stub failed: too many training jobs failed\n"


def test_attach_follows_an_existing_job_to_its_artifact_without_creating_one(s3_bucket, tmp_path, monkeypatch, capsys):
    client, stub = stubbed("sagemaker")  # no create_training_job queued: creating one would fail the test
    artifact = put_artifact(s3_bucket, "jobs/ssd-stub/output/model.tar.gz", tmp_path)
    for response in (
        described("InProgress", "Training", "Training in progress."),
        described("Completed", "Completed", "Training job completed", artifact=s3_bucket.uri(
            "jobs/ssd-stub/output/model.tar.gz"), FinalMetricDataList=[{"MetricName": "validation:mAP", "Value": 0.5}]),
    ):
        stub.add_response("describe_training_job", response, {"TrainingJobName": "ssd-stub"})
    use_client(monkeypatch, "sagemaker", client)
    with stub:
        code = main(["train", "--backend", "sagemaker", "--attach", "ssd-stub", "--poll-interval", "0.01",
                     "--out", str(tmp_path / "run")])
        stub.assert_no_pending_responses()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("training job ssd-stub:")] == [
        "training job ssd-stub: InProgress / Training: Training in progress.",
        "training job ssd-stub: Completed / Completed: Training job completed",
        "training job ssd-stub: validation:mAP 0.5000",
    ]
    assert (tmp_path / "run" / "model.tar.gz").read_bytes() == artifact


@pytest.mark.parametrize(("extra", "message"), [
    (["--train", "s3://b/t.manifest"], "--attach follows an existing job; --train is for starting one"),
    (["num_classes=2"], "--attach follows an existing job; hyperparameters is for starting one"),
    (["--out", "{run}"], "already holds model.tar.gz"),
])
def test_attach_refuses_what_only_starting_a_job_takes_before_any_call(s3_bucket, tmp_path, monkeypatch, capsys,
                                                                       extra, message):
    client, stub = stubbed("sagemaker")
    (tmp_path / "model.tar.gz").write_bytes(b"an earlier model")
    use_client(monkeypatch, "sagemaker", client)
    with stub:
        code = main(["train", "--attach", "ssd-stub", *[word.format(run=tmp_path) for word in extra]])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err
    assert (tmp_path / "model.tar.gz").read_bytes() == b"an earlier model"


def test_incremental_training_sends_the_model_channel(s3_bucket, moto_endpoint, tmp_path, capsys):
    train, validation = put_manifests(s3_bucket, train_lines=5)
    previous = s3_bucket.uri("jobs/earlier/output/model.tar.gz")
    put_artifact(s3_bucket, "jobs/earlier/output/model.tar.gz", tmp_path, {"base_network": "resnet-50"})
    other = s3_bucket.uri("jobs/other/output/model.tar.gz")
    put_artifact(s3_bucket, "jobs/other/output/model.tar.gz", tmp_path, {"base_network": "resnet-50",
                                                                          "num_classes": "3"})
    name = f"ssd-inc-{uuid.uuid4().hex[:8]}"
    argv = ["train", "--backend", "sagemaker", "--train", train, "--validation", validation, "--output",
            s3_bucket.uri("jobs"), "--role", ROLE, "--job-name", name, "base_network=resnet-50", "num_classes=2"]
    assert main([*argv, "--model-channel", s3_bucket.uri("jobs/missing/model.tar.gz")]) == 2
    assert "--model-channel s3://" in capsys.readouterr().err
    assert main([*argv, "--model-channel", s3_bucket.uri("jobs/earlier/output/")]) == 2
    assert "--model-channel must be the s3:// URI of a model.tar.gz" in capsys.readouterr().err
    # an earlier model of other classes (or network): its weights do not fit this job's graph
    assert main([*argv, "--model-channel", other]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and (f"--model-channel {other}: the earlier model was trained with num_classes=3,"
                                      " this job has num_classes=2") in err
    assert main([*argv, "--model-channel", s3_bucket.uri("jobs/earlier/output/")]) == 2
    capsys.readouterr()
    assert main([*argv, "--model-channel", previous]) == 0, capsys.readouterr().err
    job = sagemaker_client(moto_endpoint).describe_training_job(TrainingJobName=name)
    assert [channel["ChannelName"] for channel in job["InputDataConfig"]] == ["train", "validation", "model"]
    assert job["InputDataConfig"][2] == {
        "ChannelName": "model", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": previous, "S3DataDistributionType": "FullyReplicated"}},
        "ContentType": "application/x-sagemaker-model", "CompressionType": "None", "InputMode": "File"}
