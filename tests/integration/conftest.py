"""Fixtures for integration tests: moto's S3 server on loopback (real boto3 calls); a deploy model and a short clip
for the daemon tests (one per test module)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the session, on 127.0.0.1 and a free port (never a non-loopback interface)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class S3Bucket:
    """A fresh bucket on the moto server and a client for arranging and checking its objects."""

    client: Any
    name: str

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def put(self, key: str, data: bytes | str) -> str:
        self.client.put_object(Bucket=self.name, Key=key, Body=data.encode() if isinstance(data, str) else data)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return body

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[S3Bucket]:
    """Dummy credentials and region, every S3 call of the code under test pointed at moto, and an empty bucket."""
    import boto3
    from botocore.config import Config

    from cloud_training import storage

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    storage._client.cache_clear()
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})
    client = boto3.session.Session().client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", config=config)
    bucket = S3Bucket(client, f"test-{uuid.uuid4().hex[:12]}")
    client.create_bucket(Bucket=bucket.name)
    yield bucket
    storage._client.cache_clear()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small deploy folder (MXNet pair and model.onnx) built by the project's own converter."""
    from edge_helpers import build_deploy_model  # type: ignore[import-not-found]

    return Path(build_deploy_model(tmp_path_factory.mktemp("model") / "m"))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20-frame MJPG clip with two coloured boxes."""
    from edge_helpers import write_video

    return Path(write_video(tmp_path_factory.mktemp("video") / "v.avi", frames=20))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    """A real mosquitto on a free loopback port for one test (skipped without it, failing under CI=true)."""
    from edge_helpers import free_port
    from edge_mqtt_helpers import Broker, require_mosquitto  # type: ignore[import-not-found]

    running = Broker(require_mosquitto(), tmp_path / "broker", free_port())
    running.start()
    yield running
    running.stop()
