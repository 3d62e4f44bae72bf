"""Recipes and gdk-config.json against gdk's own schemas; the build layout; the IPC publisher and live config.

gdk lower-cases every recipe key before validating (gdk/common/RecipeValidator.py) and refuses recipes over
16000 bytes, so the tests do the same (../shared/schemas/gdk/PROVENANCE.md). The IPC client is mocked here
(pytest-mock); the real client runs against the test nucleus in tests/integration/test_greengrass_component.py.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import subprocess
import threading
import time
import zipfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from edge_runtime.config import GreengrassConfig, validate
from edge_runtime.detectors.fake import FakeDetector
from edge_runtime.errors import PublishError
from edge_runtime.greengrass import component_config, in_greengrass
from edge_runtime.greengrass.bridge import ComponentBridge
from edge_runtime.greengrass.live_config import LiveConfig
from edge_runtime.greengrass.nucleus import IpcConnection
from edge_runtime.publishers.ipc import IpcPublisher
from edge_runtime.publishers.outbox import Outbox
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO.parent / "shared" / "schemas" / "gdk"
PROJECTS = [REPO, REPO / "components" / "ssd.ObjectDetector.Model",
            REPO / "components" / "ssd.ObjectDetector.Wheelhouse"]  # gdk projects: one component each
RECIPES = sorted((REPO / "recipes").glob("*.json"))


def lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key).lower(): lower_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [lower_keys(item) for item in value]
    return value


def load_build() -> Any:
    spec = importlib.util.spec_from_file_location("component_build", REPO / "components" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("recipe", RECIPES, ids=[path.stem for path in RECIPES])
def test_recipe_is_valid_for_gdk_and_small(recipe: Path) -> None:
    schema = json.loads((SCHEMAS / "recipe_schema.json").read_text())
    jsonschema.validate(lower_keys(json.loads(recipe.read_text())), schema)
    assert recipe.stat().st_size < 16000


def test_schema_check_can_fail() -> None:
    schema = json.loads((SCHEMAS / "recipe_schema.json").read_text())
    recipe = lower_keys(json.loads(RECIPES[0].read_text()))
    recipe["recipeformatversion"] = "2021-01-01"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(recipe, schema)


@pytest.mark.parametrize("project", PROJECTS, ids=["root", "model", "wheelhouse"])
def test_gdk_config_is_valid(project: Path) -> None:
    """Each gdk project: a valid gdk-config.json naming the component of its recipe.json, a link into recipes/."""
    schema = json.loads((SCHEMAS / "config_schema.json").read_text())
    config = json.loads((project / "gdk-config.json").read_text())
    jsonschema.validate(config, schema)
    (name,) = config["component"]
    assert (project / "recipe.json").is_symlink()
    assert (project / "recipe.json").resolve() == REPO / "recipes" / f"{name}.json"
    assert json.loads((project / "recipe.json").read_text())["ComponentName"] == name


def test_inference_recipe_contract() -> None:
    recipe = json.loads((REPO / "recipes" / "ssd.ObjectDetector.json").read_text())
    assert recipe["ComponentDependencies"]["ssd.ObjectDetector.Model"]["DependencyType"] == "HARD"
    assert recipe["ComponentDependencies"]["ssd.ObjectDetector.Wheelhouse"] == {  # the build fills the version
        "VersionRequirement": "={WHEELHOUSE_VERSION}", "DependencyType": "HARD"}
    wheels = json.loads((REPO / "recipes" / "ssd.ObjectDetector.Wheelhouse.json").read_text())
    assert wheels["Manifests"][-1]["Platform"] == {"os": "linux"}  # 32-bit ARM resolves it: its Install says why
    platforms = [manifest["Platform"] for manifest in recipe["Manifests"]]
    assert {p["architecture"] for p in platforms} == {"aarch64", "amd64", "arm"}
    (armv7,) = [m for m in recipe["Manifests"] if m["Platform"]["architecture"] == "arm"]  # no onnxruntime wheel:
    assert armv7["Artifacts"] == [] and "64-bit Raspberry Pi OS" in armv7["Lifecycle"]["Install"]["Script"]
    done = subprocess.run(["sh", "-c", armv7["Lifecycle"]["Install"]["Script"]], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.startswith("ssd.ObjectDetector: 32-bit ARM (armv7l")
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    runtime = {key: value for key, value in defaults.items() if key not in ("accessControl", "install")}
    config = component_config(runtime, {"AWS_IOT_THING_NAME": "cam-1"}, {})  # validates strictly
    assert config.publish.targets == ["greengrass"] and config.thing_name == "cam-1"
    policies = defaults["accessControl"]["aws.greengrass.ipc.mqttproxy"]
    (policy,) = policies.values()
    assert policy["operations"] == ["aws.greengrass#PublishToIoTCore"]
    assert policy["resources"] == [  # no interpolation needed
        "ml/object-detection/+", "ml/object-detection/+/status", "ml/object-detection/+/snapshot"
    ]
    from edge_runtime.greengrass.access import check_publish_access
    from edge_runtime.publishers.ipc import GreengrassTopics

    # the component's own start-up check passes the recipe's defaults for any thing name (ConfigError otherwise)
    needed = GreengrassTopics("cam-1", config.publish.greengrass).access_needed(snapshots=True)
    check_publish_access(defaults["accessControl"], needed)
    for manifest in (m for m in recipe["Manifests"] if m["Platform"]["architecture"] != "arm"):
        run = manifest["Lifecycle"]["Run"]["Script"]
        assert "{ssd.ObjectDetector.Model:artifacts:decompressedPath}/model" in run
        assert manifest["Lifecycle"]["Install"]["Timeout"] > 0


def test_build_layout_and_model_component(tmp_path: Path) -> None:
    build = load_build()
    model = tmp_path / "model"
    model.mkdir()
    listed = ["deploy_model_algo_1-symbol.json", "deploy_model_algo_1-0000.params", "model.onnx"]
    for name in listed:
        (model / name).write_text("weights")
    manifest = {"version": "1.2.3", "name": "m", "class_names": ["a"], "files": {name: {} for name in listed}}
    (model / "model.json").write_text(json.dumps(manifest))
    out = tmp_path / "greengrass-build"
    build.build_inference(REPO, out)
    build.build_model(REPO, out, model, None)
    files = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert files == [
        "artifacts/ssd.ObjectDetector.Model/1.2.3/model.zip",
        "artifacts/ssd.ObjectDetector/0.1.0/ssd-object-detector.zip",
        "recipes/ssd.ObjectDetector.Model.json",
        "recipes/ssd.ObjectDetector.json",
    ]
    recipe = json.loads((out / "recipes" / "ssd.ObjectDetector.Model.json").read_text())
    (artifact,) = recipe["Manifests"][0]["Artifacts"]
    data = (out / "artifacts/ssd.ObjectDetector.Model/1.2.3/model.zip").read_bytes()
    assert artifact["Uri"] == "s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/model.zip"
    assert artifact["Digest"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert (recipe["ComponentName"], recipe["ComponentVersion"]) == ("ssd.ObjectDetector.Model", "1.2.3")
    with zipfile.ZipFile(out / "artifacts/ssd.ObjectDetector.Model/1.2.3/model.zip") as archive:
        assert sorted(archive.namelist()) == ["model.json", "model.onnx"]  # what the device runs: no MXNet files
        assert list(json.loads(archive.read("model.json"))["files"]) == ["model.onnx"]
    with zipfile.ZipFile(out / "artifacts/ssd.ObjectDetector/0.1.0/ssd-object-detector.zip") as archive:
        assert sorted(archive.namelist()) == ["install.sh", "run.sh", "ssd_greengrass-0.1.0-py3-none-any.whl"]
        with zipfile.ZipFile(io.BytesIO(archive.read("ssd_greengrass-0.1.0-py3-none-any.whl"))) as wheel:
            names = wheel.namelist()
    assert "edge_runtime/greengrass/nucleus.py" in names and "edge_runtime/review/cli.py" in names  # --help works
    assert "edge_runtime/review/fleet.py" not in names and "edge_runtime/detectors/fake.py" not in names  # off device
    schema = json.loads((SCHEMAS / "recipe_schema.json").read_text())
    for path in (out / "recipes").iterdir():
        jsonschema.validate(lower_keys(json.loads(path.read_text())), schema)
        assert "{COMPONENT" not in path.read_text()


def done(value: Any = None) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def test_in_greengrass_needs_socket_and_token() -> None:
    assert in_greengrass({"AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": "/s", "SVCUID": "t"})
    assert not in_greengrass({"AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": "/s"})


def ipc_publisher(client: Any, tmp_path: Path, factory: Any = None, **settings: Any) -> IpcPublisher:
    connection = IpcConnection(client, factory=factory, initial_s=0.05, max_s=0.1)
    return IpcPublisher(connection, "cam-1", GreengrassConfig(**settings), Outbox(tmp_path / "ob.sqlite3", 100, 10**6))


def iot_topics(client: Any) -> list[str]:
    return [call.kwargs["topic_name"] for call in client.publish_to_iot_core_async.call_args_list]


def test_publisher_publishes_qos1_and_local(mocker, tmp_path: Path) -> None:
    client = mocker.Mock()
    client.publish_to_iot_core_async.return_value = done()
    client.publish_to_topic_async.return_value = done()
    publisher = ipc_publisher(client, tmp_path, local_topic="local/{thing_name}")
    publisher.publish("status", {"a": 1})  # sent at once, not through the outbox
    kwargs = client.publish_to_iot_core_async.call_args.kwargs
    assert (kwargs["topic_name"], kwargs["qos"]) == ("ml/object-detection/cam-1/status", "1")
    assert json.loads(kwargs["payload"]) == {"a": 1}
    local = client.publish_to_topic_async.call_args.kwargs
    assert local["topic"] == "local/cam-1/status"
    assert local["publish_message"].json_message.message == {"a": 1}
    publisher.publish("detection", {"seq": 1})  # stored, then sent by the sender thread
    assert wait_until(lambda: publisher.outbox_stats()["depth"] == 0)
    assert iot_topics(client) == ["ml/object-detection/cam-1/status", "ml/object-detection/cam-1"]
    assert json.loads(client.publish_to_iot_core_async.call_args.kwargs["payload"]) == {"seq": 1}
    publisher.close(1.0)




def test_unanswered_publish_never_blocks_and_is_resent(mocker, tmp_path: Path) -> None:
    """A frozen nucleus (SIGSTOP): no request is answered. The caller never waits; the message stays stored and is
    sent again after each timeout; the status says why; a clean close stays within its budget."""
    client = mocker.Mock()
    client.publish_to_iot_core_async.side_effect = lambda **_: Future()  # never answered
    publisher = ipc_publisher(client, tmp_path, timeout_s=0.1)
    started = time.monotonic()
    publisher.publish("detection", {"seq": 1})
    assert time.monotonic() - started < 0.05
    assert wait_until(lambda: client.publish_to_iot_core_async.call_count >= 3)  # resent after each timeout
    assert publisher.outbox_stats()["depth"] == 1
    (problem,) = publisher.problems()
    assert problem.part == "greengrass" and "not acknowledged within 0.1s" in problem.reason
    started = time.monotonic()
    publisher.close(1.0)
    assert time.monotonic() - started < 1.2


class UnauthorizedError(Exception):
    """Named as the IPC model's refusal."""


class ConnectionClosedError(Exception):
    """Named as awsiotsdk's error for a connection the nucleus closed."""


def test_refusal_is_fatal_and_one_line(mocker, tmp_path: Path) -> None:
    failed: Future = Future()
    failed.set_exception(UnauthorizedError("not allowed\nmore"))
    client = mocker.Mock(**{"publish_to_iot_core_async.return_value": failed})
    publisher = ipc_publisher(client, tmp_path)
    publisher.publish("detection", {})  # accepted into the outbox: the refusal comes from the sender
    assert wait_until(lambda: publisher.fatal() is not None)
    text = str(publisher.fatal())
    assert "\n" not in text and "not authorized (UnauthorizedError: not allowed)" in text
    assert "aws.greengrass.ipc.mqttproxy" in text
    assert wait_until(lambda: publisher.outbox_stats() == {"depth": 0, "bytes": 0, "dropped": 1, "in_flight": 0})
    publisher.close(1.0)


def test_closed_connection_reconnects_and_delivers_in_order(mocker, tmp_path: Path) -> None:
    """The nucleus restarted: the old client raises at once; a new one is connected with backoff, the stored
    messages go out on it, oldest first, each once."""
    dead = mocker.Mock()
    dead.publish_to_iot_core_async.side_effect = ConnectionClosedError("closed")
    fresh = mocker.Mock(**{"publish_to_iot_core_async.return_value": done()})
    attempts: list[int] = []

    def factory() -> Any:
        attempts.append(1)
        if len(attempts) < 3:
            raise PublishError("greengrass: cannot connect to the nucleus IPC socket (not yet)")
        return fresh

    publisher = ipc_publisher(dead, tmp_path, factory=factory)
    for seq in range(5):
        publisher.publish("detection", {"seq": seq})
    assert wait_until(lambda: publisher.outbox_stats()["depth"] == 0)
    sent = [json.loads(call.kwargs["payload"])["seq"] for call in fresh.publish_to_iot_core_async.call_args_list]
    assert sent == [0, 1, 2, 3, 4] and len(attempts) == 3
    assert publisher.connection.reconnects == 1 and publisher.problems() == []
    dead.close.assert_called_once()
    publisher.close(1.0)


def test_bridge_drops_access_control(mocker) -> None:
    value = {"accessControl": {"x": {}}, "install": {}, "model": {"top_k": 3}}
    client = mocker.Mock(**{"get_configuration_async.return_value": done(mocker.Mock(value=value))})
    assert ComponentBridge(client).read_tree() == {"model": {"top_k": 3}}
    client.get_configuration_async.assert_called_once_with(key_path=[])


def test_live_config_applies_thresholds_interval_topics(mocker, tmp_path: Path) -> None:
    client = mocker.Mock(**{"publish_to_iot_core_async.return_value": done()})
    old = validate({"thing_name": "cam-1"})
    publisher = ipc_publisher(client, tmp_path)
    pipeline = mocker.Mock(detector=FakeDetector())
    live = LiveConfig(old, pipeline, publisher)
    new = validate({
        "thing_name": "cam-1",
        "model": {"score_threshold": 0.2, "class_thresholds": {"thing": 0.7}},
        "inference": {"interval_s": 2.0},
        "publish": {"greengrass": {"topic": "other/{thing_name}"}},
        "source": {"uri": "rtsp://cam"},  # not live: logged, applied at the next restart
    })
    applied = live.apply(new)
    assert applied == ["model.score_threshold", "model.class_thresholds", "inference.interval_s", "publish.greengrass"]
    assert pipeline.detector.thresholds == [(0.2, {"thing": 0.7})]
    pipeline.set_inference_interval.assert_called_once_with(2.0)
    assert publisher.topics.all()["detection"] == ("other/cam-1", None)
    publisher.close(1.0)
    assert live.config.source.uri is None and live.config.model.score_threshold == 0.2
    assert live.apply(new) == []  # nothing differs from what runs


def test_live_config_sees_a_changed_password_and_never_logs_it(mocker, caplog) -> None:
    mqtt = {"host": "localhost", "username": "cam", "password": "first-secret"}
    restarts: list[list[str]] = []
    live = LiveConfig(validate({"publish": {"mqtt": mqtt}}), mocker.Mock(detector=FakeDetector()), None,
                      on_restart=restarts.append)  # fmt: skip
    live.apply(validate({"publish": {"mqtt": {**mqtt, "password": "first-secret"}}}))
    assert restarts == []  # the same secret: nothing to do
    live.apply(validate({"publish": {"mqtt": {**mqtt, "password": "second-secret"}}}))
    assert restarts == [["publish.mqtt.password"]]
    assert "secret" not in caplog.text


def test_live_config_refuses_bad_update(mocker, caplog) -> None:
    pipeline = mocker.Mock(detector=FakeDetector())
    live = LiveConfig(validate({}), pipeline, None)

    def bad() -> Any:
        return component_config({"model": {"score_threshold": 3}}, {}, {})

    assert live.apply_tree(bad) == []
    assert "model.score_threshold: Input should be less than or equal to 1 (got 3)" in caplog.text
    assert pipeline.detector.thresholds == []


def test_subscription_calls_back_with_key_path(mocker) -> None:
    client = mocker.Mock()
    client.subscribe_to_configuration_update_async.return_value = (done(), mocker.Mock())
    seen: list[list[str]] = []
    called = threading.Event()
    bridge = ComponentBridge(client)

    def on_change(path: list[str]) -> None:
        seen.append(path)
        called.set()

    bridge.subscribe(on_change)
    on_event = client.subscribe_to_configuration_update_async.call_args.kwargs["on_stream_event"]
    on_event(mocker.Mock(configuration_update_event=mocker.Mock(key_path=["model", "score_threshold"])))
    assert called.wait(1) and seen == [["model", "score_threshold"]]
