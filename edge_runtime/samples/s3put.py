"""One S3 PutObject, signed with SigV4 by awscrt and sent with http.client: the device needs no boto3.

Why awscrt: it is already on the device (awsiotsdk depends on it) and its default credentials chain reads what
Greengrass gives a component: with ``aws.greengrass.TokenExchangeService`` as a dependency the nucleus sets
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and ``AWS_CONTAINER_AUTHORIZATION_TOKEN``, and the chain's container
provider fetches (and refreshes) the role's credentials there; elsewhere environment variables or a profile.
Every call is bounded by ``timeout_s`` (signing waits on the credentials fetch; the socket has a timeout).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.parse
from typing import Any, Optional

from edge_runtime.errors import EdgeRuntimeError


class UploadError(EdgeRuntimeError):
    """An upload failed (network, credentials, or S3's answer); the sample stays in the spool."""


def default_credentials() -> Any:
    """awscrt's default chain: environment, profile, web identity, container (Greengrass TES), instance metadata."""
    from awscrt import auth

    return auth.AwsCredentialsProvider.new_default_chain()


class S3Put:
    """PUT objects into one bucket, path-style through ``endpoint_url`` when given, else virtual-hosted AWS."""

    def __init__(self, bucket: str, region: str, endpoint_url: Optional[str] = None,
                 credentials: Any = None) -> None:
        self.bucket = bucket
        self.region = region
        self.credentials = credentials if credentials is not None else default_credentials()
        if endpoint_url:
            parsed = urllib.parse.urlsplit(endpoint_url)
            self.scheme, self.host = parsed.scheme or "https", parsed.netloc
            self.base_path = parsed.path.rstrip("/") + f"/{urllib.parse.quote(bucket)}"
        else:
            self.scheme, self.host = "https", f"{bucket}.s3.{region}.amazonaws.com"
            self.base_path = ""

    def url(self, key: str) -> str:
        return f"{self.scheme}://{self.host}{self.base_path}/{key}"

    def put(self, key: str, body: bytes, content_type: str, timeout_s: float) -> None:
        from awscrt import auth, http

        path = f"{self.base_path}/{urllib.parse.quote(key, safe='/~')}"
        digest = hashlib.sha256(body).hexdigest()
        request = http.HttpRequest("PUT", path, http.HttpHeaders([
            ("host", self.host), ("content-length", str(len(body))), ("content-type", content_type),
        ]))
        config = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4,
            signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=self.credentials,
            region=self.region,
            service="s3",
            signed_body_value=digest,
            signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
            use_double_uri_encode=False,
            should_normalize_uri_path=False,
        )
        try:
            signed = auth.aws_sign_request(request, config).result(timeout_s)
        except Exception as error:  # awscrt reports a credentials failure as its own error type
            raise UploadError(f"no AWS credentials to sign the upload ({error}); on Greengrass the component needs "
                              "aws.greengrass.TokenExchangeService") from error
        headers = {name: value for name, value in signed.headers}
        connection_type = http_client_type(self.scheme)
        connection = connection_type(self.host, timeout=timeout_s)
        try:
            connection.request("PUT", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read(2048)
        except (OSError, http.client.HTTPException) as error:
            raise UploadError(f"PUT {self.url(key)}: {type(error).__name__}: {error}") from error
        finally:
            connection.close()
        if response.status // 100 != 2:
            code = _error_code(answer)
            raise UploadError(f"PUT {self.url(key)}: HTTP {response.status} {code}".rstrip()
                              + (" (the role needs s3:PutObject on the prefix)" if response.status == 403 else ""))


def http_client_type(scheme: str) -> type[http.client.HTTPConnection]:
    return http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection


def _error_code(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    start, end = text.find("<Code>"), text.find("</Code>")
    return text[start + 6:end] if 0 <= start < end else ""


def region_from_env(configured: Optional[str]) -> str:
    return configured or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
