"""``check-config`` says ok only for what ``run`` could start with: a model folder that is a model, a video or
image folder that exists (cameras, stream URLs and pipelines are not paths). ``--schema-only`` checks the values
alone, for a config written for another machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_runtime.cli import main

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], tree: dict, *flags: str) -> tuple[int, str]:
    path = tmp_path / "device.json"
    path.write_text(json.dumps(tree))
    code = main(["check-config", str(path), *flags])
    return code, capsys.readouterr().err


def test_existing_paths_and_non_paths_are_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0")
    for uri in (str(video), str(tmp_path), "0", "rtsp://192.168.1.20/live", "gst:videotestsrc ! appsink"):
        code, err = check(tmp_path, capsys, {"model": {"path": str(DEMO)}, "source": {"uri": uri}})
        assert code == 0 and err.endswith(": ok\n"), (uri, err)


def test_a_missing_model_folder_and_video_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing_model, missing_video = str(tmp_path / "models" / "boxes"), str(tmp_path / "clip.mp4")
    code, err = check(tmp_path, capsys, {"model": {"path": missing_model}, "source": {"uri": missing_video}})
    assert code == 2 and err.count("\n") == 1, err
    assert err == (f"edge-runtime: error: model.path: {missing_model}: model folder not found (got {missing_model!r});"
                   f" source.uri: no such file or folder on this machine (got {missing_video!r})\n")
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    code, err = check(tmp_path, capsys, {"model": {"path": str(not_a_model)}})
    assert code == 2 and "model.path: " in err and "not a model folder" in err
    code, err = check(tmp_path, capsys, {"model": {"path": missing_model}, "source": {"uri": missing_video}},
                      "--schema-only")
    assert code == 0 and err.endswith(": ok\n")
