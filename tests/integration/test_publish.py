"""publish: model.zip to moto's S3 (real boto3 calls on loopback), Greengrass v2 through botocore's Stubber (moto has
no greengrassv2), so every request is checked against the real service model."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from botocore.stub import ANY

from cloud_training.cli import main
from tests.integration.sagemaker_helpers import SECRET, stubbed, use_client
from tests.support.models import training_artifact_files, write_tarball

MODEL_FILES = ["deploy_model_algo_1-0000.params", "deploy_model_algo_1-symbol.json", "model.json", "model.onnx",
               "samples.npz"]
GROUP = "arn:aws:iot:us-east-1:123456789012:thinggroup/Cameras"
COMPONENT_ARN = "arn:aws:greengrass:us-east-1:123456789012:components:ssd.ObjectDetector.Model:versions:1.2.0"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A real deploy folder, converted from a SageMaker-layout artifact."""
    root = tmp_path_factory.mktemp("publish")
    tarball = write_tarball(root / "model.tar.gz", training_artifact_files())
    assert main(["convert", str(tarball), "--out", str(root / "model"), "--class-names", "blue box,yellow box",
                 "--model-version", "1.2.0"]) == 0
    return root / "model"


def unpublished(stub) -> None:
    """publish first asks Greengrass whether the version exists: here it does not."""
    stub.add_client_error("describe_component", service_error_code="ResourceNotFoundException", http_status_code=404,
                          expected_params={"arn": COMPONENT_ARN})


def recipe_of(stub_call: dict) -> dict:
    return json.loads(stub_call["inlineRecipe"])


def test_publish_uploads_the_zip_creates_the_version_and_deploys(model_dir, s3_bucket, monkeypatch, capsys,
                                                                   tmp_path):
    client, stub = stubbed("greengrassv2")
    unpublished(stub)
    sent: dict = {}

    def capture(params, **_):  # the Stubber validates the request next; keep the recipe to check it
        sent.update(params)

    client.meta.events.register("before-parameter-build.greengrassv2.CreateComponentVersion", capture)
    stub.add_response("create_component_version", {
        "arn": COMPONENT_ARN, "componentName": "ssd.ObjectDetector.Model", "componentVersion": "1.2.0",
        "creationTimestamp": "2024-01-01T00:00:00Z", "status": {"componentState": "REQUESTED"},
    }, {"inlineRecipe": ANY})  # fmt: skip
    for state in ("INITIATED", "DEPLOYABLE"):
        stub.add_response("describe_component", {"arn": COMPONENT_ARN, "status": {"componentState": state}},
                          {"arn": COMPONENT_ARN})
    stub.add_response("list_deployments", {"deployments": [{"deploymentId": "d-0", "targetArn": GROUP}]},
                      {"targetArn": GROUP, "historyFilter": "LATEST_ONLY"})
    tuned = {"merge": '{"model": {"score_threshold": 0.7}}'}  # a deployment's configuration merge, kept
    stub.add_response("get_deployment", {"deploymentId": "d-0", "targetArn": GROUP, "components": {
        "aws.greengrass.Nucleus": {"componentVersion": "2.12.0"},  # another component of the group: kept
        "ssd.ObjectDetector": {"componentVersion": "0.0.9", "configurationUpdate": tuned},
        "ssd.ObjectDetector.Model": {"componentVersion": "1.1.0"},
    }}, {"deploymentId": "d-0"})  # fmt: skip
    stub.add_response("create_deployment", {"deploymentId": "d-1", "iotJobId": "j-1"}, {
        "targetArn": GROUP, "deploymentName": "ssd.ObjectDetector.Model-1.2.0",
        "components": {"aws.greengrass.Nucleus": {"componentVersion": "2.12.0"},
                       "ssd.ObjectDetector": {"componentVersion": "0.1.0", "configurationUpdate": tuned},
                       "ssd.ObjectDetector.Model": {"componentVersion": "1.2.0"}},
    })  # fmt: skip
    use_client(monkeypatch, "greengrassv2", client)
    monkeypatch.setattr("cloud_training.aws.greengrass.time.sleep", lambda s: None)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    with stub:
        code = main(["publish", str(model_dir), "--bucket", s3_bucket.name, "--component-version", "1.2.0",
                     "--deploy-to", GROUP])
        stub.assert_no_pending_responses()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert s3_bucket.keys() == ["ssd.ObjectDetector.Model/1.2.0/model.zip"]
    data = s3_bucket.get("ssd.ObjectDetector.Model/1.2.0/model.zip")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        # at the root, no MXNet files; samples.npz is the engines' accuracy gate (model.backend auto, issue 25)
        assert sorted(archive.namelist()) == ["model.json", "model.onnx", "samples.npz"]
        archive.extractall(tmp_path / "model")  # as Greengrass unzips it into .../model/
    from edge_runtime.model import read_model_info

    assert read_model_info(tmp_path / "model", verify_digests=True).version == "1.2.0"  # the device's own check
    recipe = recipe_of(sent)
    assert recipe["ComponentName"] == "ssd.ObjectDetector.Model" and recipe["ComponentVersion"] == "1.2.0"
    assert recipe["RecipeFormatVersion"] == "2020-01-25" and recipe["ComponentType"] == "aws.greengrass.generic"
    assert not recipe["Manifests"][0].get("Lifecycle")  # a model store: nothing to run
    assert recipe["Manifests"][0]["Platform"] == {"os": "linux"}
    assert recipe["Manifests"][0]["Artifacts"] == [{
        "Uri": s3_bucket.uri("ssd.ObjectDetector.Model/1.2.0/model.zip"),
        "Digest": base64.b64encode(hashlib.sha256(data).digest()).decode(), "Algorithm": "SHA-256",
        "Unarchive": "ZIP", "Permission": {"Read": "ALL", "Execute": "NONE"},
    }]  # fmt: skip
    assert f"component {COMPONENT_ARN}: DEPLOYABLE" in out and "deployment d-1" in out
    assert "keeping aws.greengrass.Nucleus of the current deployment" in out
    assert SECRET not in out + err


def test_replace_deploys_only_the_two_components(model_dir, s3_bucket, monkeypatch, capsys):
    client, stub = stubbed("greengrassv2")
    unpublished(stub)
    stub.add_response("create_component_version", {
        "arn": COMPONENT_ARN, "componentName": "ssd.ObjectDetector.Model", "componentVersion": "1.2.0",
        "creationTimestamp": "2024-01-01T00:00:00Z", "status": {"componentState": "REQUESTED"},
    }, {"inlineRecipe": ANY})  # fmt: skip
    stub.add_response("describe_component", {"arn": COMPONENT_ARN, "status": {"componentState": "DEPLOYABLE"}},
                      {"arn": COMPONENT_ARN})
    stub.add_response("create_deployment", {"deploymentId": "d-2"}, {
        "targetArn": GROUP, "deploymentName": "ssd.ObjectDetector.Model-1.2.0",
        "components": {"ssd.ObjectDetector": {"componentVersion": "0.3.1"},
                       "ssd.ObjectDetector.Model": {"componentVersion": "1.2.0"}},
    })  # fmt: skip  (no ListDeployments: the Stubber fails on any call not listed)
    use_client(monkeypatch, "greengrassv2", client)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    with stub:
        code = main(["publish", str(model_dir), "--bucket", s3_bucket.name, "--component-version", "1.2.0",
                     "--deploy-to", GROUP, "--runtime-version", "0.3.1", "--replace"])
        stub.assert_no_pending_responses()
    assert code == 0, capsys.readouterr().err


def test_the_runtime_version_comes_from_the_built_recipe(tmp_path):
    from cloud_training.publishing import runtime_version

    project = tmp_path  # the inference component's gdk project: the repository root
    (project / "gdk-config.json").write_text(json.dumps(
        {"component": {"ssd.ObjectDetector": {"version": "NEXT_PATCH"}}}))  # fmt: skip
    with pytest.raises(Exception, match="--runtime-version is needed"):
        runtime_version(None, tmp_path)
    built = project / "greengrass-build" / "recipes"
    built.mkdir(parents=True)
    (built / "ssd.ObjectDetector.json").write_text(json.dumps({"ComponentVersion": "0.4.2"}))  # gdk resolved it
    assert runtime_version(None, tmp_path) == "0.4.2"
    assert runtime_version("1.0.0", tmp_path) == "1.0.0"


def test_the_same_folder_zips_to_the_same_bytes_and_dry_run_calls_nothing(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # a call would fail loudly
    args = ["publish", str(model_dir), "--bucket", "my-gg-artifacts", "--component-version", "1.2.0", "--dry-run",
            "--deploy-to", GROUP, "--runtime-version", "0.2.0"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert first["upload"]["uri"] == "s3://my-gg-artifacts/ssd.ObjectDetector.Model/1.2.0/model.zip"
    assert first["create_deployment"]["components"]["ssd.ObjectDetector"] == {"componentVersion": "0.2.0"}
    artifact = first["create_component_version"]["inlineRecipe"]["Manifests"][0]["Artifacts"][0]
    assert artifact["Digest"] == first["upload"]["sha256_base64"]


def test_a_modified_folder_and_bad_arguments_are_refused_before_any_call(model_dir, tmp_path, capsys):
    changed = tmp_path / "changed"
    changed.mkdir()
    for name in MODEL_FILES:
        (changed / name).write_bytes((model_dir / name).read_bytes())
    (changed / "deploy_model_algo_1-symbol.json").write_text("{}")
    assert main(["publish", str(changed), "--bucket", "bkt", "--component-version", "1.2.0", "--dry-run"]) == 2
    assert "does not match model.json" in capsys.readouterr().err  # the device's own check, before any call
    assert main(["publish", str(model_dir), "--bucket", "bkt", "--component-version", "1.0", "--dry-run"]) == 2
    assert "--component-version must be MAJOR.MINOR.PATCH (got '1.0')" in capsys.readouterr().err
    assert main(["publish", str(model_dir), "--bucket", "bkt", "--component-version", "1.2.0", "--dry-run",
                 "--deploy-to", "Cameras"]) == 2
    assert "--deploy-to must be a thing or thing group ARN" in capsys.readouterr().err


def test_an_existing_different_upload_is_not_overwritten(model_dir, s3_bucket, monkeypatch, capsys):
    s3_bucket.put("ssd.ObjectDetector.Model/1.2.0/model.zip", b"older model")
    client, stub = stubbed("greengrassv2")
    unpublished(stub)
    use_client(monkeypatch, "greengrassv2", client)
    with stub:
        assert main(["publish", str(model_dir), "--bucket", s3_bucket.name, "--component-version", "1.2.0"]) == 2
    assert "exists with other content; component versions are immutable" in capsys.readouterr().err
    assert s3_bucket.get("ssd.ObjectDetector.Model/1.2.0/model.zip") == b"older model"


def test_a_published_version_is_refused_before_any_upload(model_dir, s3_bucket, monkeypatch, capsys):
    """The version exists: one line, exit 2, the S3 object untouched (not even rewritten with the same bytes)."""
    key = "ssd.ObjectDetector.Model/1.2.0/model.zip"
    s3_bucket.put(key, b"the live version's model")
    before = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)["LastModified"]
    client, stub = stubbed("greengrassv2")
    stub.add_response("describe_component", {"arn": COMPONENT_ARN, "componentName": "ssd.ObjectDetector.Model",
                                             "componentVersion": "1.2.0"}, {"arn": COMPONENT_ARN})
    use_client(monkeypatch, "greengrassv2", client)
    with stub:
        assert main(["publish", str(model_dir), "--bucket", s3_bucket.name, "--force"]) == 2  # --force: not this
    assert capsys.readouterr().err == (
        f"cloud-training: error: ssd.ObjectDetector.Model 1.2.0 is already published ({COMPONENT_ARN}): component "
        "versions are immutable and its artifact is what devices download; choose a new --component-version\n")
    assert s3_bucket.get(key) == b"the live version's model"
    assert s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)["LastModified"] == before


def test_a_component_the_service_rejects_is_one_line(model_dir, s3_bucket, monkeypatch, capsys):
    client, stub = stubbed("greengrassv2")
    unpublished(stub)
    stub.add_response("create_component_version", {
        "arn": COMPONENT_ARN, "componentName": "ssd.ObjectDetector.Model", "componentVersion": "1.2.0",
        "creationTimestamp": "2024-01-01T00:00:00Z", "status": {"componentState": "REQUESTED"}})
    stub.add_response("describe_component", {"arn": COMPONENT_ARN, "status": {
        "componentState": "FAILED", "message": "The artifact digest does not match"}}, {"arn": COMPONENT_ARN})
    use_client(monkeypatch, "greengrassv2", client)
    with stub:
        code = main(["publish", str(model_dir), "--bucket", s3_bucket.name, "--component-version", "1.2.0",
                     "--deploy-to", GROUP])
    assert code == 2
    assert capsys.readouterr().err == (
        f"cloud-training: error: component {COMPONENT_ARN} failed: The artifact digest does not match\n")


def test_greengrass_access_denied_names_the_iam_action(model_dir, s3_bucket, monkeypatch, capsys):
    client, stub = stubbed("greengrassv2")
    unpublished(stub)
    stub.add_client_error("create_component_version", service_error_code="AccessDeniedException",
                          service_message="not authorized", http_status_code=403)
    use_client(monkeypatch, "greengrassv2", client)
    with stub:
        assert main(["publish", str(model_dir), "--bucket", s3_bucket.name]) == 2  # the version: model.json's
    assert capsys.readouterr().err == ("cloud-training: error: access denied: the caller may not "
                                       "greengrass:CreateComponentVersion (not authorized); grant "
                                       "greengrass:CreateComponentVersion to it\n")


def test_publish_registers_what_make_component_builds(model_dir, tmp_path):
    """One recipe template, one zip layout: publish and components/build.py (gdk's build) agree byte for byte."""
    import importlib.util

    from cloud_training import publishing
    from cloud_training.aws import recipes

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("component_build", root / "components" / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    built_recipe = json.loads(build.build_model(root, tmp_path / "gg", model_dir, "1.2.0").read_text())
    built_zip = (tmp_path / "gg" / "artifacts" / "ssd.ObjectDetector.Model" / "1.2.0" / "model.zip").read_bytes()
    planned = publishing.plan(model_dir, "bkt", "ssd.ObjectDetector.Model", "1.2.0", None, "ssd.ObjectDetector",
                              "0.1.0")
    assert planned.artifact == built_zip
    ours = dict(planned.recipe)
    assert ours.pop("ComponentType") == "aws.greengrass.generic"
    assert ours["Manifests"][0]["Artifacts"][0].pop("Uri") == "s3://bkt/ssd.ObjectDetector.Model/1.2.0/model.zip"
    assert built_recipe["Manifests"][0]["Artifacts"][0].pop("Uri").endswith("/model.zip")  # gdk fills it at publish
    assert ours == built_recipe
    assert json.loads(recipes.TEMPLATE.read_text()) == recipes.BUILT_IN_TEMPLATE


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--component-version", "2.0.0"],
         "--component-version 2.0.0 but {model}/model.json says version 1.2.0; publish 1.2.0, or convert again with "
         "--model-version 2.0.0"),
        (["--bucket", "my_bucket_UPPER"],
         "--bucket 'my_bucket_UPPER' is not a valid S3 bucket name: 3 to 63 lowercase"),
        (["--bucket", "ab"], "--bucket 'ab' is not a valid S3 bucket name"),
        (["--bucket", "my..bucket"], "no two adjacent dots"),
        (["--bucket", "192.168.5.4"], "not formatted like an IP address"),
        (["--bucket", "xn--bucket"], "not starting with xn--"),
        (["--deploy-to", "arn:aws:iot:eu-west-1:123456789012:thinggroup/Cameras", "--region", "us-east-1"],
         "--deploy-to arn:aws:iot:eu-west-1:123456789012:thinggroup/Cameras is in eu-west-1, but the component is "
         "published in us-east-1"),
    ],
)
def test_dry_run_refuses_what_publishing_would_fail_on(model_dir, monkeypatch, capsys, extra, message):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # a call would fail loudly
    argv = ["publish", str(model_dir), "--bucket", "my-gg-artifacts", "--runtime-version", "0.2.0", "--dry-run"]
    if "--bucket" in extra:
        del argv[2:4]
    assert main([*argv, *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert message.format(model=model_dir) in err


def test_dry_run_defaults_the_version_to_model_json_and_takes_a_target_of_its_region(model_dir, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert main(["publish", str(model_dir), "--bucket", "my.gg-artifacts", "--runtime-version", "0.2.0", "--dry-run",
                 "--deploy-to", "arn:aws:iot:eu-west-1:123456789012:thinggroup/Cameras", "--region", "eu-west-1"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["upload"]["uri"] == "s3://my.gg-artifacts/ssd.ObjectDetector.Model/1.2.0/model.zip"
