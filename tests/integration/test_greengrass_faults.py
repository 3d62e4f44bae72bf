"""The nucleus goes away, freezes and comes back (issue 14): the component never stops delivering, nor crashes.

Measured before: a killed nucleus made ``publish_to_iot_core_async`` raise in the inference thread (exit 1, two
tracebacks, messages lost); a frozen one (SIGSTOP) cost 10 s per frame and SIGTERM took 10-12 s. Here the test
nucleus is a process of its own (``python -m tests.support.gg_ipc_server``), spoken to by the real awsiotsdk client
in the daemon, and it records every PublishToIoTCore it acknowledges. Every detection the daemon made (its JSON-lines
file, a second publisher) is delivered or still in the outbox; none is dropped; SIGTERM ends it within 5 s.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_runtime.publishers.outbox import Outbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_helpers import REPO, read_jsonl, start_daemon, wait_for  # type: ignore[import-not-found]

TOKEN = "svcuid-faults"
THING = "cam-faults"


class Nucleus:
    """The test IPC server as a process: killed, frozen and started again on the same socket and record file."""

    def __init__(self, folder: Path, configuration: dict[str, Any]) -> None:
        self.socket = folder / "ipc.sock"
        self.record = folder / "acknowledged.jsonl"
        self.config = folder / "configuration.json"
        self.config.write_text(json.dumps(configuration))
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.gg_ipc_server", str(self.socket), TOKEN, str(self.config),
             str(self.record)],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "listening"

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        if sig == signal.SIGKILL:
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)

    def environment(self) -> dict[str, str]:
        return {
            "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(self.socket),
            "SVCUID": TOKEN,
            "AWS_IOT_THING_NAME": THING,
        }

    def delivered(self) -> list[dict[str, Any]]:
        """The detection messages the nucleus acknowledged, in arrival order (status messages left out)."""
        if not self.record.exists():
            return []
        messages = []
        text = self.record.read_text()
        for line in text[: text.rfind("\n") + 1].splitlines():  # a line still being written is read next time
            request = json.loads(line)
            if request["topicName"] == f"ml/object-detection/{THING}":
                messages.append(json.loads(base64.b64decode(request["payload"])))
        return messages


@pytest.fixture
def folder() -> Iterator[Path]:
    """Unix socket paths are limited to ~107 bytes: pytest's tmp_path can be longer."""
    with tempfile.TemporaryDirectory(prefix="ggf-", dir="/tmp") as path:
        yield Path(path)


def configuration(video: Path, folder: Path) -> dict[str, Any]:
    return {
        "source": {"uri": str(video), "loop": True, "max_fps": 10.0},
        "model": {"score_threshold": 0.0},
        "status": {"interval_s": 1.0},
        "state_dir": str(folder / "work"),
        "publish": {
            "targets": ["greengrass", "file"],
            "file": {"path": str(folder / "made.jsonl")},
            "greengrass": {"timeout_s": 2.0},
        },
        "accessControl": {
            "aws.greengrass.ipc.mqttproxy": {
                "ssd.ObjectDetector:mqttproxy:1": {
                    "operations": ["aws.greengrass#PublishToIoTCore"],
                    "resources": ["ml/object-detection/+", "ml/object-detection/+/status"],
                }
            }
        },
    }


def start_component(nucleus: Nucleus, model: Path) -> subprocess.Popen[str]:
    return start_daemon("--model", str(model), env=nucleus.environment(), stdout=subprocess.DEVNULL)


def stop_component(daemon: subprocess.Popen[str]) -> tuple[int, float, str]:
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=20)
    return daemon.returncode, time.monotonic() - started, err


def account(folder: Path, nucleus: Nucleus) -> tuple[set[int], set[int], set[int], int]:
    """(made, delivered, still in the outbox, dropped) by detection seq, for this run's session."""
    made_messages = [m for m in read_jsonl(folder / "made.jsonl") if m["schema"] == "edge-runtime/detection/1"]
    session = made_messages[0]["session"]
    made = {m["seq"] for m in made_messages}
    delivered = {m["seq"] for m in nucleus.delivered() if m["session"] == session}
    outbox = Outbox(folder / "work" / f"outbox-greengrass-{THING}.sqlite3", 100_000, 50_000_000)
    try:
        left = {json.loads(item.payload)["seq"] for item in outbox.peek(100_000)}
        dropped = outbox.stats()["dropped"]
    finally:
        outbox.close()
    return made, delivered, left, dropped


def test_nucleus_killed_restarted_and_frozen(folder: Path, model_dir: Path, video: Path) -> None:
    nucleus = Nucleus(folder, configuration(video, folder))
    nucleus.start()
    daemon = start_component(nucleus, model_dir)
    try:
        assert wait_for(lambda: len(nucleus.delivered()) >= 10, timeout=30)
        nucleus.signal(signal.SIGKILL)  # the nucleus dies: detections keep being made, and stored
        made_before = len(read_jsonl(folder / "made.jsonl"))
        assert wait_for(lambda: len(read_jsonl(folder / "made.jsonl")) >= made_before + 15, timeout=10)
        assert daemon.poll() is None  # still running
        delivered_before = len(nucleus.delivered())
        nucleus.start()  # ... and comes back: the component connects again and delivers what it stored
        assert wait_for(lambda: len(nucleus.delivered()) >= delivered_before + 20, timeout=20)
        nucleus.signal(signal.SIGSTOP)  # frozen: nothing is answered
        time.sleep(3.0)
        nucleus.signal(signal.SIGCONT)
        delivered_before = len(nucleus.delivered())
        assert wait_for(lambda: len(nucleus.delivered()) >= delivered_before + 20, timeout=20)
    finally:
        code, seconds, err = stop_component(daemon)
        nucleus.stop()
    assert code == 0 and seconds < 5.0, (code, seconds, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    assert "lost the nucleus IPC connection" in err and "reconnected to the nucleus" in err
    made, delivered, left, dropped = account(folder, nucleus)
    assert dropped == 0 and len(made) >= 40  # at least what the waits above saw made and delivered
    assert made <= delivered | left, sorted(made - delivered - left)  # nothing lost
    assert len(delivered) >= len(made) - 40  # and most of it delivered after the faults


def test_sigterm_within_5s_while_the_nucleus_is_frozen(folder: Path, model_dir: Path, video: Path) -> None:
    nucleus = Nucleus(folder, configuration(video, folder))
    nucleus.start()
    daemon = start_component(nucleus, model_dir)
    try:
        assert wait_for(lambda: len(nucleus.delivered()) >= 5, timeout=30)
        nucleus.signal(signal.SIGSTOP)
        time.sleep(2.5)  # the component keeps detecting; every request waits unanswered
    finally:
        code, seconds, err = stop_component(daemon)
        nucleus.stop()
    assert code == 0 and seconds < 5.0, (code, seconds, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    made, delivered, left, dropped = account(folder, nucleus)
    assert dropped == 0 and made <= delivered | left, sorted(made - delivered - left)
    assert left  # what the frozen nucleus never answered is kept for the next run


def test_state_dir_defaults_outside_the_working_directory(folder: Path, model_dir: Path, video: Path) -> None:
    """No outbox appears in the directory the daemon was started from (here the repository)."""
    before = {path.name for path in REPO.iterdir()}
    env = {"XDG_STATE_HOME": str(folder / "state")}
    daemon = start_daemon("--model", str(model_dir), "--source", str(video), "--publish", "mqtt", "--mqtt-port", "1",
                          "--status-interval", "0", env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert (folder / "state" / "edge-runtime" / "outbox-mqtt-edge-device.sqlite3").is_file()
    assert {path.name for path in REPO.iterdir()} == before


def test_sigterm_within_5s_while_the_nucleus_is_frozen_at_start(folder: Path, model_dir: Path, video: Path) -> None:
    """Frozen before the component connects (issue 21): the IPC handshake and the configuration read would wait
    10 s each; SIGTERM ends start-up at once with one line and exit 0 (it was rc -15, no line)."""
    nucleus = Nucleus(folder, configuration(video, folder))
    nucleus.start()
    nucleus.signal(signal.SIGSTOP)
    daemon = start_component(nucleus, model_dir)
    try:
        assert wait_for(lambda: _takes_sigterm(daemon.pid) or daemon.poll() is not None, timeout=60)
        time.sleep(1.0)  # inside the connection attempt to the frozen nucleus
        assert daemon.poll() is None
    finally:
        code, seconds, err = stop_component(daemon)
        nucleus.stop()
    assert code == 0 and seconds < 5.0, (code, seconds, err[-3000:])
    assert "stopped during start-up" in err and "Traceback" not in err, err[-3000:]


def _takes_sigterm(pid: int) -> bool:
    """The process has its SIGTERM handler (``main`` has begun): ``SigCgt`` in /proc has bit 15."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))
