"""``publish.mqtt.username`` / ``password_file`` against a real mosquitto with a password file (issue 21).

Before, ``publish.mqtt`` had no user name or password at all (mosquitto, EMQX and HiveMQ users need them), and a
refused login named an AWS IoT certificate policy whatever the broker. Here: the right login delivers; a wrong
password or no login says ``bad user name or password`` / ``not authorized`` with the settings to fix for this kind
of broker (user name and password, not a certificate policy), the status reason says the same, and the password
never appears in a log line.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import free_port, wait_for  # type: ignore[import-not-found]
from edge_mqtt_helpers import Broker, require_mosquitto  # type: ignore[import-not-found]

from edge_runtime.config import MqttConfig, validate
from edge_runtime.publishers.mqtt import MqttPublisher, refusal_advice

THING = "cam-login"
SECRET = "s3cret-Pa55"


@pytest.fixture
def locked_broker(tmp_path: Path) -> Any:
    """mosquitto that takes only user ``device`` with :data:`SECRET` (a password file made by mosquitto_passwd)."""
    binary = require_mosquitto()
    passwd = Path(binary).with_name("mosquitto_passwd")
    tool = str(passwd) if passwd.exists() else "mosquitto_passwd"
    users = tmp_path / "users"
    subprocess.run([tool, "-c", "-b", str(users), "device", SECRET], check=True, capture_output=True, timeout=30)
    broker = Broker(binary, tmp_path / "broker", free_port(), f"allow_anonymous false\npassword_file {users}\n")
    broker.start()
    yield broker
    broker.stop()


def publish_one(tmp_path: Path, port: int, **login: Any) -> tuple[MqttPublisher, list[str]]:
    """A publisher with ``login``, one detection handed to it, and its problems' reasons after its first attempt."""
    config = validate({"thing_name": THING, "state_dir": str(tmp_path / "state"),
                       "publish": {"targets": ["mqtt"], "mqtt": {"port": port, **login}}})  # fmt: skip
    sender = MqttPublisher.from_config(config, "s", tmp_path / f"ob-{len(login)}-{free_port()}.sqlite3")
    sender.publish("detection", {"seq": 1})
    sender.first_outcome(10.0)
    return sender, [problem.reason for problem in sender.problems()]


def test_the_right_login_delivers(tmp_path: Path, locked_broker: Broker) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(SECRET + "\n")
    sender, reasons = publish_one(tmp_path, locked_broker.port, username="device", password_file=str(password_file))
    try:
        assert sender.connected.is_set(), reasons
        assert wait_for(lambda: sender.outbox_stats()["depth"] == 0, timeout=10)
        assert sender.outbox_stats()["dropped"] == 0
    finally:
        sender.close(2.0)


@pytest.mark.parametrize(
    ("login", "words"),
    [
        ({"username": "device", "password": "wrong"}, ["publish.mqtt.username ('device')", "publish.mqtt.password"]),
        ({}, ["not authorized", "set publish.mqtt.username"]),
    ],
)
def test_a_refused_login_names_the_fix_for_this_broker(
    tmp_path: Path, locked_broker: Broker, caplog: Any, login: dict[str, str], words: list[str]
) -> None:
    with caplog.at_level(logging.DEBUG):
        sender, reasons = publish_one(tmp_path, locked_broker.port, **login)
        sender.close(2.0)
    (reason,) = reasons
    assert "refused the connection" in reason and all(word in reason for word in words), reason
    assert "iot:Connect" not in reason and "certificate" not in reason  # not AWS IoT Core advice
    assert sender.outbox_stats()["depth"] == 1  # kept for when the login is fixed
    assert all("wrong" not in record.getMessage() for record in caplog.records)  # the password is never logged


def test_aws_iot_core_refusals_name_the_certificate_and_policy() -> None:
    core = MqttConfig(host="abc123-ats.iot.eu-west-1.amazonaws.com", port=8883)
    advice = refusal_advice(0x87, core)
    assert "certificate" in advice and "iot:Connect" in advice and "username" not in advice


def test_a_password_never_appears_in_a_config_error() -> None:
    from edge_runtime.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        validate({"publish": {"mqtt": {"password": SECRET}}})
    assert "needs publish.mqtt.username" in str(raised.value) and SECRET not in str(raised.value)
