"""The start-up check of a component's accessControl against the topics it will publish to
(edge_runtime.greengrass.access)."""

from __future__ import annotations

import pytest

from edge_runtime.errors import ConfigError
from edge_runtime.greengrass.access import check_publish_access, topic_matches

TOPIC = "ml/object-detection/cam-1"


def policy(*resources: str, operation: str = "aws.greengrass#PublishToIoTCore") -> dict[str, object]:
    return {"aws.greengrass.ipc.mqttproxy": {"p1": {"operations": [operation], "resources": list(resources)}}}


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("ml/object-detection/+", TOPIC, True),
        ("ml/object-detection/+", f"{TOPIC}/status", False),
        ("ml/object-detection/+/status", f"{TOPIC}/status", True),
        ("ml/#", f"{TOPIC}/status", True),
        ("ml/object-detection/#", "ml/object-detection", True),  # '#' also matches the parent level (MQTT 4.7.1.2)
        ("*", "anything/at/all", True),
        (TOPIC, TOPIC, True),
        ("ml/object-detection/{iot:thingName}", TOPIC, False),
        ("ml/#/x", TOPIC, False),  # '#' only as the last level
        ("ml/object-detection/*", TOPIC, True),  # '*' is a glob, as the nucleus' matchesMQTT: across levels too
        ("ml/object-detection/*", f"{TOPIC}/status", True),
        ("ml/*-detection/+/status", f"{TOPIC}/status", True),
        ("ml/object-detection/*", "ml/other/cam-1", False),
        ("ml/obj+/cam-1", "ml/object-detection/cam-1", False),  # '+' inside a level is a plain character
        ("ml/obj+/cam-1", "ml/obj+/cam-1", True),
        ("ml/object-detection/+", "ml/object-detection/", True),  # an empty level is a level
    ],
)
def test_topic_matches_as_mqtt_filters(pattern: str, topic: str, matches: bool) -> None:
    assert topic_matches(pattern, topic) is matches


def test_allowed_topics_pass() -> None:
    check_publish_access(policy("ml/object-detection/+"), [("aws.greengrass.ipc.mqttproxy", "PublishToIoTCore", TOPIC)])
    check_publish_access(policy(TOPIC, operation="*"), [("aws.greengrass.ipc.mqttproxy", "PublishToIoTCore", TOPIC)])


def test_an_uninterpolated_thing_name_names_the_nucleus_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        check_publish_access(policy("ml/object-detection/{iot:thingName}"),
                             [("aws.greengrass.ipc.mqttproxy", "PublishToIoTCore", TOPIC)])  # fmt: skip
    text = str(caught.value)
    assert "interpolateComponentConfiguration: true" in text and TOPIC in text and "\n" not in text


def test_a_topic_no_resource_allows_is_named_with_the_resources() -> None:
    with pytest.raises(ConfigError, match=r"allowed on other/\+ but not on ml/object-detection/cam-1"):
        check_publish_access(policy("other/+"), [("aws.greengrass.ipc.mqttproxy", "PublishToIoTCore", TOPIC)])


def test_no_policy_at_all_for_local_publishing() -> None:
    with pytest.raises(ConfigError, match=r"accessControl.aws.greengrass.ipc.pubsub: no policy allows"):
        check_publish_access(policy("ml/object-detection/+"), [("aws.greengrass.ipc.pubsub", "PublishToTopic", "l/x")])


def test_a_camera_that_does_not_open_says_why(tmp_path) -> None:
    """Missing node, or a node the component's user may not open: the group and the usermod line (not 'retrying')."""
    from edge_runtime.sources.base import camera_problem

    assert camera_problem(0, tmp_path).startswith(f"camera 0: {tmp_path / 'video0'} does not exist (no /dev/video*")
    (tmp_path / "video1").write_bytes(b"")
    assert "present: video1" in camera_problem(0, tmp_path)
    denied = camera_problem(1, tmp_path, access=lambda path, mode: False)
    assert "permission denied" in denied and "usermod -aG" in denied and "ggc_user" in denied and "video" in denied
    assert "in use?" in camera_problem(1, tmp_path, access=lambda path, mode: True)
