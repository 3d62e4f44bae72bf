"""The bucket-region lookup of the SageMaker preflight when the caller may not call s3:GetBucketLocation: HeadBucket's
region is used (S3 sends it even with a 403); when nothing tells the region, one line names the action to grant.
botocore's Stubber checks each request against the S3 model."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from cloud_training import storage
from cloud_training.errors import StorageError


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    client = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x").client(
        "s3", region_name="us-east-1")
    stubber = Stubber(client)
    monkeypatch.setattr(storage, "s3_client", lambda: client)
    with stubber:
        yield stubber


def test_get_bucket_location_answers(s3: Stubber) -> None:
    s3.add_response("get_bucket_location", {"LocationConstraint": "eu-central-1"}, {"Bucket": "data"})
    assert storage.bucket_region("data") == "eu-central-1"


def test_denied_get_bucket_location_falls_back_to_head_bucket(s3: Stubber) -> None:
    s3.add_client_error("get_bucket_location", "AccessDenied", "Access Denied", 403, expected_params={"Bucket": "data"})
    s3.add_response("head_bucket", {"BucketRegion": "eu-west-3"}, {"Bucket": "data"})
    assert storage.bucket_region("data") == "eu-west-3"


def test_a_refused_head_bucket_still_carries_the_region_header(s3: Stubber) -> None:
    s3.add_client_error("get_bucket_location", "AccessDenied", "Access Denied", 403)
    s3.add_client_error("head_bucket", "403", "Forbidden", 403,
                        response_meta={"HTTPHeaders": {"x-amz-bucket-region": "ap-south-1"}})
    assert storage.bucket_region("data") == "ap-south-1"


def test_when_nothing_tells_the_region_the_action_to_grant_is_named(s3: Stubber) -> None:
    s3.add_client_error("get_bucket_location", "AccessDenied", "Access Denied", 403)
    s3.add_client_error("head_bucket", "403", "Forbidden", 403)
    with pytest.raises(StorageError) as raised:
        storage.bucket_region("data")
    assert str(raised.value) == (
        "s3://data: access denied to s3:GetBucketLocation, which tells the bucket's region (and HeadBucket did not);"
        " grant s3:GetBucketLocation on arn:aws:s3:::data to the caller")
