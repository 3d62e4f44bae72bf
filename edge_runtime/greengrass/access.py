"""Check at start that the component's own ``accessControl`` lets it publish where it is configured to.

The nucleus refuses a publish the recipe's policies do not allow with an UnauthorizedError on every call, and a
component that only logged it would run on, RUNNING and delivering nothing (measured: 71 of 71 publishes refused
behind a summary full of detections). The configuration the component reads over IPC carries those policies, so
the mismatch can be found before the first frame, in one line that names the topic and the setting to change:

- a resource still spelling ``{iot:thingName}``: the nucleus did not expand it, because
  ``interpolateComponentConfiguration`` is off (its default);
- a topic no resource matches (MQTT wildcards ``+`` and ``#``, and ``*`` as a glob, as the nucleus matches).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from edge_runtime.errors import ConfigError

MQTT_PROXY = "aws.greengrass.ipc.mqttproxy"
PUBSUB = "aws.greengrass.ipc.pubsub"


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether the nucleus allows ``topic`` by the resource ``pattern``: its MQTT-style matching (WildcardTrie's
    ``matchesMQTT``, used for mqttproxy and pubsub resources).

    ``*`` is a glob anywhere, matching any characters, ``/`` included (``ml/object-detection/*`` allows
    ``ml/object-detection/cam-1/status``); ``+`` is one level where it is a whole level, ``#`` the rest (and the
    parent level itself) where it is the last whole level; used anywhere else, ``+`` and ``#`` are plain characters.
    """
    return _pattern(pattern).fullmatch(topic) is not None


@functools.lru_cache(maxsize=256)
def _pattern(resource: str) -> re.Pattern[str]:
    parts: list[str] = []
    size = len(resource)
    for index, char in enumerate(resource):
        whole_level = (index == 0 or resource[index - 1] == "/") and (index == size - 1 or resource[index + 1] == "/")
        if char == "*":
            parts.append(".*")
        elif char == "+" and whole_level:
            parts.append("[^/]*")
        elif char == "#" and index == size - 1 and (index == 0 or resource[index - 1] == "/"):
            if parts and parts[-1] == re.escape("/"):  # "abc/#" also matches "abc"
                parts[-1] = "(?:/.*)?"
            else:
                parts.append(".*")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


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
