"""No silent failure when the nucleus would refuse, or refuses, the component's publishes (real IPC client).

The test nucleus enforces the component's accessControl as the nucleus does (``enforce_access``), and expands
``{iot:thingName}`` only when told (the nucleus' ``interpolateComponentConfiguration``, off by default).
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edge_runtime.cli import main
from tests.support.environ import SUITE_SETTINGS
from tests.support.gg_ipc_server import GreengrassIpcServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_helpers import build_deploy_model  # type: ignore[import-not-found]

COMPONENT = "ssd.ObjectDetector"
TOKEN = "svcuid-test-token"
THING = "cam-9"
INTERPOLATED = ["ml/object-detection/{iot:thingName}", "ml/object-detection/{iot:thingName}/status"]


def configuration(video: Path, resources: list[str]) -> dict[str, Any]:
    return {
        "source": {"uri": str(video), "max_fps": 20.0},
        "model": {"score_threshold": 0.0},
        "status": {"interval_s": 0.0},
        "publish": {"targets": ["greengrass"]},
        "accessControl": {
            "aws.greengrass.ipc.mqttproxy": {
                f"{COMPONENT}:mqttproxy:1": {"operations": ["aws.greengrass#PublishToIoTCore"], "resources": resources}
            }
        },
    }


@pytest.fixture
def short_dir():
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gg-", dir="/tmp") as folder:
        yield Path(folder)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    import cv2
    import numpy as np

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (96, 96))
    for index in range(40):
        writer.write(np.full((96, 96, 3), (40 + index, 117, 124), dtype=np.uint8))
    writer.release()
    return path


def run_component(server: GreengrassIpcServer, model: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, float]:
    for name in list(os.environ):
        if name.startswith("EDGE_RUNTIME_") and name not in SUITE_SETTINGS:
            monkeypatch.delenv(name)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_IOT_THING_NAME", THING)
    started = time.monotonic()
    code = main(["run", "--model", str(model)])
    return code, time.monotonic() - started


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("edge-runtime: error")]
    assert len(lines) == 1, lines
    return lines[0]


def test_uninterpolated_access_control_fails_at_start_naming_the_setting(
    short_dir: Path, tmp_path: Path, video: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The measured failure: nucleus defaults, a recipe resource with {iot:thingName}: 71 of 71 refused, RUNNING."""
    model = build_deploy_model(tmp_path / "model")
    config = configuration(video, INTERPOLATED)
    with GreengrassIpcServer(short_dir / "ipc.sock", TOKEN, config, COMPONENT, enforce_access=True) as server:
        code, seconds = run_component(server, model, monkeypatch)
    assert code == 2 and seconds < 10
    line = one_error_line(capsys)
    assert "interpolateComponentConfiguration: true" in line and f"ml/object-detection/{THING}" in line
    assert [r.payload["state"] for r in server.of("UpdateState")] == ["ERRORED"]
    assert server.of("PublishToIoTCore") == []  # refused before the first frame, not after 71 of them


def test_the_same_recipe_runs_when_the_nucleus_interpolates(
    short_dir: Path, tmp_path: Path, video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_deploy_model(tmp_path / "model")
    config = configuration(video, INTERPOLATED)
    with GreengrassIpcServer(short_dir / "ipc.sock", TOKEN, config, COMPONENT, enforce_access=True,
                             interpolate_thing_name=THING) as server:  # fmt: skip
        code, _ = run_component(server, model, monkeypatch)
    assert code == 0
    assert len(server.of("PublishToIoTCore")) == 40
    assert [r.payload["state"] for r in server.of("UpdateState")] == ["RUNNING"]


def test_wildcard_access_control_needs_no_interpolation(
    short_dir: Path, tmp_path: Path, video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_deploy_model(tmp_path / "model")
    config = configuration(video, ["ml/object-detection/+", "ml/object-detection/+/status"])
    with GreengrassIpcServer(short_dir / "ipc.sock", TOKEN, config, COMPONENT, enforce_access=True) as server:
        code, _ = run_component(server, model, monkeypatch)
    assert code == 0 and len(server.of("PublishToIoTCore")) == 40


def test_a_publish_refused_while_running_stops_with_one_line_and_errored(
    short_dir: Path, tmp_path: Path, video: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A deployment narrows the policy under the running component: the next publish is refused; the daemon says
    so once, reports ERRORED and exits 2, instead of logging every 100th refusal while RUNNING."""
    model = build_deploy_model(tmp_path / "model")
    config = configuration(video, ["ml/object-detection/+"])
    config["source"]["max_fps"] = 5.0
    with GreengrassIpcServer(short_dir / "ipc.sock", TOKEN, config, COMPONENT, enforce_access=True) as server:
        import threading

        def narrow() -> None:
            deadline = time.monotonic() + 30
            while len(server.of("PublishToIoTCore")) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            with server._lock:  # the nucleus' policy changes; the component is not told (no configuration event)
                narrowed = copy.deepcopy(server.configuration)
                policy = narrowed["accessControl"]["aws.greengrass.ipc.mqttproxy"][f"{COMPONENT}:mqttproxy:1"]
                policy["resources"] = ["ml/object-detection/other-thing"]
                server.configuration = narrowed

        thread = threading.Thread(target=narrow, daemon=True)
        thread.start()
        code, seconds = run_component(server, model, monkeypatch)
        thread.join(5)
    assert code == 2 and seconds < 20
    line = one_error_line(capsys)
    said = [r for r in caplog.records if "not authorized" in r.getMessage()]
    assert said == [], [r.getMessage() for r in said]  # the exit line is the one place it is said
    assert "PublishToIoTCore on ml/object-detection/cam-9 was refused, not authorized" in line
    assert "aws.greengrass.ipc.mqttproxy" in line
    assert [r.payload["state"] for r in server.of("UpdateState")] == ["RUNNING", "ERRORED"]
    published = server.of("PublishToIoTCore")
    assert 3 <= len(published) < 40  # it stopped at the first refusal, not at the end of the clip
