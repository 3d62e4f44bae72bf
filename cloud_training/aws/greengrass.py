"""AWS IoT Greengrass v2: create a component version from an inline recipe, wait until it can be deployed, deploy.

A new component version is processed asynchronously (REQUESTED, INITIATED, then DEPLOYABLE or FAILED: the service
fetches the artifact and checks its digest), so a deployment made right after creation can fail; :func:`wait_deployable`
polls ``DescribeComponent`` within a bound first.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, Callable

from cloud_training.aws.session import call
from cloud_training.errors import AwsError

TARGET_ARN = re.compile(r"^arn:aws[a-z\-]*:iot:[a-z0-9\-]+:\d{12}:(thing|thinggroup)/[a-zA-Z0-9:_\-]+$")


def create_component_version(client: Any, recipe: Mapping[str, Any]) -> dict[str, Any]:
    """Register the recipe (inline JSON); returns the response (arn, componentName, componentVersion, status)."""
    body = json.dumps(recipe, indent=2).encode("utf-8")
    return call(client, "CreateComponentVersion", inlineRecipe=body)


def wait_deployable(client: Any, arn: str, report: Callable[[str], None], interval_s: float = 2.0,
                    max_wait_s: float = 120.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll until the component version is DEPLOYABLE; FAILED (say, a digest mismatch) is one line with the reason."""
    waited = 0.0
    last = ""
    while True:
        status = call(client, "DescribeComponent", arn=arn).get("status", {})
        state = str(status.get("componentState", "?"))
        if state != last:
            report(f"component {arn}: {state}")
            last = state
        if state == "DEPLOYABLE":
            return
        if state == "FAILED":
            errors = "; ".join(f"{k}: {v}" for k, v in (status.get("errors") or {}).items())
            raise AwsError(f"component {arn} failed: {status.get('message') or errors or 'no reason given'}")
        if waited >= max_wait_s:
            raise AwsError(f"component {arn} is still {state} after {max_wait_s:g} s; deploy it later")
        sleep(interval_s)
        waited += interval_s


def deployment_request(target_arn: str, components: Mapping[str, str], name: str) -> dict[str, Any]:
    """CreateDeployment for ``target_arn`` (a thing group, usually) with each component at its version."""
    if not TARGET_ARN.match(target_arn):
        raise AwsError(f"--deploy-to must be a thing or thing group ARN like "
                       f"arn:aws:iot:us-east-1:123456789012:thinggroup/Cameras (got {target_arn!r})")
    return {
        "targetArn": target_arn,
        "deploymentName": name,
        "components": {component: {"componentVersion": version} for component, version in components.items()},
    }


def current_components(client: Any, target_arn: str) -> dict[str, dict[str, Any]]:
    """The components of ``target_arn``'s latest deployment (name -> componentVersion, configurationUpdate, ...),
    or nothing when it has none: a thing group's new deployment replaces the old one, so publish merges into it."""
    listed = call(client, "ListDeployments", targetArn=target_arn, historyFilter="LATEST_ONLY")
    deployments = listed.get("deployments") or []
    if not deployments:
        return {}
    latest = call(client, "GetDeployment", deploymentId=deployments[0]["deploymentId"])
    components: dict[str, dict[str, Any]] = latest.get("components") or {}
    return components


def merged_components(
    current: Mapping[str, Mapping[str, Any]], ours: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``current`` with ``ours`` at their new versions; every other component, and the configuration updates of
    ours, kept as they were deployed."""
    merged = {name: dict(spec) for name, spec in current.items()}
    for name, spec in ours.items():
        merged[name] = {**merged.get(name, {}), **spec}
    return merged


def create_deployment(client: Any, request: Mapping[str, Any]) -> dict[str, Any]:
    """Create (or, for the same target, revise) the deployment; returns deploymentId, iotJobId, iotJobArn."""
    return call(client, "CreateDeployment", **request)
