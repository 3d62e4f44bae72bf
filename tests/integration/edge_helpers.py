"""Helpers for edge_runtime integration tests: the daemon as a subprocess, sample videos, free loopback ports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from edge_model_helpers import build_deploy_model  # type: ignore[import-not-found]

from tests.support.environ import child_environ
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
__all__ = ["build_deploy_model", "free_port", "read_jsonl", "start_daemon", "wait_for", "write_video"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_video(path: Path, frames: int = 20, size: tuple[int, int] = (160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, size)
    for index in range(frames):
        image = np.full((size[1], size[0], 3), (index * 12) % 256, dtype=np.uint8)
        cv2.rectangle(image, (20, 20), (80, 70), (255, 120, 0), -1)
        writer.write(image)
    writer.release()
    return path


def start_daemon(*args: str, env: dict[str, str] | None = None, stdout: Any = subprocess.PIPE) -> subprocess.Popen:
    environ = child_environ("EDGE_RUNTIME_")
    environ.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "edge_runtime", "run", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=environ,
    )


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    return wait_until(condition, timeout, interval)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file another process may be writing (a last line without its newline is
    still being written: it is read next time)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text[: text.rfind("\n") + 1].splitlines()
    return [json.loads(line) for line in lines if line.strip()]
