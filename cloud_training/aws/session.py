"""boto3 clients made in one place, and botocore failures turned into one line that says what to do.

Every client uses botocore's *standard* retry mode, so throttling and transient errors are retried with backoff by
botocore itself (``AWS_MAX_ATTEMPTS`` still sets the attempt count). What is left after the retries becomes an
:class:`~cloud_training.errors.AwsError` naming the IAM action (``sagemaker:CreateTrainingJob``) the call needed, so
an AccessDenied can be fixed without reading a traceback. Messages never include credentials: botocore's own messages
do not carry them, and we add only the service, the operation and AWS's error code and message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Optional

from cloud_training.errors import AwsError

# the error codes AWS services use for "slow down" (botocore's standard mode retries exactly these, and more)
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException",
})  # fmt: skip
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized"})
IAM_PREFIX = {"greengrassv2": "greengrass"}  # IAM action prefixes that differ from the botocore service name


def resolve_region(region: Optional[str]) -> str:
    """The region from ``--region``, else ``AWS_REGION``, else what boto3 finds (``AWS_DEFAULT_REGION``, the profile).

    Resolved before any call so a missing region is one line up front rather than a NoRegionError mid-way.
    """
    if region:
        return region
    if os.environ.get("AWS_REGION"):  # what the other AWS SDKs and storage.py read; botocore reads only the next two
        return os.environ["AWS_REGION"]
    import boto3

    found: Optional[str] = boto3.session.Session().region_name
    if not found:
        raise AwsError("no AWS region: pass --region or set AWS_REGION (or a region in your AWS profile)")
    return found


def build_client(service: str, region: Optional[str], endpoint_url: Optional[str] = None) -> Any:
    """The one place boto3 clients are made (storage's S3 client too): standard-mode retries, bounded socket waits.

    The retry config names no attempt count, so botocore takes ``AWS_MAX_ATTEMPTS`` (or the profile's
    ``max_attempts``) when set, and standard mode's 3 otherwise: the variable README promises always wins.
    """
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard"}, connect_timeout=10, read_timeout=60)
    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint_url, config=config)


def make_client(service: str, region: str) -> Any:
    """A client for the AWS commands (SageMaker, Greengrass). Tests replace this to inject a Stubber."""
    return build_client(service, region)


def client(service: str, region: str) -> Any:
    """The client for ``service`` in ``region`` (through :func:`make_client`, so tests can swap it)."""
    return make_client(service, region)


def iam_action(service: str, operation: str) -> str:
    """``sagemaker:CreateTrainingJob``: the permission a denied call lacked, as written in an IAM policy."""
    return f"{IAM_PREFIX.get(service, service)}:{operation}"


def describe_failure(service: str, operation: str, error: Exception) -> str:
    """One line for a failed call: what was attempted, why it failed, and what to do about it."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    action = iam_action(service, operation)
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return (f"no AWS credentials for {action}: configure a profile (aws configure, AWS_PROFILE) "
                "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(error, NoRegionError):
        return f"no AWS region for {action}: pass --region or set AWS_REGION"
    if isinstance(error, EndpointConnectionError):
        return f"{action}: cannot reach the endpoint ({error})"
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", "?"))
        message = str(details.get("Message", "")).strip()
        attempts = int(error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1
        if code in ACCESS_DENIED_CODES:
            return f"access denied: the caller may not {action} ({message or code}); grant {action} to it"
        if code in THROTTLING_CODES:
            return (f"{action} was throttled ({code}) and still failed after {attempts} attempt(s); "
                    "try again later or raise AWS_MAX_ATTEMPTS")
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId",
                    "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException"):
            return f"{action}: AWS refused the credentials ({code}); refresh or reconfigure them"
        return f"{action} failed: {code}: {message}".rstrip(": ")
    return f"{action} failed: {type(error).__name__}: {error}"


@contextlib.contextmanager
def calling(service: str, operation: str) -> Iterator[None]:
    """Wrap one AWS call: any botocore failure leaves as an :class:`AwsError` with :func:`describe_failure`'s line."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise AwsError(describe_failure(service, operation, error)) from error


def call(aws_client: Any, operation: str, **request: Any) -> dict[str, Any]:
    """``aws_client.<snake_case(operation)>(**request)`` with failures as one line. ``operation`` is the API name
    (``CreateTrainingJob``), so the error can name the IAM action without a lookup table."""
    from botocore import xform_name

    service = aws_client.meta.service_model.service_name
    method = getattr(aws_client, xform_name(operation))
    with calling(service, operation):
        response: dict[str, Any] = method(**request)
    return response
