"""The real gdk CLI (1.6.2) on both gdk projects: ``gdk component build`` in a clean clone, ``gdk component publish``.

Build runs gdk's own console script in a separate process, in a ``git clone`` of this repository's committed state,
exactly as README's Greengrass section says (``gdk component build`` at the root for the inference component,
``cd components/ssd.ObjectDetector.Model && gdk component build`` for the model). Every gdk command
makes two HTTPS requests with ``requests``: its latest version (raw.githubusercontent.com) and the test framework's
latest release (api.github.com), and goes on without them when they fail. The subprocess gets a proxy on a closed
loopback port, so both fail at once and nothing leaves the machine; in process, ``requests.get`` refuses.

Publish runs gdk's CLI entry point (``gdk.CLIParser.main``, the console script's target) in this process with
``sys.argv`` set, because the Greengrass v2 calls must reach a botocore Stubber (moto has no greengrassv2): gdk makes
every client with ``boto3.client(service, ...)``, so that one function is wrapped to return the stubbed client for
greengrassv2 and a real client (STS and S3, to moto's server on loopback via ``AWS_ENDPOINT_URL``) otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY

from tests.integration.sagemaker_helpers import stubbed

REPO = Path(__file__).resolve().parents[2]
RUNTIME = "ssd.ObjectDetector"
MODEL = "ssd.ObjectDetector.Model"
WHEELHOUSE = "ssd.ObjectDetector.Wheelhouse"
ACCOUNT = "123456789012"  # moto's STS answers get_caller_identity with this account
BUCKET = f"ssd-greengrass-components-us-east-1-{ACCOUNT}"  # gdk: <publish.bucket>-<region>-<account>
CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once


def gdk_cli() -> Path:
    """gdk's console script beside this interpreter; skip when absent (a failure under CI=true)."""
    script = Path(sys.executable).parent / "gdk"
    if importlib.util.find_spec("gdk") is None or not script.is_file():
        message = ("the gdk CLI is not installed in this environment: `make setup` installs it from "
                   "../shared/vendor/aws-greengrass-gdk-cli.tar.gz when that file is there")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return script


def recipe_validator() -> Any:
    """gdk's own RecipeValidator with the schema gdk ships (what gdk build and publish validate with)."""
    from gdk.common import consts, utils
    from gdk.common.RecipeValidator import RecipeValidator

    return RecipeValidator(utils.get_static_file_path(consts.recipe_schema_file))


def digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def files_under(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean clone of the committed state: no greengrass-build/, no venv, nothing untracked."""
    gdk_cli()
    if shutil.which("git") is None or not (REPO / ".git").exists():
        message = f"{REPO} is not a git checkout (or git is missing): the clean-clone build needs one"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    target = tmp_path_factory.mktemp("gdk") / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(target)], check=True, timeout=120,
                   capture_output=True)
    return target


def gdk_env() -> dict[str, str]:
    """This environment with the venv's bin first (gdk, and the ``python3`` its custom build runs) and gdk's GitHub
    version check sent to a closed loopback port."""
    env = {key: value for key, value in os.environ.items() if key.lower() not in ("no_proxy", "all_proxy")}
    env.update(HTTPS_PROXY=CLOSED_PORT_PROXY, HTTP_PROXY=CLOSED_PORT_PROXY, https_proxy=CLOSED_PORT_PROXY,
               http_proxy=CLOSED_PORT_PROXY)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def project_of(root: Path, name: str) -> Path:
    """The gdk project of a component: the repository root (inference) or components/<name> (model)."""
    return root if name == RUNTIME else root / "components" / name


@pytest.fixture(scope="module")
def built(clone: Path) -> dict[str, subprocess.CompletedProcess]:
    """``gdk component build`` in each project of the clone, as a user runs it."""
    runs = {}
    for name in (RUNTIME, MODEL):
        env = gdk_env()
        if name == RUNTIME:  # the default wheelhouse tags: the recipe requires the wheelhouse component (no download)
            env.pop("COMPONENT_WHEELHOUSE", None)
        runs[name] = subprocess.run([str(gdk_cli()), "component", "build"], cwd=project_of(clone, name),
                                    env=env, capture_output=True, text=True, timeout=120)
    return runs


@pytest.mark.timeout(300)
def test_gdk_component_build_in_a_clean_clone(clone: Path, built: dict[str, subprocess.CompletedProcess],
                                              tmp_path: Path) -> None:
    for name, run in built.items():
        assert run.returncode == 0, f"{name}: {run.stdout[-3000:]}{run.stderr[-3000:]}"
        assert "Using custom build configuration" in run.stderr  # gdk's log (stderr): our build, run by gdk
    runtime = project_of(clone, RUNTIME) / "greengrass-build"
    model = project_of(clone, MODEL) / "greengrass-build"
    # the recipe under the name gdk publish reads back: the file recipe.json links to
    assert files_under(runtime) == ["artifacts/ssd.ObjectDetector/0.1.0/ssd-object-detector.zip",
                                    "recipes/ssd.ObjectDetector.json"]
    assert files_under(model) == ["artifacts/ssd.ObjectDetector.Model/NEXT_PATCH/model.zip",
                                  "recipes/ssd.ObjectDetector.Model.json"]

    validator = recipe_validator()
    runtime_recipe = json.loads((runtime / "recipes" / f"{RUNTIME}.json").read_text())
    model_recipe = json.loads((model / "recipes" / f"{MODEL}.json").read_text())
    for path in (runtime / "recipes" / f"{RUNTIME}.json", model / "recipes" / f"{MODEL}.json"):
        validator.validate_recipe(json.loads(path.read_text()))
        assert path.stat().st_size <= 16000 and "{COMPONENT" not in path.read_text()
    assert (runtime_recipe["ComponentName"], runtime_recipe["ComponentVersion"]) == (RUNTIME, "0.1.0")
    assert (model_recipe["ComponentName"], model_recipe["ComponentVersion"]) == (MODEL, "NEXT_PATCH")  # as gdk's own
    assert runtime_recipe["ComponentPublisher"] == model_recipe["ComponentPublisher"] == "ssd-greengrass"
    uris = {a["Uri"] for m in runtime_recipe["Manifests"] for a in m["Artifacts"]}
    assert uris == {"s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/ssd-object-detector.zip"}  # publish fills it
    wheels_config = json.loads((clone / "components" / WHEELHOUSE / "gdk-config.json").read_text())
    required = runtime_recipe["ComponentDependencies"][WHEELHOUSE]
    assert required == {"VersionRequirement": f"={wheels_config['component'][WHEELHOUSE]['version']}",
                        "DependencyType": "HARD"}  # the wheels' version the locks give, exactly
    assert [m["Lifecycle"]["Install"]["Setenv"]["WHEELHOUSE"] for m in runtime_recipe["Manifests"][:2]] == [
        f"{{{WHEELHOUSE}:artifacts:decompressedPath}}/wheelhouse-{arch}/wheelhouse" for arch in ("aarch64", "x86_64")]
    (artifact,) = model_recipe["Manifests"][0]["Artifacts"]
    model_zip = (model / "artifacts" / MODEL / "NEXT_PATCH" / "model.zip").read_bytes()
    assert artifact["Uri"] == "s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/model.zip"
    assert artifact["Digest"] == digest(model_zip) and artifact["Algorithm"] == "SHA-256"
    assert model_recipe["ComponentDescription"].startswith("SSD model demo 1.0.0: ")  # model.json's version
    with zipfile.ZipFile(model / "artifacts" / MODEL / "NEXT_PATCH" / "model.zip") as archive:
        assert "model.json" in archive.namelist() and "model.onnx" in archive.namelist()
        assert not [name for name in archive.namelist() if name.startswith("deploy_model_algo_1")]  # no MXNet files
        shipped = json.loads(archive.read("model.json"))
        # what the device checks matches what it gets (model.onnx and, since issue 25, the engines' samples.npz)
        assert sorted(shipped["files"]) == sorted(set(archive.namelist()) - {"model.json"})

    # make component (components/build.py, no --project) in the same clone: the same artifact bytes
    make = subprocess.run([sys.executable, str(clone / "components" / "build.py"), "--out", str(tmp_path / "gg")],
                          capture_output=True, text=True, timeout=120)
    assert make.returncode == 0, make.stderr
    assert (tmp_path / "gg/artifacts/ssd.ObjectDetector/0.1.0/ssd-object-detector.zip").read_bytes() == (
        runtime / "artifacts/ssd.ObjectDetector/0.1.0/ssd-object-detector.zip").read_bytes()
    assert (tmp_path / "gg/artifacts/ssd.ObjectDetector.Model/1.0.0/model.zip").read_bytes() == model_zip


def publish_project(project: Path, monkeypatch: pytest.MonkeyPatch, greengrass: Any, *options: str) -> list[str]:
    """``gdk component publish`` in ``project``, in process: gdk's entry point with its argv, Greengrass stubbed.
    Returns the URLs gdk tried to fetch with ``requests`` (refused: no network)."""
    import boto3
    import requests
    from gdk import CLIParser

    real_client = boto3.client
    fetched: list[str] = []

    def client(service: str, *args: Any, **kwargs: Any) -> Any:
        return greengrass if service == "greengrassv2" else real_client(service, *args, **kwargs)

    def offline(url: str, *args: Any, **kwargs: Any) -> Any:
        fetched.append(url)
        raise requests.ConnectionError(f"no network in tests: {url}")

    monkeypatch.setattr(boto3, "client", client)
    monkeypatch.setattr(requests, "get", offline)  # botocore does not use requests: only gdk's own fetches
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "argv", ["gdk", "component", "publish", *options])
    try:
        CLIParser.main()  # returns on success; exit(1) after logging the exception otherwise
    except SystemExit as stop:
        raise AssertionError(f"gdk component publish in {project.name} exited {stop.code}") from None
    assert {url.split("/")[2] for url in fetched} <= {"raw.githubusercontent.com", "api.github.com"}
    return fetched


def expect_publish(stub: Any, name: str, versions: list[str], next_patch: bool) -> None:
    """The Greengrass v2 calls gdk publish makes, in order: list_component_versions (gdk checks the region with it),
    again for NEXT_PATCH (the highest version), then create_component_version with the recipe."""
    arn = f"arn:aws:greengrass:us-east-1:{ACCOUNT}:components:{name}"
    listed = {"componentVersions": [{"componentName": name, "componentVersion": v, "arn": f"{arn}:versions:{v}"}
                                    for v in versions]}
    for _ in range(2 if next_patch else 1):
        stub.add_response("list_component_versions", listed, {"arn": arn})
    stub.add_response("create_component_version", {
        "arn": f"{arn}:versions:x", "componentName": name, "componentVersion": "x",
        "creationTimestamp": "2026-01-01T00:00:00Z", "status": {"componentState": "REQUESTED"},
    }, {"inlineRecipe": ANY})  # fmt: skip


def capture_recipes(client: Any) -> list[dict]:
    sent: list[dict] = []
    client.meta.events.register("before-parameter-build.greengrassv2.CreateComponentVersion",
                                lambda params, **_: sent.append(json.loads(params["inlineRecipe"])))
    return sent


@pytest.fixture
def projects(built: dict[str, subprocess.CompletedProcess], clone: Path, tmp_path: Path) -> Path:
    """A copy of the clone with its built gdk projects (publish writes its recipe beside the build's)."""
    assert all(run.returncode == 0 for run in built.values()), "gdk component build failed: see the build test"
    shutil.copytree(clone, tmp_path / "repo", symlinks=True, ignore=shutil.ignore_patterns(".git"))
    return tmp_path / "repo"


def empty_bucket(s3: Any) -> None:
    """gdk's bucket absent, so publish creates it (the moto server lives for the whole session)."""
    try:
        for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
        s3.delete_bucket(Bucket=BUCKET)
    except s3.exceptions.NoSuchBucket:
        pass


@pytest.mark.timeout(300)
def test_gdk_component_publish_both(projects: Path, s3_bucket: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runtime at its fixed 0.1.0, then the model at NEXT_PATCH over an account that holds 1.0.4 and 1.0.2."""
    s3 = s3_bucket.client
    empty_bucket(s3)
    client, stub = stubbed("greengrassv2")
    sent = capture_recipes(client)
    expect_publish(stub, RUNTIME, [], next_patch=False)
    expect_publish(stub, MODEL, ["1.0.4", "1.0.2"], next_patch=True)  # newest first, as the service
    with stub:
        publish_project(project_of(projects, RUNTIME), monkeypatch, client)
        assert s3.get_bucket_location(Bucket=BUCKET)["LocationConstraint"] is None  # gdk made it, in us-east-1
        publish_project(project_of(projects, MODEL), monkeypatch, client)  # the bucket exists now: gdk keeps it
        stub.assert_no_pending_responses()

    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["ssd.ObjectDetector.Model/1.0.5/model.zip", "ssd.ObjectDetector/0.1.0/ssd-object-detector.zip"]
    runtime_build = project_of(projects, RUNTIME) / "greengrass-build"
    model_build = project_of(projects, MODEL) / "greengrass-build"
    runtime_zip = s3.get_object(Bucket=BUCKET, Key=keys[1])["Body"].read()
    model_zip = s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
    assert runtime_zip == (runtime_build / "artifacts" / RUNTIME / "0.1.0" / "ssd-object-detector.zip").read_bytes()
    assert model_zip == (model_build / "artifacts" / MODEL / "NEXT_PATCH" / "model.zip").read_bytes()

    runtime_recipe, model_recipe = sent
    validator = recipe_validator()
    for recipe in sent:
        validator.validate_recipe(recipe)
    assert (runtime_recipe["ComponentName"], runtime_recipe["ComponentVersion"]) == (RUNTIME, "0.1.0")
    assert {a["Uri"] for m in runtime_recipe["Manifests"] for a in m["Artifacts"]} == {f"s3://{BUCKET}/{keys[1]}"}
    assert (model_recipe["ComponentName"], model_recipe["ComponentVersion"]) == (MODEL, "1.0.5")
    (artifact,) = model_recipe["Manifests"][0]["Artifacts"]
    assert artifact["Uri"] == f"s3://{BUCKET}/{keys[0]}" and artifact["Digest"] == digest(model_zip)
    # the recipe gdk sent is the one it wrote: greengrass-build/recipes/<name>-<version>.json
    assert json.loads((runtime_build / "recipes" / "ssd.ObjectDetector-0.1.0.json").read_text()) == runtime_recipe
    assert json.loads((model_build / "recipes" / "ssd.ObjectDetector.Model-1.0.5.json").read_text()) == model_recipe
    empty_bucket(s3)


@pytest.mark.timeout(300)
def test_gdk_next_patch_starts_at_1_0_0_and_a_refusal_fails(projects: Path, s3_bucket: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """NEXT_PATCH with no version in the account: 1.0.0. ``--bucket`` names the bucket outright; a
    create_component_version the service refuses: gdk exits 1, after the upload."""
    s3 = s3_bucket.client
    empty_bucket(s3)
    client, stub = stubbed("greengrassv2")
    sent = capture_recipes(client)
    expect_publish(stub, MODEL, [], next_patch=True)
    with stub:
        publish_project(project_of(projects, MODEL), monkeypatch, client)
        stub.assert_no_pending_responses()
    assert [(r["ComponentName"], r["ComponentVersion"]) for r in sent] == [(MODEL, "1.0.0")]
    assert [i["Key"] for i in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == [f"{MODEL}/1.0.0/model.zip"]

    client, stub = stubbed("greengrassv2")
    arn = f"arn:aws:greengrass:us-east-1:{ACCOUNT}:components:{RUNTIME}"
    stub.add_response("list_component_versions", {"componentVersions": []}, {"arn": arn})
    stub.add_client_error("create_component_version", service_error_code="ConflictException",
                          service_message="ssd.ObjectDetector 0.1.0 already exists", http_status_code=409)
    with stub, pytest.raises(AssertionError, match="exited 1"):
        publish_project(project_of(projects, RUNTIME), monkeypatch, client, "--bucket", s3_bucket.name)
    stub.assert_no_pending_responses()
    assert s3_bucket.keys() == [f"{RUNTIME}/0.1.0/ssd-object-detector.zip"]
    empty_bucket(s3)


def load_publish(root: Path) -> Any:
    """components/publish.py of ``root`` (by path: ``components`` is no package)."""
    spec = importlib.util.spec_from_file_location("component_publish", root / "components" / "publish.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def objects(s3: Any) -> dict[str, tuple[str, Any, bytes]]:
    """Every object of gdk's bucket: (ETag, LastModified, bytes) by key."""
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {item["Key"]: (item["ETag"], item["LastModified"], s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"]
                          .read()) for item in listed}


@pytest.mark.timeout(300)
def test_a_second_publish_of_the_same_version_changes_no_s3_object(projects: Path, s3_bucket: Any,
                                                                   monkeypatch: pytest.MonkeyPatch, capsys: Any
                                                                   ) -> None:
    """components/publish.py (make publish) in front of the real gdk publish: the first publish of 0.1.0 runs gdk;
    a second is refused before any upload (the version exists), and so is a rebuilt artifact whose key holds other
    bytes; neither changes an S3 object."""
    import boto3

    s3 = s3_bucket.client
    empty_bucket(s3)
    publish = load_publish(projects)
    root = project_of(projects, RUNTIME)
    version_arn = f"arn:aws:greengrass:us-east-1:{ACCOUNT}:components:{RUNTIME}:versions:0.1.0"
    ran: list[Path] = []

    def through(greengrass: Any) -> tuple[Any, Any]:
        def make(service: str, **kwargs: Any) -> Any:
            return greengrass if service == "greengrassv2" else boto3.client(service, **kwargs)

        def gdk(project: Path, options: list[str]) -> int:
            ran.append(project)
            publish_project(project, monkeypatch, greengrass, *options)
            return 0

        return make, gdk

    client, stub = stubbed("greengrassv2")
    stub.add_client_error("describe_component", service_error_code="ResourceNotFoundException", http_status_code=404,
                          expected_params={"arn": version_arn})
    expect_publish(stub, RUNTIME, [], next_patch=False)
    with stub:
        assert publish.main(["--project", str(root)], *through(client)) == 0
        stub.assert_no_pending_responses()
    first = objects(s3)
    assert list(first) == [f"{RUNTIME}/0.1.0/ssd-object-detector.zip"] and ran == [root]

    client, stub = stubbed("greengrassv2")
    stub.add_response("describe_component", {"arn": version_arn, "componentName": RUNTIME, "componentVersion": "0.1.0"},
                      {"arn": version_arn})
    capsys.readouterr()
    with stub:
        assert publish.main(["--project", str(root)], *through(client)) == 2
    assert capsys.readouterr().err.startswith(f"publish: error: {RUNTIME} 0.1.0 already exists in us-east-1: component "
                                              "versions are immutable, and gdk would overwrite its artifacts")
    assert ran == [root] and objects(s3) == first  # gdk never ran: same bytes, same ETag, same LastModified

    built = root / "greengrass-build" / "artifacts" / RUNTIME / "0.1.0" / "ssd-object-detector.zip"
    built.write_bytes(built.read_bytes() + b"rebuilt")  # another build, and a version Greengrass does not hold
    client, stub = stubbed("greengrassv2")
    stub.add_client_error("describe_component", service_error_code="ResourceNotFoundException", http_status_code=404)
    with stub:
        assert publish.main(["--project", str(root)], *through(client)) == 2
    assert f"s3://{BUCKET}/{RUNTIME}/0.1.0/ssd-object-detector.zip exists with other content" in capsys.readouterr().err
    assert ran == [root] and objects(s3) == first
    empty_bucket(s3)


@pytest.mark.timeout(120)
def test_gdk_runs_the_wheelhouse_build_and_a_stale_version_is_one_line(clone: Path, tmp_path: Path) -> None:
    """gdk component build in the wheelhouse project runs our build (no download before the version check): a
    gdk-config.json version other than the locks' fails the build with the line naming the version to set."""
    project = tmp_path / "repo"
    shutil.copytree(clone, project, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    config_path = project / "components" / WHEELHOUSE / "gdk-config.json"
    config = json.loads(config_path.read_text())
    wanted = config["component"][WHEELHOUSE]["version"]
    config["component"][WHEELHOUSE]["version"] = "1.0.0"
    config_path.write_text(json.dumps(config))
    env = gdk_env()
    env.pop("COMPONENT_WHEELHOUSE", None)  # the default tags: the committed version is theirs
    run = subprocess.run([str(gdk_cli()), "component", "build"], cwd=config_path.parent, env=env,
                         capture_output=True, text=True, timeout=100)  # fmt: skip
    assert run.returncode != 0
    assert f"version must be {wanted}, the version components/locks give" in run.stdout + run.stderr
    assert not list((config_path.parent / "greengrass-build" / "artifacts").rglob("*.zip"))
