"""The file publisher checks its path at start but makes the file with the first message (issue 21: a folder of
unreadable images left an empty detections.jsonl behind)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_runtime.errors import PublishError
from edge_runtime.publishers.base import JsonlFilePublisher


def test_no_message_no_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "detections.jsonl"
    publisher = JsonlFilePublisher(path, max_bytes=1024, backups=1)
    publisher.close(1.0)
    assert not path.exists() and not path.parent.exists()
    publisher = JsonlFilePublisher(path, max_bytes=1024, backups=1)
    publisher.publish("status", {"state": "stopped"})
    publisher.close(1.0)
    assert path.read_text() == '{"state":"stopped"}\n'


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_folder_is_refused_at_start(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(PublishError, match="permission denied"):
        JsonlFilePublisher(locked / "detections.jsonl", max_bytes=1024, backups=1)


def test_a_path_under_a_file_or_a_folder_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("x")
    with pytest.raises(PublishError, match="is a file, not a folder"):
        JsonlFilePublisher(tmp_path / "notes" / "detections.jsonl", max_bytes=1024, backups=1)
    with pytest.raises(PublishError, match="it is a folder"):
        JsonlFilePublisher(tmp_path, max_bytes=1024, backups=1)
