"""The config is strict, its errors read ``key.path: problem (got VALUE)``, and its sources layer in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_runtime.cli import main
from edge_runtime.config import RuntimeConfig, env_overrides, load_config, validate
from edge_runtime.errors import ConfigError


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_defaults_validate_and_publish_to_stdout() -> None:
    config = load_config(environ={})
    assert config.publish.targets == ["stdout"]
    assert config.publish.mqtt.qos == 1
    assert config.model.path is None


def test_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, {"publish": {"mqtt": {"prot": 1883}}})
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == "publish.mqtt.prot: unknown key (got 1883)"


def test_out_of_bounds_value_names_path_problem_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, {"model": {"score_threshold": 1.5}, "source": {"queue_size": 0}})
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert "\n" not in message
    assert "model.score_threshold: Input should be less than or equal to 1 (got 1.5)" in message
    assert "source.queue_size: Input should be greater than or equal to 1 (got 0)" in message


def test_wrong_type_and_bad_choice(tmp_path: Path) -> None:
    path = write(tmp_path, {"publish": {"targets": ["stdout", "kafka"], "mqtt": {"port": "eighty"}}})
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert "publish.targets.1:" in message and "(got 'kafka')" in message
    assert "publish.mqtt.port:" in message and "(got 'eighty')" in message


def test_per_class_threshold_bounds_are_checked() -> None:
    expected = r"model: class_thresholds.blue box must be between 0 and 1 \(got 2.0\)"
    with pytest.raises(ConfigError, match=expected):
        load_config(environ={}, overrides={"model": {"class_thresholds": {"blue box": 2.0}}})


def test_layers_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, {"thing_name": "from-file", "publish": {"mqtt": {"port": 1000, "host": "fh"}}})
    environ = {"EDGE_RUNTIME_PUBLISH__MQTT__PORT": "2000", "EDGE_RUNTIME_THING_NAME": "env", "OTHER": "x"}
    config = load_config(path, environ=environ, overrides={"thing_name": "from-flag"})
    assert config.thing_name == "from-flag"
    assert config.publish.mqtt.port == 2000
    assert config.publish.mqtt.host == "fh"


def test_environment_values_parse_as_json_when_they_can() -> None:
    tree = env_overrides({"EDGE_RUNTIME_PUBLISH__TARGETS": '["stdout","mqtt"]', "EDGE_RUNTIME_SOURCE__URI": "0"})
    assert tree == {"publish": {"targets": ["stdout", "mqtt"]}, "source": {"uri": 0}}
    with pytest.raises(ConfigError, match=r"source.uri: Input should be a valid string \(got 0\)"):
        load_config(environ={"EDGE_RUNTIME_SOURCE__URI": "0"})


def test_malformed_json_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"thing_name": ')
    with pytest.raises(ConfigError, match=r"bad.json: not valid JSON at line 1"):
        load_config(path, environ={})


def test_check_config_cli_ok_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, {"thing_name": "dev-1"})
    assert main(["check-config", str(good), "--print"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert RuntimeConfig.model_validate(printed).thing_name == "dev-1"

    bad = tmp_path / "bad-key.json"
    bad.write_text(json.dumps({"status": {"interval_s": -1}}))
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    expected = "edge-runtime: error: status.interval_s: Input should be greater than or equal to 0 (got -1)\n"
    assert err == expected


def test_run_without_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--source", "video.mp4"]) == 2
    assert capsys.readouterr().err.strip() == (
        "edge-runtime: error: model.path: required (give --model DIR or set it in the config)"
    )


def test_set_flag_without_equals_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--set", "publish.mqtt.port"]) == 2
    assert "--set needs KEY=VALUE" in capsys.readouterr().err


def test_publisher_registry_covers_every_target_and_places_outboxes(tmp_path: Path) -> None:
    from typing import get_args

    from edge_runtime.config import Target
    from edge_runtime.publishers.registry import FACTORIES, PublisherContext, outbox_path

    assert set(FACTORIES) == set(get_args(Target))  # a target without a factory (or the reverse) is a bug
    home = {"HOME": str(tmp_path / "home")}
    default = PublisherContext(validate({"publish": {"targets": ["mqtt"]}}), "s", environ=home)
    assert outbox_path(default, "mqtt") == tmp_path / "home/.local/state/edge-runtime/outbox-mqtt-edge-device.sqlite3"
    xdg = PublisherContext(default.config, "s", environ={**home, "XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert outbox_path(xdg, "mqtt") == tmp_path / "xdg/edge-runtime/outbox-mqtt-edge-device.sqlite3"
    state = PublisherContext(validate({"state_dir": str(tmp_path / "work"), "thing_name": "cam/1"}), "s", environ=home)
    assert outbox_path(state, "greengrass") == tmp_path / "work/outbox-greengrass-cam_1.sqlite3"
    both = validate({"publish": {"targets": ["mqtt", "greengrass"], "outbox": {"path": str(tmp_path / "ob.db")}}})
    with pytest.raises(ConfigError, match=r"mqtt and greengrass need one outbox file each: put \{publisher\}"):
        outbox_path(PublisherContext(both, "s", environ=home), "mqtt")
    templated = validate({"publish": {"targets": ["mqtt", "greengrass"], "outbox": {"path": "/x/{publisher}.db"}}})
    assert outbox_path(PublisherContext(templated, "s", environ=home), "greengrass") == Path("/x/greengrass.db")
