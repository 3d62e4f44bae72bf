"""The daemon as a process: a file drains and exits 0, SIGTERM exits 0 in time with nothing lost, fatal errors
are one line with a non-zero exit."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from edge_helpers import read_jsonl, start_daemon, wait_for  # type: ignore[import-not-found]

from edge_runtime.messages import validate_message


def test_file_source_drains_and_exits_zero_with_one_message_per_frame(model_dir: Path, video: Path) -> None:
    daemon = start_daemon("--model", str(model_dir), "--source", str(video))
    out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    detections = [m for m in messages if m["schema"] == "edge-runtime/detection/1"]
    assert [m["seq"] for m in detections] == list(range(1, 21))
    assert messages[-1]["state"] == "stopped" and messages[-1]["frames"]["processed"] == 20
    for message in messages:
        validate_message(message)
    assert "running: model test-model" in err  # logs on stderr, messages alone on stdout


def test_sigterm_exits_zero_within_5s_and_loses_nothing(model_dir: Path, video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    daemon = start_daemon(
        "--model",
        str(model_dir),
        "--source",
        str(video),
        "--loop",
        "--max-fps",
        "30",
        "--publish",
        "file",
        "--set",
        f"publish.file.path={json.dumps(str(out))}",
        "--status-interval",
        "0.5",
    )
    try:
        assert wait_for(lambda: len(read_jsonl(out)) >= 30, timeout=30), daemon.stderr
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert code == 0
    assert elapsed < 5.0
    messages = read_jsonl(out)
    detections = [m for m in messages if m["schema"].startswith("edge-runtime/detection")]
    final = messages[-1]
    assert final["schema"] == "edge-runtime/status/1" and final["state"] == "stopped"
    # every processed frame was published, none twice, in capture order
    assert final["frames"]["processed"] == len(detections)
    seqs = [m["seq"] for m in detections]
    assert seqs == sorted(set(seqs))
    for message in messages:
        validate_message(message)


def one_line_failure(daemon: subprocess.Popen) -> str:
    out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_digest_mismatch_exits_with_one_line(model_dir: Path, video: Path, tmp_path: Path) -> None:
    broken = tmp_path / "m"
    broken.mkdir()
    for item in model_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    symbol = broken / "deploy_model_algo_1-symbol.json"
    data = bytearray(symbol.read_bytes())
    data[-2] = ord(" ") if data[-2] != ord(" ") else ord("\t")  # same size, different bytes
    symbol.write_bytes(bytes(data))
    line = one_line_failure(start_daemon("--model", str(broken), "--source", str(video)))
    assert (
        line.startswith("edge-runtime: error: ") and "deploy_model_algo_1-symbol.json: SHA-256 digest mismatch" in line
    )


def test_missing_model_file_exits_with_one_line(model_dir: Path, video: Path, tmp_path: Path) -> None:
    broken = tmp_path / "m"
    broken.mkdir()
    for name in ("model.json", "deploy_model_algo_1-symbol.json"):
        (broken / name).write_bytes((model_dir / name).read_bytes())
    line = one_line_failure(start_daemon("--model", str(broken), "--source", str(video)))
    assert "deploy_model_algo_1-0000.params: model file missing" in line


def test_bad_config_exits_with_one_line(model_dir: Path, video: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"source": {"max_fps": 0}, "publish": {"mqtt": {"prot": 1}}}))
    line = one_line_failure(start_daemon("--config", str(config), "--model", str(model_dir), "--source", str(video)))
    assert "source.max_fps: Input should be greater than 0 (got 0)" in line
    assert "publish.mqtt.prot: unknown key (got 1)" in line


def test_missing_video_file_exits_with_one_line(model_dir: Path, tmp_path: Path) -> None:
    line = one_line_failure(start_daemon("--model", str(model_dir), "--source", str(tmp_path / "none.mp4")))
    assert "none.mp4: video file not found" in line


def test_aws_sample_model_exits_with_the_mismatch(video: Path) -> None:
    line = one_line_failure(start_daemon("--model", "/work/shared/fixtures/aws-sample/model", "--source", str(video)))
    assert "the graph has 2 classes but hyperparams.json says num_classes 4" in line
