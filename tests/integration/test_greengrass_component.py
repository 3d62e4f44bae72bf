"""The component against a test nucleus: the real GreengrassCoreIPCClientV2 over a Unix socket.

``tests/support/gg_ipc_server.py`` speaks event-stream RPC as the nucleus does; nothing on the client side is
mocked. The first test runs the daemon in-process (``edge-runtime run`` with the nucleus environment set); the
second builds the component, unpacks its artifact and runs the recipe's Install and Run scripts as the nucleus
would, with the recipe variables substituted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from edge_runtime.cli import main
from tests.support.environ import SUITE_SETTINGS, child_environ
from tests.support.gg_ipc_server import GreengrassIpcServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_helpers import build_deploy_model, wait_for  # type: ignore[import-not-found]

REPO = Path(__file__).resolve().parents[2]
COMPONENT = "ssd.ObjectDetector"
TOKEN = "svcuid-test-token"
THING = "cam-7"
SCHEMA = json.loads((REPO / "edge_runtime" / "detection.schema.json").read_text())


def mean_colour_video(path: Path, frames: int) -> Path:
    """Frames of the training mean colour: the untrained test network's input is ~0 there, so its scores sit near
    1/(classes+1) instead of saturating at 1.0, and a threshold change visibly changes what is detected."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (96, 96))
    for _ in range(frames):
        writer.write(np.full((96, 96, 3), (104, 117, 124), dtype=np.uint8))  # BGR of the RGB mean
    writer.release()
    return path


def component_configuration(video: Path, frames_fps: float = 10.0) -> dict[str, Any]:
    """The recipe's DefaultConfiguration with this test's source and a threshold nothing passes."""
    recipe = json.loads((REPO / "recipes" / f"{COMPONENT}.json").read_text())
    config: dict[str, Any] = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    config["source"] = {"uri": str(video), "max_fps": frames_fps}
    assert config["publish"]["mode"] == "events"  # the component's default; these tests count messages per frame
    config["publish"]["mode"] = "frame"
    config["model"]["score_threshold"] = 0.9
    config["status"]["interval_s"] = 0.0
    config["publish"]["greengrass"]["local_topic"] = "local/detections/{thing_name}"
    config["accessControl"]["aws.greengrass.ipc.pubsub"] = {  # what a deployment setting local_topic merges too
        f"{COMPONENT}:pubsub:1": {"operations": ["aws.greengrass#PublishToTopic"], "resources": ["local/detections/#"]}
    }
    config["install"]["pip_options"] = "--no-index"
    return config


@pytest.fixture
def short_dir():
    """Unix socket paths are limited to ~107 bytes: pytest's tmp_path can be longer."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gg-", dir="/tmp") as folder:
        yield Path(folder)


def lower_threshold_after(server: GreengrassIpcServer, detections_seen: int) -> threading.Thread:
    """A deployment's configuration merge, mid-run: once ``detections_seen`` frames were published."""

    def update() -> None:
        if wait_for(lambda: len(iot_detections(server)) >= detections_seen, timeout=60):
            server.update_configuration(["model", "score_threshold"], 0.0)

    thread = threading.Thread(target=update, daemon=True)
    thread.start()
    return thread


def iot_detections(server: GreengrassIpcServer) -> list[tuple[float, dict[str, Any]]]:
    import base64

    return [
        (request.at, json.loads(base64.b64decode(request.payload["payload"])))
        for request in server.of("PublishToIoTCore")
        if request.payload["topicName"] == f"ml/object-detection/{THING}"
    ]


def check_run(server: GreengrassIpcServer, frames: int) -> None:
    """One valid message per frame, on exactly the component's topics, the threshold changed mid-run."""
    assert server.errors == []
    assert server.connects and all(connect["accepted"] for connect in server.connects)
    names = {request.name for request in server.requests}
    assert names == {"GetConfiguration", "SubscribeToConfigurationUpdate", "UpdateState", "PublishToIoTCore",
                     "PublishToTopic"}
    assert [r.payload["state"] for r in server.of("UpdateState")] == ["RUNNING"]
    assert len(server.of("GetConfiguration")) == 2  # at start, and after the update event
    published = iot_detections(server)
    assert [message["seq"] for _, message in published] == list(range(1, frames + 1))
    for _, message in published:
        jsonschema.validate(message, SCHEMA)
        assert message["device"] == THING
    assert all(r.payload["qos"] == "1" for r in server.of("PublishToIoTCore"))
    assert {r.payload["topicName"] for r in server.of("PublishToIoTCore")} == {f"ml/object-detection/{THING}"}
    local = server.of("PublishToTopic")
    assert len(local) == frames
    assert {r.payload["topic"] for r in local} == {f"local/detections/{THING}"}
    assert [r.payload["publishMessage"]["jsonMessage"]["message"]["seq"] for r in local] == list(range(1, frames + 1))
    update_at = server.of("GetConfiguration")[1].at
    before = [m for at, m in published if at < update_at]
    after = [m for at, m in published if at > update_at + 1.0]  # the frame in flight may use either threshold
    assert before and after
    assert all(not m["detections"] for m in before)
    assert all(m["detections"] for m in after)


def test_daemon_over_real_ipc_client(short_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    model = build_deploy_model(tmp_path / "model")
    frames = 30
    video = mean_colour_video(tmp_path / "clip.avi", frames=frames)
    config = component_configuration(video)
    with GreengrassIpcServer(short_dir / "ipc.sock", TOKEN, config, COMPONENT) as server:
        for name in list(os.environ):
            if name.startswith("EDGE_RUNTIME_") and name not in SUITE_SETTINGS:
                monkeypatch.delenv(name)
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_IOT_THING_NAME", THING)
        updater = lower_threshold_after(server, detections_seen=8)
        assert main(["run", "--model", str(model)]) == 0
        updater.join(5)
    assert capsys.readouterr().out == ""  # nothing on stdout: the target is greengrass only
    check_run(server, frames)


def test_bad_token_is_one_line_error(short_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    with GreengrassIpcServer(short_dir / "ipc.sock", TOKEN, {}, COMPONENT) as server:
        monkeypatch.setenv("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT", str(server.socket_path))
        monkeypatch.setenv("SVCUID", "wrong-token")
        assert main(["run", "--model", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("edge-runtime: error: greengrass: cannot connect to the nucleus IPC socket")
    assert "\n" not in error
    assert server.connects == [{"version": "0.1.0", "accepted": False}] and server.requests == []


def substitute(script: str, values: dict[str, str]) -> str:
    """Recipe variables as the nucleus interpolates them; any left over would reach the shell unreplaced."""
    for key, value in values.items():
        script = script.replace("{" + key + "}", value)
    assert not re.search(r"\{[a-zA-Z.]+:[^}]*\}", script), script
    return script


def dependencies_only_path(folder: Path) -> Path:
    """This interpreter's site-packages without this project or pip, as links in ``folder`` (see the test)."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    folder.mkdir()
    skip = re.compile(r"^(ssd_greengrass|__editable__|_ssd_greengrass|edge_runtime|cloud_training|pip|setuptools"
                      r"|_distutils_hack|distutils-precedence|wheel|mxnet)", re.IGNORECASE)  # no MXNet on a device
    for entry in site.iterdir():
        if not skip.match(entry.name) and not entry.name.endswith(".pth"):
            (folder / entry.name).symlink_to(entry)
    return folder


def test_recipe_install_twice_and_run(short_dir: Path, tmp_path: Path) -> None:
    """Install and Run from the built artifact, as the nucleus runs them (cwd: the work path).

    Install creates a real venv and pip-installs the artifact's wheel with the edge extra. Downloading ONNX Runtime
    and OpenCV from PyPI would take minutes, so ``PYTHONPATH`` points at links to this interpreter's installed
    dependencies (not this project: the daemon must come from the wheel) and the component configuration sets
    ``install.pip_options`` to ``--no-index``: pip finds every requirement satisfied and installs only the wheel.
    (``--system-site-packages``, the Jetson manifest's way, would see the base interpreter's packages, and this
    interpreter is itself a venv.) MXNet is left out of those links: the component must run on ONNX Runtime alone.
    """
    out = tmp_path / "greengrass-build"
    build = subprocess.run([sys.executable, str(REPO / "components" / "build.py"), "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    recipe = json.loads((out / "recipes" / f"{COMPONENT}.json").read_text())
    manifest = next(m for m in recipe["Manifests"] if m["Platform"] == {"os": "linux", "architecture": "amd64"})
    artifacts_root = tmp_path / "packages" / "artifacts-unarchived" / COMPONENT / "0.1.0"
    with zipfile.ZipFile(out / "artifacts" / COMPONENT / "0.1.0" / "ssd-object-detector.zip") as archive:
        archive.extractall(artifacts_root / "ssd-object-detector")
    work = tmp_path / "work" / COMPONENT
    work.mkdir(parents=True)
    model = build_deploy_model(tmp_path / "model-unarchived" / "model", onnx=True)
    frames = 30
    video = mean_colour_video(tmp_path / "clip.avi", frames=frames)
    config = component_configuration(video)
    values = {
        "artifacts:decompressedPath": str(artifacts_root),
        "work:path": str(work),
        "ssd.ObjectDetector.Model:artifacts:decompressedPath": str(model.parent),
        "configuration:/install/pip_options": config["install"]["pip_options"],
    }
    with GreengrassIpcServer(short_dir / "ipc.sock", TOKEN, config, COMPONENT) as server:
        env = child_environ("EDGE_RUNTIME_", "VIRTUAL_ENV")
        env.update(server.environment(), AWS_IOT_THING_NAME=THING, PYTHON=sys.executable,
                   PYTHONPATH=str(dependencies_only_path(tmp_path / "deps")))
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
        install = manifest["Lifecycle"]["Install"]
        install_env = {**env, **{k: substitute(v, values) for k, v in install["Setenv"].items()}}
        script = substitute(install["Script"], values)
        runs = [subprocess.run(["sh", "-c", script], cwd=work, env=install_env, capture_output=True, text=True,
                               timeout=install["Timeout"]) for _ in range(2)]
        assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
        assert "installed ssd_greengrass-0.1.0-py3-none-any.whl" in runs[0].stdout
        assert "already installed" in runs[1].stdout and "pip" not in runs[1].stdout + runs[1].stderr
        (venv,) = work.glob("venv-*")
        probe = [str(venv / "bin" / "python"), "-c", "import edge_runtime; print(edge_runtime.__file__)"]
        where = subprocess.run(probe, cwd=work, env=env, capture_output=True, text=True, timeout=60)
        assert where.stdout.startswith(str(venv)), where.stdout + where.stderr

        updater = lower_threshold_after(server, detections_seen=8)
        run = subprocess.run(["sh", "-c", substitute(manifest["Lifecycle"]["Run"]["Script"], values)], cwd=work,
                             env=env, capture_output=True, text=True, timeout=120)
        updater.join(5)
        assert run.returncode == 0, run.stderr[-2000:]
    check_run(server, frames)
