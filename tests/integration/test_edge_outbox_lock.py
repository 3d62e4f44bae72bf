"""One daemon per outbox (issue 21), with two real daemon processes on one state folder.

Measured before: two daemons on the same ``state_dir`` both sent the same outbox rows (23-184 duplicates each), the
status showed an outbox depth of -753 and 82 messages never arrived. Now the second one is refused at start (one
line naming the folder, exit 2) while the first runs on; two things on one folder get one outbox each; and a
SIGKILLed holder leaves no stale lock.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from edge_helpers import build_deploy_model, free_port, read_jsonl, start_daemon, wait_for  # type: ignore[import-not-found]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build_deploy_model(tmp_path_factory.mktemp("model") / "m", onnx=True))


def mqtt_daemon(model: Path, video: Path, state: Path, thing: str, out: Path) -> subprocess.Popen:
    """A daemon publishing to a broker that is not there (its messages wait in the outbox) and to a file."""
    return start_daemon(
        "--model", str(model), "--backend", "onnxruntime", "--source", str(video), "--loop", "--max-fps", "10",
        "--publish", "mqtt", "--publish", "file", "--set", f"publish.file.path={json.dumps(str(out))}",
        "--mqtt-host", "127.0.0.1", "--mqtt-port", str(free_port()), "--thing-name", thing,
        "--status-interval", "0.5", "--set", f"state_dir={json.dumps(str(state))}",
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def test_a_second_daemon_on_one_outbox_is_refused(onnx_model: Path, video: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = mqtt_daemon(onnx_model, video, state, "cam-1", tmp_path / "first.jsonl")
    try:
        assert wait_for(lambda: len(read_jsonl(tmp_path / "first.jsonl")) >= 3 or first.poll() is not None, 60)
        assert first.poll() is None, first.communicate()[1]
        second = mqtt_daemon(onnx_model, video, state, "cam-1", tmp_path / "second.jsonl")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert str(state) in lines[0] and "in use by another edge-runtime daemon" in lines[0]
        assert f"pid {first.pid}" in lines[0]
        assert not (tmp_path / "second.jsonl").exists() or read_jsonl(tmp_path / "second.jsonl") == []

        other = mqtt_daemon(onnx_model, video, state, "cam-2", tmp_path / "other.jsonl")  # another thing: its own
        try:
            assert wait_for(lambda: len(read_jsonl(tmp_path / "other.jsonl")) >= 3 or other.poll() is not None, 60)
            assert other.poll() is None, other.communicate()[1]
        finally:
            other.send_signal(signal.SIGTERM)
            assert other.wait(10) == 0
        assert {p.name for p in state.glob("*.sqlite3")} == {"outbox-mqtt-cam-1.sqlite3", "outbox-mqtt-cam-2.sqlite3"}

        first.send_signal(signal.SIGKILL)  # dies holding the lock: the kernel drops it
        first.wait(10)
        again = mqtt_daemon(onnx_model, video, state, "cam-1", tmp_path / "again.jsonl")
        try:
            assert wait_for(lambda: len(read_jsonl(tmp_path / "again.jsonl")) >= 3 or again.poll() is not None, 60)
            assert again.poll() is None, again.communicate()[1]
        finally:
            again.send_signal(signal.SIGTERM)
            assert again.wait(10) == 0
    finally:
        if first.poll() is None:
            first.kill()


def test_an_outbox_of_an_earlier_version_is_taken_over(onnx_model: Path, video: Path, tmp_path: Path) -> None:
    """``outbox-mqtt.sqlite3`` (no thing name) becomes this thing's, its messages kept."""
    from edge_runtime.publishers.outbox import Outbox

    state = tmp_path / "state"
    legacy = Outbox(state / "outbox-mqtt.sqlite3", 100, 10**6)
    legacy.put("edge/cam-1/detections", b'{"seq": -1}')
    legacy.close()
    daemon = mqtt_daemon(onnx_model, video, state, "cam-1", tmp_path / "out.jsonl")
    try:
        assert wait_for(lambda: len(read_jsonl(tmp_path / "out.jsonl")) >= 2 or daemon.poll() is not None, 60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=10)
    assert daemon.returncode == 0, err
    assert not (state / "outbox-mqtt.sqlite3").exists()
    kept = Outbox(state / "outbox-mqtt-cam-1.sqlite3", 100_000, 10**8)
    try:
        assert kept.peek(1)[0].payload == b'{"seq": -1}'
    finally:
        kept.close()
