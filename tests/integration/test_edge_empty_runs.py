"""A run that publishes nothing leaves no output file (issue 21: a folder of unreadable images left an empty
detections.jsonl, which looks like a run that found nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from edge_helpers import start_daemon  # type: ignore[import-not-found]


def test_a_folder_of_unreadable_images_leaves_no_empty_file(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.jpg", "b.png"):
        (images / name).write_text("not an image")
    out = tmp_path / "out" / "detections.jsonl"
    daemon = start_daemon("--model", "models/demo", "--source", str(images), "--publish", "file",
                          "--set", f"publish.file.path={json.dumps(str(out))}", "--status-interval", "0",
                          "--set", f"state_dir={json.dumps(str(tmp_path / 'state'))}")  # fmt: skip
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 2, err
    assert "none of its 2 image file(s) could be read" in err.strip().splitlines()[-1]
    assert not out.exists()
