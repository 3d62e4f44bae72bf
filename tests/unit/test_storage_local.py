"""Local writes of cloud_training.storage: whole files, with the usual permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cloud_training import storage


def test_written_files_get_the_usual_mode_not_mkstemps_private_one(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        storage._file_mode.cache_clear()
        storage.write_text(str(tmp_path / "a" / "out.manifest"), "line\n")
        source = tmp_path / "src.bin"
        source.write_bytes(b"x")
        storage.put_file(source, str(tmp_path / "b" / "copy.bin"))
    finally:
        os.umask(umask)
        storage._file_mode.cache_clear()
    for path in (tmp_path / "a" / "out.manifest", tmp_path / "b" / "copy.bin"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert (tmp_path / "a" / "out.manifest").read_text() == "line\n"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["out.manifest"]  # no temp file left


def test_the_s3_client_takes_aws_max_attempts_as_readme_promises(monkeypatch) -> None:
    """storage's S3 client comes from the one client factory, so AWS_MAX_ATTEMPTS sets its attempts (it used to be
    pinned at 3 whatever the variable said); without the variable, standard mode's own default applies."""
    from cloud_training.aws import session

    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    storage._client.cache_clear()
    try:
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")
        retries = storage.s3_client().meta.config.retries
        assert (retries["mode"], retries["total_max_attempts"]) == ("standard", 7)
        assert session.client("sagemaker", "eu-west-1").meta.config.retries["total_max_attempts"] == 7
        storage._client.cache_clear()
        monkeypatch.delenv("AWS_MAX_ATTEMPTS")
        assert "total_max_attempts" not in storage.s3_client().meta.config.retries
        assert storage.s3_client().meta.endpoint_url == "http://127.0.0.1:9"
    finally:
        storage._client.cache_clear()
