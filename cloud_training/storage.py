"""Local paths and ``s3://`` URIs behind one small set of functions, so no command has two code paths.

A *location* is a plain string: either ``s3://bucket/key`` or a local file system path. Ground Truth manifests,
images and outputs can live in either place, and users mix them (a local manifest whose lines point at S3 images,
an S3 output prefix for a local run). The boto3 client is created lazily, on the first S3 call, so local-only runs
never import boto3, and it honours ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` so tests (and S3-compatible stores)
can point it elsewhere.

Writes never leave a half-written file: locally a temp file in the destination directory is renamed over the target;
on S3 a single ``PutObject`` (or a multipart upload, which S3 only makes visible when complete) does the same.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Callable

from cloud_training.errors import CredentialsError, StorageError

S3_SCHEME = "s3://"


def is_s3(location: str) -> bool:
    """True for ``s3://`` URIs; everything else is a local path."""
    return location.startswith(S3_SCHEME)


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → ``("bucket", "some/key")``; the key may be empty (a bucket root)."""
    if not is_s3(uri):
        raise StorageError(f"{uri}: not an s3:// URI")
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: no bucket name in the S3 URI")
    return bucket, key


def join(base: str, *parts: str) -> str:
    """Join a directory (or S3 prefix) and relative parts, with ``/`` on S3 and the OS separator locally."""
    if is_s3(base):
        bucket, key = split_s3(base)
        joined = posixpath.join(key, *parts) if key else posixpath.join(*parts) if parts else ""
        return f"{S3_SCHEME}{bucket}/{posixpath.normpath(joined) if joined else ''}"
    return os.path.normpath(os.path.join(base, *parts))


def parent(location: str) -> str:
    """The directory or S3 prefix a location lives in (what relative references inside it are relative to)."""
    if is_s3(location):
        bucket, key = split_s3(location)
        return f"{S3_SCHEME}{bucket}/{posixpath.dirname(key)}".rstrip("/")
    return os.path.dirname(os.path.abspath(location))


def basename(location: str) -> str:
    """The last path component (file name) of a location."""
    if is_s3(location):
        return posixpath.basename(split_s3(location)[1])
    return os.path.basename(location)


def resolve(ref: str, relative_to: str) -> str:
    """Where ``ref``, read inside the file at ``relative_to``, points: S3 URIs and absolute paths as they are,
    relative paths against the referring file's directory (or S3 prefix)."""
    if is_s3(ref) or os.path.isabs(ref):
        return ref
    return join(parent(relative_to), ref)


def reference(target: str, from_file: str) -> str:
    """How a file at ``from_file`` should refer to ``target``: relative when both are local (so a data folder can be
    moved as a whole), otherwise the absolute path or URI."""
    if not is_s3(target) and not is_s3(from_file):
        return os.path.relpath(os.path.abspath(target), os.path.dirname(os.path.abspath(from_file)))
    return target


@functools.lru_cache(maxsize=8)
def _client(endpoint_url: str | None, region: str | None) -> Any:
    """Through :func:`cloud_training.aws.session.build_client`, the one client factory: standard-mode retries whose
    attempt count is ``AWS_MAX_ATTEMPTS`` when set (botocore reads it when the config names no count), bounded
    socket waits so a dead endpoint fails in about a minute instead of hanging a pipeline."""
    from cloud_training.aws.session import build_client

    return build_client("s3", region, endpoint_url=endpoint_url)


def s3_client() -> Any:
    """The S3 client for the current environment (endpoint and region from the standard variables), made once."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return _client(endpoint, region)


def bucket_region(bucket: str) -> str:
    """The region a bucket lives in (GetBucketLocation: an empty constraint means us-east-1, "EU" eu-west-1).

    A caller denied s3:GetBucketLocation (common in least-privilege roles) still learns the region from HeadBucket,
    whose answer carries it even when access is refused (x-amz-bucket-region); only when neither tells is it an error,
    one that names the action to grant."""
    client = s3_client()
    try:
        constraint = client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except _botocore_errors() as error:
        if _error_code(error) not in ("AccessDenied", "AllAccessDisabled"):
            raise _s3_failure(f"s3://{bucket}", error) from error
        region = _region_from_head(client, bucket)
        if region is None:
            raise StorageError(f"s3://{bucket}: access denied to s3:GetBucketLocation, which tells the bucket's region"
                               f" (and HeadBucket did not); grant s3:GetBucketLocation on arn:aws:s3:::{bucket}"
                               " to the caller") from None
        return region
    if not constraint:
        return "us-east-1"
    return "eu-west-1" if constraint == "EU" else str(constraint)


def _error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)
    return str(response["Error"].get("Code")) if isinstance(response, dict) and "Error" in response else None


def _region_from_head(client: Any, bucket: str) -> str | None:
    """HeadBucket's region (its BucketRegion, the x-amz-bucket-region header), answered or refused."""
    try:
        answer = client.head_bucket(Bucket=bucket)
    except _botocore_errors() as error:
        answer = getattr(error, "response", None) or {}
    region = answer.get("BucketRegion") or answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(
        "x-amz-bucket-region")
    return str(region) if region else None


def _s3_failure(uri: str, error: Exception) -> StorageError:
    """One line for any botocore failure: the error code and message when S3 answered, the exception otherwise."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = response["Error"].get("Code", "?")
        message = response["Error"].get("Message", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            return StorageError(f"{uri}: no such object")
        if code == "NoSuchBucket":
            return StorageError(f"{uri}: no such bucket")
        return StorageError(f"{uri}: S3 error {code}: {message}".rstrip(": "))
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return CredentialsError(f"{uri}: no AWS credentials: configure a profile (aws configure, AWS_PROFILE) or set "
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    return StorageError(f"{uri}: {type(error).__name__}: {error}")


def _botocore_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def read_bytes(location: str) -> bytes:
    """The whole content of a file or S3 object."""
    if is_s3(location):
        bucket, key = split_s3(location)
        try:
            body: bytes = s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except _botocore_errors() as error:
            raise _s3_failure(location, error) from error
        return body
    try:
        return Path(location).read_bytes()
    except FileNotFoundError:
        raise StorageError(f"{location}: no such file") from None
    except OSError as error:
        raise StorageError(f"{location}: {error.strerror or error}") from None


@contextlib.contextmanager
def open_stream(location: str) -> Iterator[BinaryIO]:
    """A file or S3 object as a stream read front to back, for a reader that may stop early (a tar member)."""
    if is_s3(location):
        bucket, key = split_s3(location)
        try:
            body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        except _botocore_errors() as error:
            raise _s3_failure(location, error) from error
        try:
            yield body
        except _botocore_errors() as error:
            raise _s3_failure(location, error) from error
        finally:
            body.close()
        return
    try:
        with open(location, "rb") as stream:
            yield stream
    except FileNotFoundError:
        raise StorageError(f"{location}: no such file") from None


def read_text(location: str) -> str:
    """A UTF-8 text file or object (manifests, discard lists)."""
    data = read_bytes(location)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StorageError(f"{location}: not UTF-8 text (byte {error.start})") from None


def exists(location: str) -> bool:
    """Whether a file or S3 object is there (a missing bucket counts as missing)."""
    if is_s3(location):
        bucket, key = split_s3(location)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
        except _botocore_errors() as error:
            response = getattr(error, "response", None)
            code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                return False
            raise _s3_failure(location, error) from error
        return True
    return os.path.isfile(location)


@functools.lru_cache(maxsize=1)
def _file_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give: 0o666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _replace_locally(location: str, fill: Callable[[str], object]) -> None:
    """Write a local file whole: ``fill`` writes a temporary file beside it, which then replaces ``location``.

    mkstemp creates its file private (0600); the result gets the usual mode instead, since others read what we write
    (a Greengrass component's user, a colleague on a shared machine).
    """
    directory = os.path.dirname(os.path.abspath(location))
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{os.path.basename(location)}.", suffix=".tmp", dir=directory)
        os.close(handle)
        try:
            fill(temp)
            os.chmod(temp, _file_mode())
            os.replace(temp, location)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
    except OSError as error:
        raise StorageError(f"{location}: cannot write: {error.strerror or error}") from None


def write_bytes(location: str, data: bytes) -> None:
    """Write a whole file so that readers see either the old content or the new one, never a part."""
    if is_s3(location):
        bucket, key = split_s3(location)
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        except _botocore_errors() as error:
            raise _s3_failure(location, error) from error
        return
    _replace_locally(location, lambda temp: Path(temp).write_bytes(data))


def write_text(location: str, text: str) -> None:
    """:func:`write_bytes` for UTF-8 text."""
    write_bytes(location, text.encode("utf-8"))


def put_file(local_path: str | os.PathLike[str], location: str) -> None:
    """Copy a finished local file to its destination (rename-into-place locally, upload on S3)."""
    source = os.fspath(local_path)
    if is_s3(location):
        bucket, key = split_s3(location)
        from boto3.exceptions import S3UploadFailedError

        failures: tuple[type[Exception], ...] = (*_botocore_errors(), S3UploadFailedError)
        try:
            s3_client().upload_file(source, bucket, key)
        except failures as error:
            raise _s3_failure(location, error) from error
        return
    _replace_locally(location, lambda temp: shutil.copyfile(source, temp))


def list_files(location: str, suffix: str = "") -> list[str]:
    """The files directly inside a directory or S3 prefix whose names end with ``suffix``, sorted."""
    if is_s3(location):
        bucket, key = split_s3(location)
        prefix = key if not key or key.endswith("/") else key + "/"
        found: list[str] = []
        try:
            paginator = s3_client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("Contents", []):
                    if item["Key"].endswith(suffix) and item["Key"] != prefix:
                        found.append(f"{S3_SCHEME}{bucket}/{item['Key']}")
        except _botocore_errors() as error:
            raise _s3_failure(location, error) from error
        return sorted(found)
    if not os.path.isdir(location):
        raise StorageError(f"{location}: no such directory")
    return sorted(
        os.path.join(location, name)
        for name in os.listdir(location)
        if name.endswith(suffix) and os.path.isfile(os.path.join(location, name))
    )


def is_dir_like(location: str) -> bool:
    """True for an existing local directory or an S3 URI that ends with ``/`` (a prefix, not an object)."""
    if is_s3(location):
        return location.endswith("/") or split_s3(location)[1] == ""
    return os.path.isdir(location)
