"""A configuration change the pipeline cannot take live is applied by rebuilding it, in seconds (real IPC client)."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import pytest

from tests.integration.test_greengrass_refusals import COMPONENT, TOKEN, configuration, run_component
from tests.support.gg_ipc_server import GreengrassIpcServer


def clip(path: Path, frames: int, shade: int) -> Path:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (96, 96))
    for _ in range(frames):
        writer.write(np.full((96, 96, 3), (shade, 117, 124), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture
def short_dir():
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gg-", dir="/tmp") as folder:
        yield Path(folder)


def test_a_new_source_is_applied_by_rebuilding_the_pipeline(
    short_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.edge_helpers import build_deploy_model

    model = build_deploy_model(tmp_path / "model")
    first = clip(tmp_path / "first.avi", 20, 60)
    second = clip(tmp_path / "second.avi", 12, 160)
    config = configuration(first, ["ml/object-detection/+", "ml/object-detection/+/status"])
    config["source"].update(loop=True, max_fps=10.0)  # the first source never ends by itself
    with GreengrassIpcServer(short_dir / "ipc.sock", TOKEN, config, COMPONENT, enforce_access=True) as server:

        def sources() -> list[str]:
            return [json.loads(base64.b64decode(r.payload["payload"]))["source"] for r in server.of("PublishToIoTCore")]

        changed_at: list[float] = []

        def deploy_new_source() -> None:
            deadline = time.monotonic() + 30
            while len(sources()) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            changed_at.append(time.monotonic())  # the clock the test nucleus stamps requests with
            server.update_configuration(["source"], {"uri": str(second), "loop": False, "max_fps": 10.0})

        thread = threading.Thread(target=deploy_new_source, daemon=True)
        thread.start()
        code, _ = run_component(server, model, monkeypatch)
        thread.join(5)
    assert code == 0  # the second source is a file without loop: it ends, and the component with it
    seen = sources()
    switch = seen.index(str(second))
    assert set(seen[:switch]) == {str(first)} and seen[switch:] == [str(second)] * 12  # all of it, nothing else
    first_new = next(r.at for r in server.of("PublishToIoTCore") if str(second).encode() in base64.b64decode(
        r.payload["payload"]))  # fmt: skip
    print(f"configuration change to the first frame of the new source: {first_new - changed_at[0]:.2f} s")
    assert first_new - changed_at[0] < 5.0  # within seconds, not at some unrelated restart
    assert [r.payload["state"] for r in server.of("UpdateState")] == ["RUNNING"]  # once, across the rebuild
    assert len(server.of("SubscribeToConfigurationUpdate")) == 1
