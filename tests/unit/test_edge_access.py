"""The start-up check of a component's accessControl against the topics it will publish to (edge_runtime.access)."""

from __future__ import annotations

import pytest

from edge_runtime.access import check_publish_access, topic_matches
from edge_runtime.errors import ConfigError

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
