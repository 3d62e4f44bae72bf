"""The dry-run requests of train --backend sagemaker and tune, checked against botocore's SageMaker service model
(the same validation a real call makes), and the checks that refuse bad input before any call."""

from __future__ import annotations

import json

import pytest

from cloud_training.cli import main
from cloud_training.errors import HyperparameterError
from cloud_training.training.remote import parse_range

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
COMMON = ["--train", "s3://b/p/train.manifest", "--validation", "s3://b/p/validation.manifest", "--output", "s3://b/out",
          "--role", ROLE, "--label-attribute", "bb", "--region", "eu-west-1", "--job-name", "ssd-1", "--dry-run"]


@pytest.fixture(autouse=True)
def no_aws(monkeypatch, tmp_path):
    """Nothing here may reach AWS: no credentials, and an endpoint where nothing listens."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def validate(operation: str, request: dict) -> None:
    import botocore.session
    from botocore.validate import validate_parameters

    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model(operation).input_shape)


def dry_run(argv: list[str], capsys) -> dict:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    result: dict = json.loads(out)
    return result


def test_training_request_is_valid_for_the_service_and_holds_the_seed_settings(capsys):
    request = dry_run(["train", "--backend", "sagemaker", *COMMON, "base_network=resnet-50", "num_classes=2",
                       "num_training_samples=1200", "mini_batch_size=30", "lr_scheduler_step=10,20"], capsys)
    validate("CreateTrainingJob", request)
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "685385470294.dkr.ecr.eu-west-1.amazonaws.com/object-detection:1", "TrainingInputMode": "Pipe"}
    assert [c["DataSource"]["S3DataSource"]["AttributeNames"] for c in request["InputDataConfig"]] == [
        ["source-ref", "bb"], ["source-ref", "bb"]]
    assert request["HyperParameters"]["lr_scheduler_step"] == "10,20"
    assert "EnableManagedSpotTraining" not in request and "Tags" not in request


def test_tuning_request_is_valid_for_the_service(capsys):
    request = dry_run(["tune", *COMMON, "--range", "learning_rate=0.00001:0.5:log", "--range", "optimizer=sgd,adam",
                       "--range", "mini_batch_size=8:64", "--max-jobs", "20", "--parallel-jobs", "4", "--spot",
                       "--tag", "team=vision", "base_network=vgg-16", "num_classes=2", "num_training_samples=10"],
                      capsys)
    validate("CreateHyperParameterTuningJob", request)
    definition = request["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 172800}
    assert "learning_rate" not in definition["StaticHyperParameters"]
    assert request["Tags"] == [{"Key": "team", "Value": "vision"}]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["base_network=tiny-cnn", "num_classes=2"], "base_network 'tiny-cnn' runs only with --backend local"),
        (["num_classes=2", "learning_rat=0.1"], "unknown hyperparameter 'learning_rat' (did you mean learning_rate?)"),
        (["num_classes=2", "image_shape=256"], "image_shape must be ≥ 300 for vgg-16"),
        (["num_classes=2", "--instance-type", "ml.p9.mega"], "'ml.p9.mega' is not a SageMaker training instance"),
        (["num_classes=2", "--checkpoint-s3", "s3://b/c"], "--checkpoint-s3 is for managed spot training"),
        (["num_classes=2", "--spot", "--spot-max-wait", "60"], "must be at least --max-runtime"),
        (["num_classes=2", "--job-name", "bad_name"], "--job-name 'bad_name'"),
        (["num_classes=2", "--role", "SageMakerRole"], "--role must be an IAM role ARN"),
        (["num_classes=2", "--resume"], "--resume and --pretrained-params are for --backend local"),
    ],
)
def test_bad_input_is_one_line_before_any_call(extra, message, capsys):
    assert main(["train", "--backend", "sagemaker", *COMMON, "num_training_samples=10", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_manifests_must_be_single_s3_objects(capsys):
    argv = ["train", "--backend", "sagemaker", *COMMON, "num_classes=2", "num_training_samples=5"]
    argv[argv.index("s3://b/p/train.manifest")] = "data/train.manifest"
    assert main(argv) == 2
    assert "SageMaker reads manifests from S3" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nms_threshold=0.1:0.5", "SageMaker tunes learning_rate, mini_batch_size"),
        ("learning_rate=0:0.1", "'0' is not a number in (0.0, 1.0]"),
        ("learning_rate=0.1:0.01", "min 0.1 must be below max 0.01"),
        ("mini_batch_size=8:16:log2", "scaling must be one of auto, linear, log, reverse-log"),
        ("optimizer=sgd,adagrad", "'adagrad' is not one of"),
        ("optimizer=sgd", "at least two different choices"),
        ("momentum", "expected name=min:max[:scaling] or name=a,b,c"),
    ],
)
def test_ranges_are_checked_against_the_documented_table(text, message):
    with pytest.raises(HyperparameterError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        parse_range(text)


def test_fixed_and_tuned_at_once_is_refused(capsys):
    assert main(["tune", *COMMON, "--range", "momentum=0.5:0.9", "num_classes=2", "num_training_samples=3",
                 "momentum=0.9"]) == 2
    assert "momentum is both fixed and tuned" in capsys.readouterr().err
