"""Check at start that the component's own ``accessControl`` lets it publish where it is configured to.

The nucleus refuses a publish the recipe's policies do not allow with an UnauthorizedError on every call, and a
component that only logged it would run on, RUNNING and delivering nothing (measured: 71 of 71 publishes refused
behind a summary full of detections). The configuration the component reads over IPC carries those policies, so
the mismatch can be found before the first frame, in one line that names the topic and the setting to change:

- a resource still spelling ``{iot:thingName}``: the nucleus did not expand it, because
  ``interpolateComponentConfiguration`` is off (its default);
- a topic no resource matches (MQTT wildcards ``+`` and ``#``, and ``*`` for every topic, as the nucleus matches).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edge_runtime.errors import ConfigError

MQTT_PROXY = "aws.greengrass.ipc.mqttproxy"
PUBSUB = "aws.greengrass.ipc.pubsub"


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic-filter matching: ``+`` one level, ``#`` the rest (last level only), ``*`` every topic."""
    if pattern == "*":
        return True
    wanted, levels = pattern.split("/"), topic.split("/")
    for index, part in enumerate(wanted):
        if part == "#":
            return index == len(wanted) - 1
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(wanted) == len(levels)


def allowed_resources(access_control: Mapping[str, Any], service: str, operation: str) -> list[str]:
    """Every resource of ``service`` policies that list ``operation`` (or ``*``)."""
    policies = access_control.get(service) or {}
    resources: list[str] = []
    for policy in policies.values() if isinstance(policies, Mapping) else []:
        operations = policy.get("operations") or []
        if f"aws.greengrass#{operation}" in operations or "*" in operations:
            resources += [str(resource) for resource in policy.get("resources") or []]
    return resources


def check_publish_access(access_control: Mapping[str, Any], topics: Iterable[tuple[str, str, str]]) -> None:
    """ConfigError unless each (service, operation, topic) is allowed by the component's ``accessControl``."""
    for service, operation, topic in topics:
        resources = allowed_resources(access_control, service, operation)
        where = f"accessControl.{service}"
        if not resources:
            raise ConfigError(
                f"{where}: no policy allows aws.greengrass#{operation}, so the nucleus would refuse every publish to"
                f" {topic} (deploy the recipe's default accessControl, or merge one that allows it)"
            )
        literal = [resource for resource in resources if "{iot:" in resource]
        if literal and not any(topic_matches(resource, topic) for resource in resources):
            raise ConfigError(
                f"{where}: resource {literal[0]!r} was not interpolated, so the nucleus would refuse every publish"
                f" to {topic}: set interpolateComponentConfiguration: true in the nucleus configuration, or use a"
                " resource without {iot:...} (the recipe's default, ml/object-detection/+)"
            )
        if not any(topic_matches(resource, topic) for resource in resources):
            raise ConfigError(
                f"{where}: aws.greengrass#{operation} is allowed on {', '.join(resources)} but not on {topic}: the"
                " nucleus would refuse every publish; make the topic and the accessControl resources agree"
            )
