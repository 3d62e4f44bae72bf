"""The dry-run requests of train --backend sagemaker and tune, checked against botocore's SageMaker service model
(the same validation a real call makes), and the preflight that refuses bad input before any SageMaker call.

S3 is botocore's Stubber (each request checked against the S3 model): the manifests the preflight reads and the
bucket regions it asks for; an unexpected call fails the test, so "no call" is checked too."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cloud_training import storage
from cloud_training.cli import main
from cloud_training.errors import HyperparameterError
from cloud_training.training.remote import parse_range
from tests.support.groundtruth import gt_line

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


def lines(count: int, prefix: str, bucket: str = "b", boxes: int = 1, class_id: int = 0) -> list[dict]:
    return [gt_line(f"s3://{bucket}/frames/{prefix}{i}.jpg", [(10, 10, 5, 5)] * boxes, class_id=class_id)
            for i in range(count)]


@dataclass
class StubbedS3:
    """The S3 the preflight sees: objects to read and bucket regions, answered in the order asked."""

    client: Any
    stubber: Any

    def manifest(self, key: str, items: list, bucket: str = "b") -> None:
        from botocore.response import StreamingBody

        data = "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items).encode()
        self.stubber.add_response("get_object", {"Body": StreamingBody(io.BytesIO(data), len(data))},
                                  {"Bucket": bucket, "Key": key})

    def region(self, bucket: str, region: str) -> None:
        self.stubber.add_response("get_bucket_location", {"LocationConstraint": region}, {"Bucket": bucket})

    def job(self, train: list, validation: list, region: str = "eu-west-1") -> None:
        """The calls of a passing preflight: both manifests, then the one bucket's region."""
        self.manifest("p/train.manifest", train)
        self.manifest("p/validation.manifest", validation)
        self.region("b", region)


@pytest.fixture
def s3(monkeypatch) -> Iterator[StubbedS3]:
    import boto3
    from botocore.stub import Stubber

    client = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y").client(
        "s3", region_name="eu-west-1")
    stubber = Stubber(client)
    monkeypatch.setattr(storage, "s3_client", lambda: client)
    with stubber:
        yield StubbedS3(client, stubber)
    stubber.assert_no_pending_responses()


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


def test_training_request_is_valid_for_the_service_and_holds_the_seed_settings(s3, capsys):
    s3.job(lines(12, "t"), lines(3, "v"))
    request = dry_run(["train", "--backend", "sagemaker", *COMMON, "base_network=resnet-50", "num_classes=2",
                       "mini_batch_size=30", "lr_scheduler_step=10,20"], capsys)
    validate("CreateTrainingJob", request)
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "685385470294.dkr.ecr.eu-west-1.amazonaws.com/object-detection:1", "TrainingInputMode": "Pipe"}
    assert [c["DataSource"]["S3DataSource"]["AttributeNames"] for c in request["InputDataConfig"]] == [
        ["source-ref", "bb"], ["source-ref", "bb"]]
    assert request["HyperParameters"]["lr_scheduler_step"] == "10,20"
    assert request["HyperParameters"]["num_training_samples"] == "12"  # counted by the preflight
    assert "EnableManagedSpotTraining" not in request and "Tags" not in request


def test_tuning_request_is_valid_for_the_service(s3, capsys):
    s3.job(lines(10, "t"), lines(3, "v"))
    request = dry_run(["tune", *COMMON, "--range", "learning_rate=0.00001:0.5:log", "--range", "optimizer=sgd,adam",
                       "--range", "mini_batch_size=8:64", "--range", "momentum=0.0:0.999",
                       "--range", "weight_decay=0.0:0.999", "--max-jobs", "20", "--parallel-jobs", "4", "--spot",
                       "--tag", "team=vision", "base_network=vgg-16", "num_classes=2", "num_training_samples=10"],
                      capsys)
    validate("CreateHyperParameterTuningJob", request)
    definition = request["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 172800}
    assert "learning_rate" not in definition["StaticHyperParameters"]
    continuous = request["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"]
    assert {item["Name"]: (item["MinValue"], item["MaxValue"]) for item in continuous}["momentum"] == ("0.0", "0.999")
    assert request["Tags"] == [{"Key": "team", "Value": "vision"}]


def refused(argv: list[str], capsys) -> str:
    """Exit 2 and exactly one line on stderr, nothing on stdout (no request printed)."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["base_network=tiny-cnn", "num_classes=2"], "base_network 'tiny-cnn' runs only with --backend local"),
        (["num_classes=2", "learning_rat=0.1"], "unknown hyperparameter 'learning_rat' (did you mean learning_rate?)"),
        (["num_classes=2", "image_shape=256"], "image_shape must be ≥ 300 for vgg-16"),
        (["num_classes=2", "--resume"], "--resume and --pretrained-params are for --backend local"),
    ],
)
def test_bad_hyperparameters_are_refused_before_any_read(extra, message, s3, capsys):
    assert message in refused(["train", "--backend", "sagemaker", *COMMON, *extra], capsys)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--instance-type", "ml.p9.mega"], "'ml.p9.mega' is not a SageMaker training instance"),
        (["--instance-type", "ml.c5.xlarge"], "--instance-type ml.c5.xlarge: the object detection algorithm trains "
                                              "on GPU instances only"),
        (["--instance-type", "ml.m5.large"], "--instance-type ml.m5.large: the object detection algorithm"),
        (["--checkpoint-s3", "s3://b/c"], "--checkpoint-s3 is for managed spot training"),
        (["--spot", "--spot-max-wait", "60"], "--spot-max-wait (60) must be at least --max-runtime"),
        (["epochs=5", "lr_scheduler_step=3,10"], "lr_scheduler_step=3,10: step 10 is not below epochs=5"),
        (["--role", "SageMakerRole"], "--role must be an IAM role ARN"),
        (["--tag", "aws:x=1"], "--tag aws:x: keys starting with 'aws:' are reserved"),
    ],
)
def test_bad_job_options_are_refused_before_any_read(extra, message, s3, capsys):
    """Each needs neither a manifest nor AWS: refused before the first S3 call (the stub holds no response), so a
    wrong flag is named even without credentials."""
    assert message in refused(["train", "--backend", "sagemaker", *COMMON, "num_classes=1", *extra], capsys)


@pytest.mark.parametrize(
    ("train", "validation", "words", "message"),
    [
        (lines(3, "t") + lines(1, "u", class_id=1), lines(2, "v"), ["num_classes=1"],
         "s3://b/p/train.manifest:4: box 1 has class_id 1 but num_classes=1 allows 0..0"),
        (lines(2, "t"), lines(1, "v", boxes=80), ["num_classes=1"],
         "s3://b/p/validation.manifest:1: 80 boxes but label_width=350 allows 69"),
        (lines(2, "t"), lines(1, "v", boxes=30), ["num_classes=1", "label_width=150"],
         "validation.manifest:1: 30 boxes but label_width=150 allows 29"),
        (lines(5, "t"), lines(2, "v"), ["num_classes=1", "num_training_samples=5000"],
         "num_training_samples=5000 but s3://b/p/train.manifest has 5 labelled lines"),
        (lines(3, "t"), lines(2, "t"), ["num_classes=1"],
         "s3://b/p/validation.manifest:1: image s3://b/frames/t0.jpg is also in the training manifest "
         "(s3://b/p/train.manifest:1)"),
        ([*lines(2, "t"), gt_line("frames/local.jpg", [(1, 1, 2, 2)])], lines(2, "v"), ["num_classes=1"],
         "s3://b/p/train.manifest:3: source-ref 'frames/local.jpg' is not an s3:// URI"),
    ],
)
def test_manifests_that_would_fail_the_job_name_the_line(train, validation, words, message, s3, capsys):
    s3.manifest("p/train.manifest", train)
    s3.manifest("p/validation.manifest", validation)
    assert message in refused(["train", "--backend", "sagemaker", *COMMON, *words], capsys)


def test_a_relative_source_ref_is_refused_even_inside_an_s3_manifest(s3, capsys):
    """Here it resolves against the manifest's prefix; SageMaker's Pipe mode resolves nothing."""
    s3.manifest("p/train.manifest", [gt_line(f"../frames/t{i}.jpg", [(1, 1, 2, 2)]) for i in range(3)])
    s3.manifest("p/validation.manifest", lines(2, "v"))
    err = refused(["train", "--backend", "sagemaker", *COMMON, "num_classes=1"], capsys)
    assert "s3://b/p/train.manifest:1: source-ref '../frames/t0.jpg' is not an s3:// URI" in err


def test_images_in_a_bucket_of_another_region_are_refused(s3, capsys):
    s3.manifest("p/train.manifest", lines(3, "t", bucket="images-us"))
    s3.manifest("p/validation.manifest", lines(2, "v", bucket="images-us"))
    s3.region("b", "eu-west-1")
    s3.region("images-us", "us-east-2")
    err = refused(["train", "--backend", "sagemaker", *COMMON, "num_classes=1"], capsys)
    assert "s3://b/p/train.manifest:1: bucket images-us is in us-east-2, not in the job's region eu-west-1" in err


def test_validation_equal_to_train_is_refused_before_reading(s3, capsys):
    argv = ["train", "--backend", "sagemaker", *COMMON, "num_classes=1"]
    argv[argv.index("s3://b/p/validation.manifest")] = "s3://b/p/train.manifest"
    assert "--validation s3://b/p/train.manifest is the --train manifest" in refused(argv, capsys)


def test_kv_store_takes_only_the_documented_values(s3, capsys):
    err = refused(["train", "--backend", "sagemaker", *COMMON, "num_classes=1", "kv_store=local"], capsys)
    assert "kv_store must be one of dist_sync, dist_async for SageMaker (got 'local')" in err
    s3.job(lines(3, "t"), lines(2, "v"))
    request = dry_run(["train", "--backend", "sagemaker", *COMMON, "num_classes=1", "kv_store=dist_sync"], capsys)
    assert request["HyperParameters"]["kv_store"] == "dist_sync"


def test_hyperparameters_after_validation_are_not_taken_for_manifests(s3, capsys):
    """argparse's nargs='+' would give --validation every word up to the next option."""
    s3.job(lines(3, "t"), lines(2, "v"))
    argv = ["train", "--backend", "sagemaker", *[w for w in COMMON if w != "--dry-run"], "--dry-run"]
    at = argv.index("s3://b/p/validation.manifest") + 1
    argv[at:at] = ["num_classes=2", "epochs=5"]
    request = dry_run(argv, capsys)
    assert request["HyperParameters"]["num_classes"] == "2" and request["HyperParameters"]["epochs"] == "5"
    assert request["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://b/p/validation.manifest"


def test_manifests_must_be_single_s3_objects(s3, capsys):
    argv = ["train", "--backend", "sagemaker", *COMMON, "num_classes=2", "num_training_samples=5"]
    argv[argv.index("s3://b/p/train.manifest")] = "data/train.manifest"
    assert "SageMaker reads manifests from S3" in refused(argv, capsys)


def test_a_wait_target_holding_a_model_is_refused_before_the_job(s3, tmp_path, capsys):
    (tmp_path / "model.tar.gz").write_bytes(b"the previous run")
    argv = ["train", "--backend", "sagemaker", *COMMON, "--wait", "--out", str(tmp_path), "num_classes=1"]
    assert "already holds model.tar.gz" in refused(argv, capsys)
    assert (tmp_path / "model.tar.gz").read_bytes() == b"the previous run"


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
        ("momentum=0.5:1.0", "'1.0' is not a number in [0.0, 0.999]"),
        ("weight_decay=-0.1:0.5", "'-0.1' is not a number in [0.0, 0.999]"),
    ],
)
def test_ranges_are_checked_against_the_documented_table(text, message):
    with pytest.raises(HyperparameterError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        parse_range(text)


def test_momentum_and_weight_decay_ranges_follow_the_tuning_page():
    assert parse_range("momentum=0.0:0.999").values == ("0.0", "0.999")
    assert parse_range("weight_decay=0:0.5").values == ("0", "0.5")


@pytest.mark.parametrize(
    ("ranges", "strategy", "message"),
    [
        (["learning_rate=0.001:0.01", "learning_rate=0.01:0.1"], "Bayesian",
         "--range learning_rate: given twice"),
        (["optimizer=sgd,adam", "learning_rate=0.001:0.01"], "Grid",
         "--strategy Grid takes categorical ranges only (a,b,c); --range learning_rate"),
    ],
)
def test_tuning_ranges_that_sagemaker_would_refuse_or_misread(ranges, strategy, message, s3, capsys):
    argv = ["tune", *COMMON, "--strategy", strategy, "num_classes=1"]
    for text in ranges:
        argv += ["--range", text]
    assert message in refused(argv, capsys)


def test_grid_over_categorical_ranges_passes(s3, capsys):
    s3.job(lines(3, "t"), lines(2, "v"))
    request = dry_run(["tune", *COMMON, "--strategy", "Grid", "--range", "optimizer=sgd,adam", "num_classes=1"],
                      capsys)
    assert request["HyperParameterTuningJobConfig"]["Strategy"] == "Grid"


def test_grid_over_listed_numbers_passes_as_the_refusal_advises(s3, capsys):
    """'list its values': a numeric hyperparameter given as a list is a categorical range, each value checked."""
    s3.job(lines(3, "t"), lines(2, "v"))
    request = dry_run(["tune", *COMMON, "--strategy", "Grid", "--range", "learning_rate=0.001,0.01",
                       "--range", "mini_batch_size=8,16", "num_classes=1"], capsys)
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "learning_rate", "Values": ["0.001", "0.01"]},
                                                    {"Name": "mini_batch_size", "Values": ["8", "16"]}]
    assert ranges["ContinuousParameterRanges"] == [] and ranges["IntegerParameterRanges"] == []
    with pytest.raises(HyperparameterError, match="'2' is not a number in"):
        parse_range("learning_rate=0.01,2")


def test_fixed_and_tuned_at_once_is_refused(s3, capsys):
    s3.job(lines(3, "t"), lines(2, "v"))
    assert "momentum is both fixed and tuned" in refused(
        ["tune", *COMMON, "--range", "momentum=0.5:0.9", "num_classes=2", "momentum=0.9"], capsys)


def test_the_real_sample_jobs_prepared_pass_with_two_classes_and_are_refused_with_one(s3, tmp_path, capsys):
    """The AWS sample's four Ground Truth jobs, prepared here (class ids 0 and 1), then read by the preflight."""
    from tests.support.shared import aws_sample

    manifests = aws_sample() / "manifests"
    prepared = tmp_path / "prepared"
    assert main(["manifest", "prepare", *sorted(str(p) for p in manifests.glob("*.output.manifest")), "--out",
                 str(prepared), "--discard", str(manifests / "discard.txt"), "--class-from", "color,object",
                 "--class-map", "blue box=0,yellow box=1"]) == 0
    capsys.readouterr()
    train = (prepared / "train.manifest").read_text().splitlines()
    validation = (prepared / "validation.manifest").read_text().splitlines()
    first_yellow = next(i for i, line in enumerate(train, 1) if json.loads(line)["color"] == "yellow")
    s3.manifest("p/train.manifest", train)
    s3.manifest("p/validation.manifest", validation)
    err = refused(["train", "--backend", "sagemaker", *COMMON, "num_classes=1"], capsys)
    assert f"s3://b/p/train.manifest:{first_yellow}: box 1 has class_id 1 but num_classes=1 allows 0..0" in err
    s3.manifest("p/train.manifest", train)
    s3.manifest("p/validation.manifest", validation)
    s3.region("b", "eu-west-1")
    s3.region("gg-sagemaker-object-detection-blog", "eu-west-1")
    request = dry_run(["train", "--backend", "sagemaker", *COMMON, "num_classes=2", "epochs=5",
                       "lr_scheduler_step=3"], capsys)
    assert request["HyperParameters"]["num_training_samples"] == str(len(train))


def test_a_bad_job_name_is_refused_after_the_preflight_reads(s3, capsys):
    s3.job(lines(4, "t"), lines(2, "v"))
    assert "--job-name 'bad_name'" in refused(["train", "--backend", "sagemaker", *COMMON, "num_classes=1",
                                               "--job-name", "bad_name"], capsys)  # fmt: skip


def test_the_issue_s_schedule_past_the_last_epoch_is_refused(s3, capsys):
    err = refused(["train", "--backend", "sagemaker", *COMMON, "num_classes=1", "lr_scheduler_step=10,20",
                   "epochs=5"], capsys)
    assert "lr_scheduler_step=10,20: step 10 is not below epochs=5" in err


def test_tune_takes_name_value_words_after_validation_and_refuses_a_wait_target_holding_a_model(s3, tmp_path,
                                                                                               capsys):
    s3.job(lines(3, "t"), lines(2, "v"))
    argv = ["tune", *COMMON, "--range", "optimizer=sgd,adam"]
    at = argv.index("s3://b/p/validation.manifest") + 1
    argv[at:at] = ["num_classes=1", "epochs=4"]
    request = dry_run(argv, capsys)
    assert request["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] == "4"
    (tmp_path / "model.tar.gz").write_bytes(b"best so far")
    assert "already holds model.tar.gz" in refused(
        ["tune", *COMMON, "--range", "optimizer=sgd,adam", "--wait", "--out", str(tmp_path), "num_classes=1"], capsys)
    assert (tmp_path / "model.tar.gz").read_bytes() == b"best so far"
