"""Raspberry Pi camera modules (CSI, driven by libcamera): frames from ``rpicam-vid``, or picamera2 in-process.

On Raspberry Pi OS 12/13 a camera module is not a V4L2 capture device OpenCV can read (``/dev/video0`` opens and
gives nothing), so ``libcamera`` / ``libcamera:N`` run rpicam-apps' ``rpicam-vid`` (on every Pi OS) as a child
process writing raw frames to stdout::

    rpicam-vid --camera N --width W --height H --framerate F --codec yuv420 --timeout 0 --nopreview \
        --verbose 0 --output -

``yuv420`` frames are I420 planes of exactly W*H*3/2 bytes (W a multiple of 64 keeps rpicam-vid from padding rows,
so the width is rounded up to one); ``mjpeg`` frames are whole JPEGs, cut at their end-of-image marker. Every read
has the stall deadline: a child that stops writing is killed and the capture loop restarts it with its backoff,
like a stream that dropped. ``rpicam-vid --list-cameras`` is asked once at start: an index that is not listed,
or no rpicam-vid at all (without picamera2 either), is a one-line error naming the camera, never a retry loop.

picamera2 (``python3-picamera2``; the component's venv sees it when created with --system-site-packages) is used
when rpicam-vid is not on PATH and it imports.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_runtime.errors import SourceError
from edge_runtime.sources.base import FrameSource

log = logging.getLogger(__name__)

PROGRAM = "rpicam-vid"
LIST_TIMEOUT_S = 10.0
DEFAULT_SIZE = (640, 480)
DEFAULT_FRAMERATE = 30.0
KILL_WAIT_S = 1.0
START_GRACE_S = 5.0  # the first frame after a start may take this long even with a shorter stall timeout (sensor start)
_CAMERA_LINE = re.compile(r"^\s*(\d+)\s*:\s*(\S+)\s*\[(\d+)x(\d+)")


@dataclass(frozen=True)
class Camera:
    """One line of ``rpicam-vid --list-cameras``: ``0 : imx708 [4608x2592 10-bit RGGB] (/base/soc/...)``."""

    index: int
    sensor: str
    width: int
    height: int


def parse_camera_list(text: str) -> list[Camera]:
    """The cameras in ``--list-cameras`` output (the mode lines below each camera are skipped)."""
    cameras = []
    for line in text.splitlines():
        match = _CAMERA_LINE.match(line)
        if match:
            index, sensor, width, height = match.groups()
            cameras.append(Camera(int(index), sensor, int(width), int(height)))
    return cameras


def list_cameras(program: str | None = None, timeout_s: float = LIST_TIMEOUT_S) -> list[Camera]:
    """The cameras libcamera sees, by ``rpicam-vid --list-cameras``; SourceError when it cannot be run."""
    path = program or shutil.which(PROGRAM)
    if path is None:
        raise SourceError(f"{PROGRAM} not found on PATH (install rpicam-apps: sudo apt install rpicam-apps)")
    try:
        done = subprocess.run([path, "--list-cameras"], capture_output=True, text=True, timeout=timeout_s,
                              check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise SourceError(f"{PROGRAM} --list-cameras: no answer within {timeout_s:g} s") from None
    except OSError as error:
        raise SourceError(f"{PROGRAM} --list-cameras: cannot run ({error})") from None
    return parse_camera_list(done.stdout + "\n" + done.stderr)


def first_camera_uri() -> str:
    """``source.uri auto``: the first libcamera camera when rpicam-vid lists one, else camera 0 (/dev/video0)."""
    with contextlib.suppress(SourceError):
        cameras = list_cameras()
        if cameras:
            return f"libcamera:{cameras[0].index}"
    return "0"


def camera_index(uri: str, key: str) -> int:
    _, _, text = uri.partition(":")
    if not text:
        return 0
    if not text.isdigit():
        raise SourceError(f"{key}.uri: libcamera or libcamera:N with N a camera index (got {uri!r})")
    return int(text)


class RpicamSource(FrameSource):
    """Frames from an ``rpicam-vid`` child process; ``live``: restarted by the capture loop when it dies."""

    live = True

    def __init__(self, index: int, width: int, height: int, framerate: float, codec: str, read_timeout_s: float,
                 program: str = PROGRAM) -> None:  # fmt: skip
        self.index = index
        self.width = -(-width // 64) * 64 if codec == "yuv420" else width  # no row padding in yuv420 output
        self.height = height
        self.framerate = framerate
        self.codec = codec
        self.read_timeout_s = read_timeout_s
        self.program = program
        self.name = f"libcamera:{index}"
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = bytearray()
        self._started = False  # a frame was asked for since the child started
        self._stderr: Any = None

    def check(self) -> None:
        cameras = list_cameras(self.program if os.sep in self.program else None)
        if not any(camera.index == self.index for camera in cameras):
            listed = ", ".join(f"{c.index} ({c.sensor})" for c in cameras) or "none"
            raise SourceError(f"{self.name}: no such camera ({PROGRAM} --list-cameras lists: {listed})")

    def command(self) -> list[str]:
        return [
            self.program, "--camera", str(self.index), "--width", str(self.width), "--height", str(self.height),
            "--framerate", f"{self.framerate:g}", "--codec", self.codec, "--timeout", "0", "--nopreview",
            "--verbose", "0", "--output", "-",
        ]  # fmt: skip

    def open(self) -> None:
        try:
            # what it says when it dies (quiet otherwise: --verbose 0); closed in close()
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
            self._process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=self._stderr)  # fmt: skip
        except OSError as error:
            raise SourceError(f"{self.name}: cannot start {self.program} ({error})") from None
        self._buffer = bytearray()
        self._started = False

    def read(self) -> np.ndarray | None:
        if self._process is None or self._process.stdout is None:
            raise SourceError(f"{self.name}: not open")
        limit = self.read_timeout_s if self._started else max(self.read_timeout_s, START_GRACE_S)
        self._started = True
        deadline = time.monotonic() + limit
        if self.codec == "yuv420":
            size = self.width * self.height * 3 // 2
            while len(self._buffer) < size:
                self._fill(deadline, limit)
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            import cv2

            planes = np.frombuffer(data, dtype=np.uint8).reshape(self.height * 3 // 2, self.width)
            return np.asarray(cv2.cvtColor(planes, cv2.COLOR_YUV2BGR_I420))
        return self._read_jpeg(deadline, limit)

    def _read_jpeg(self, deadline: float, limit: float) -> np.ndarray:
        import cv2

        while True:
            start = self._buffer.find(b"\xff\xd8")
            end = self._buffer.find(b"\xff\xd9", start + 2) if start >= 0 else -1
            if end >= 0:
                data = bytes(self._buffer[start : end + 2])
                del self._buffer[: end + 2]
                image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
                if image is None:
                    raise SourceError(f"{self.name}: {self.program} wrote a JPEG that does not decode")
                return np.asarray(image)
            self._fill(deadline, limit)

    def _fill(self, deadline: float, limit: float) -> None:
        """Read what the child has written, waiting at most until ``deadline``; SourceError if it ended or stalled."""
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        remaining = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(0.0, remaining))[0] if remaining > 0 else []
        if not ready:
            raise SourceError(f"{self.name}: no frame from {self.program} within {limit:g} s"
                              " (source.stall_timeout_s)")  # fmt: skip
        chunk = os.read(fd, 1 << 20)
        if not chunk:  # end of its output: it has ended or is ending; its exit code says how, give it a moment
            try:
                code: int | None = self._process.wait(KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                code = None
            said = self._last_words()
            raise SourceError(f"{self.name}: {self.program} ended (exit code {code}){': ' + said if said else ''}")
        self._buffer += chunk

    def _last_words(self) -> str:
        """The last line the child wrote on stderr (rpicam-vid's ERROR line), if any."""
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, self._stderr.tell() - 512))
            lines = [line.strip() for line in self._stderr.read().decode("utf-8", "replace").splitlines()]
        except OSError:
            return ""
        return next((line for line in reversed(lines) if line), "")

    def close(self) -> None:
        process, self._process = self._process, None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(KILL_WAIT_S)
        if process.stdout is not None:
            process.stdout.close()


class Picamera2Source(FrameSource):
    """A camera through picamera2 in this process (not verified on hardware here: no Pi camera on this machine)."""

    live = True

    def __init__(self, index: int, width: int, height: int) -> None:
        self.index = index
        self.size = (width, height)
        self.name = f"libcamera:{index}"
        self._camera: Any = None

    def check(self) -> None:
        from picamera2 import Picamera2  # type: ignore[import-not-found]

        cameras = Picamera2.global_camera_info()
        if self.index >= len(cameras):
            raise SourceError(f"{self.name}: no such camera (picamera2 lists {len(cameras)})")

    def open(self) -> None:
        from picamera2 import Picamera2

        try:
            camera = Picamera2(self.index)
            # RGB888 is stored B, G, R per pixel: what OpenCV calls BGR
            camera.configure(camera.create_video_configuration(main={"size": self.size, "format": "RGB888"}))
            camera.start()
        except Exception as error:  # picamera2 raises RuntimeError, IndexError... for a camera it cannot use
            raise SourceError(f"{self.name}: picamera2 cannot start the camera ({error})") from None
        self._camera = camera

    def read(self) -> np.ndarray | None:
        if self._camera is None:
            raise SourceError(f"{self.name}: not open")
        try:
            return np.asarray(self._camera.capture_array("main"))
        except Exception as error:
            raise SourceError(f"{self.name}: picamera2 capture failed ({error})") from None

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            with contextlib.suppress(Exception):
                camera.stop()
                camera.close()


def _picamera2_importable() -> bool:
    try:
        import picamera2  # noqa: F401
    except Exception:  # ImportError, or libcamera's own bindings failing to load
        return False
    return True


def make_libcamera_source(config: Any, key: str) -> FrameSource:
    """``libcamera`` / ``libcamera:N``: rpicam-vid when on PATH, else picamera2 when importable, else one line."""
    uri = str(config.uri)
    index = camera_index(uri, key)
    width = config.width or DEFAULT_SIZE[0]
    height = config.height or DEFAULT_SIZE[1]
    program = shutil.which(PROGRAM)
    if program is not None:
        framerate = config.max_fps or DEFAULT_FRAMERATE
        return RpicamSource(index, width, height, framerate, config.codec, float(config.stall_timeout_s), program)
    if _picamera2_importable():
        return Picamera2Source(index, width, height)
    raise SourceError(f"{key}.uri: {uri}: {PROGRAM} not found on PATH and picamera2 not importable (on Raspberry Pi"
                      " OS: sudo apt install rpicam-apps python3-picamera2)")  # fmt: skip
