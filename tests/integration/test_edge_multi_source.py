"""Several sources in one daemon, one model shared: two video files and a Raspberry Pi camera (the stand-in
``rpicam-vid`` of tests/support/bin, a script that behaves like the real program at its command line and writes
real frames made from a video), its death mid-stream, and the bad inputs that must be one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import REPO, read_jsonl, start_daemon, wait_for, write_video  # type: ignore[import-not-found]

from edge_runtime.messages import validate_message

STANDIN_BIN = REPO / "tests" / "support" / "bin"
DEMO_MODEL = REPO / "models" / "demo"


def standin_env(video: Path, **levers: str) -> dict[str, str]:
    """PATH with the stand-in rpicam-vid first (and this Python, which its shebang finds as python3)."""
    path = os.pathsep.join([str(STANDIN_BIN), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {"PATH": path, "RPICAM_STANDIN_VIDEO": str(video), **levers}


def by_source(messages: list[dict[str, Any]]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = defaultdict(list)
    for message in messages:
        if message["schema"] == "edge-runtime/detection/1":
            seqs[message["source"]].append(message["seq"])
    return seqs


def stop_within(daemon: subprocess.Popen, seconds: float = 5.0) -> tuple[int, float]:
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    try:
        code = daemon.wait(timeout=15)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    return code, time.monotonic() - started


def test_two_files_and_a_pi_camera_share_the_demo_model(tmp_path: Path) -> None:
    first = write_video(tmp_path / "front.avi", frames=30)
    second = write_video(tmp_path / "back.avi", frames=30)
    out = tmp_path / "out.jsonl"
    daemon = start_daemon(
        "--model", str(DEMO_MODEL), "--source", str(first), "--source", str(second), "--source", "libcamera",
        "--loop", "--max-fps", "5", "--publish", "file", "--set", f"publish.file.path={json.dumps(str(out))}",
        "--status-interval", "0.5",
        env=standin_env(first),
    )  # fmt: skip
    try:
        wanted = {str(first), str(second), "libcamera"}
        enough = lambda: all(len(by_source(read_jsonl(out)).get(name, [])) >= 10 for name in wanted)  # noqa: E731
        assert wait_for(enough, timeout=60), daemon.stderr.read() if daemon.poll() is not None else by_source(
            read_jsonl(out))
    finally:
        code, elapsed = stop_within(daemon)
    assert code == 0 and elapsed < 5.0, (code, elapsed)
    messages = read_jsonl(out)
    for message in messages:
        validate_message(message)
    seqs = by_source(messages)
    assert set(seqs) == wanted  # every source's messages arrive and name their source
    for name, numbers in seqs.items():
        assert numbers == sorted(set(numbers)), name  # in order, none twice, per source
    final = messages[-1]
    assert final["state"] == "stopped"
    assert [entry["id"] for entry in final["sources"]] == [str(first), str(second), "libcamera"]
    assert all(entry["processed"] == len(seqs[entry["id"]]) for entry in final["sources"])


def test_a_camera_that_dies_mid_stream_is_degraded_then_reconnects(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", frames=30)
    out = tmp_path / "out.jsonl"
    env = standin_env(video, RPICAM_STANDIN_DIE_AFTER="8", RPICAM_STANDIN_DIE_ONCE=str(tmp_path / "died"))
    daemon = start_daemon(
        "--model", str(DEMO_MODEL), "--source", "libcamera:0", "--max-fps", "10", "--publish", "file",
        "--set", f"publish.file.path={json.dumps(str(out))}", "--status-interval", "0.2",
        "--set", "source.reconnect_initial_s=0.5", "--set", "source.reconnect_max_s=1",
        env=env,
    )  # fmt: skip
    try:
        after = lambda: len(by_source(read_jsonl(out)).get("libcamera:0", [])) >= 16  # noqa: E731
        assert wait_for(after, timeout=60), daemon.stderr.read() if daemon.poll() is not None else ""
    finally:
        code, elapsed = stop_within(daemon)
    assert code == 0 and elapsed < 5.0
    messages = read_jsonl(out)
    statuses = [m for m in messages if m["schema"] == "edge-runtime/status/1"]
    degraded = [s for s in statuses if s["state"] == "degraded"]
    assert degraded, [s["sources"][0]["state"] for s in statuses]
    assert any("libcamera:0" in problem["reason"] for problem in degraded[0]["problems"])
    assert statuses[-1]["sources"][0]["reconnects"] == 1
    # the gap: the last frame before the death to the first after it, within the backoff and a process start
    detections = [m for m in messages if m["schema"] == "edge-runtime/detection/1"]
    times = [time.mktime(time.strptime(m["captured_at"][:19], "%Y-%m-%dT%H:%M:%S")) for m in detections]
    assert max(b - a for a, b in zip(times, times[1:])) <= 6.0
    assert [m["seq"] for m in detections] == sorted({m["seq"] for m in detections})


def one_line_failure(daemon: subprocess.Popen) -> str:
    out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_bad_sources_are_one_line_and_exit_2(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", frames=5)
    env = standin_env(video)
    model = ("--model", str(DEMO_MODEL))
    line = one_line_failure(start_daemon(*model, "--source", str(video), "--set", "source.kind=webcam", env=env))
    assert "source.kind: unknown source kind" in line and "webcam" in line
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"sources": [{"id": "door", "uri": str(video)}, {"id": "door", "uri": "libcamera"}]}))
    line = one_line_failure(start_daemon(*model, "--config", str(config), env=env))
    assert "sources.1.id: duplicate source id" in line and "'door'" in line
    line = one_line_failure(start_daemon(*model, "--source", "libcamera:3", env=env))
    assert "libcamera:3: no such camera" in line and "0 (imx708)" in line
    bare = {"PATH": str(Path(sys.executable).parent), "RPICAM_STANDIN_VIDEO": str(video)}
    line = one_line_failure(start_daemon(*model, "--source", "libcamera", env=bare))
    assert "rpicam-vid not found" in line and "source.uri: libcamera" in line
    line = one_line_failure(start_daemon(*model, "--source", "7", env=env))  # no /dev/video7 here
    assert "camera 7: /dev/video7 does not exist" in line
    line = one_line_failure(start_daemon(*model, "--source", str(video), "--source", "libcamera:1", env=env))
    assert "libcamera:1: no such camera" in line


def test_rpicam_source_reads_both_codecs_and_bounds_every_read(tmp_path: Path, monkeypatch: Any) -> None:
    """The adapter against the stand-in process: I420 and JPEG frames of the asked size; a child that stalls is a
    SourceError at the deadline, one that dies names its exit code; ``auto`` finds the first listed camera."""
    from edge_runtime.errors import SourceError
    from edge_runtime.sources.libcamera import RpicamSource, first_camera_uri

    video = write_video(tmp_path / "v.avi", frames=10)
    for name, value in standin_env(video, RPICAM_STANDIN_STALL_AFTER="3").items():
        monkeypatch.setenv(name, value)
    assert first_camera_uri() == "libcamera:0"
    program = str(STANDIN_BIN / "rpicam-vid")
    for codec in ("yuv420", "mjpeg"):
        source = RpicamSource(0, 320, 240, 30.0, codec, read_timeout_s=1.5, program=program)
        source.open()
        try:
            shapes = [source.read().shape for _ in range(3)]  # type: ignore[union-attr]
            assert shapes == [(240, 320, 3)] * 3
            started = time.monotonic()
            with pytest.raises(SourceError, match=r"libcamera:0: no frame from .*rpicam-vid within 1.5 s"):
                source.read()
            assert time.monotonic() - started < 3.0
        finally:
            source.close()
    monkeypatch.delenv("RPICAM_STANDIN_STALL_AFTER")
    monkeypatch.setenv("RPICAM_STANDIN_DIE_AFTER", "2")
    source = RpicamSource(0, 320, 240, 30.0, "yuv420", read_timeout_s=5.0, program=program)
    source.open()
    try:
        source.read()
        source.read()
        with pytest.raises(SourceError, match=r"rpicam-vid ended \(exit code 1\): ERROR: .* camera frontend has timed"):
            source.read()
    finally:
        source.close()
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert first_camera_uri() == "0"
