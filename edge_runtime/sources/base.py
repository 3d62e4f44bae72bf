"""The frame source seam: :class:`FrameSource` and its adapters (files, folders, cameras, streams, GStreamer).

A source only opens, reads one image and closes; reconnecting, pacing and stall handling live in
:mod:`edge_runtime.sources.capture`, once for every kind. ``read`` returns None at the end of a file and raises
:class:`SourceError` when a live source fails; every blocking read is bounded (socket or OpenCV read timeouts),
so a stalled stream becomes an error the capture loop can act on rather than a thread stuck forever.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import http.client
import logging
import os
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_runtime.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class FrameSource(abc.ABC):
    """One place frames come from. ``live`` sources are reconnected on failure; others end."""

    name: str
    live: bool

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> np.ndarray | None:
        """The next BGR image; None at the end (files); raises SourceError on failure (live)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def check(self) -> None:  # noqa: B027 - optional hook: most sources have nothing to check before opening
        """Raise SourceError for what no retry can fix (no such device node, no GStreamer in this OpenCV); called once
        at start, so the daemon exits 2 with one line instead of reconnecting forever."""

    def rewind(self) -> None:
        """Start again from the beginning (files, for ``--loop``)."""
        self.close()
        self.open()


class ImageFolderSource(FrameSource):
    """The images of a folder in name order; unreadable files are skipped with a warning."""

    live = False

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.name = str(folder)
        self._files: list[Path] = []
        self._next = 0
        self._read = 0  # images decoded since open

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: image folder not found")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        self._next = 0
        self._read = 0

    def read(self) -> np.ndarray | None:
        import cv2

        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                self._read += 1
                return image
            log.warning("%s: cannot read as an image, skipped", path)
        if self._files and self._read == 0:  # every file was skipped: that is not a folder of images, say so
            raise SourceError(f"{self.folder}: none of its {len(self._files)} image file(s) could be read")
        return None

    def close(self) -> None:
        self._next = len(self._files)


def camera_problem(index: int, dev: Path = Path("/dev"), access: Callable[[Path, int], bool] = os.access) -> str:
    """Why camera ``index`` did not open, as far as the device node tells: missing, or not ours to read.

    The usual case on a Greengrass device: the component runs as ``ggc_user``, and V4L2 nodes belong to the
    ``video`` group, so the camera works for the person who tried it by hand and not for the component.
    """
    node = dev / f"video{index}"
    if not node.exists():
        present = sorted(path.name for path in dev.glob("video*"))
        found = f"present: {', '.join(present)}" if present else "no /dev/video* at all: is the camera connected?"
        return f"camera {index}: {node} does not exist ({found})"
    if not access(node, os.R_OK | os.W_OK):
        user = _user_name()
        group = _group_name(node)
        return (
            f"camera {index}: permission denied on {node} (owned by group {group!r}): add the user running this"
            f" process ({user}) to that group, e.g. `sudo usermod -aG {group} {user}` (on a Greengrass device the"
            " user is ggc_user, the group video), then restart the nucleus"
        )
    return f"camera {index}: {node} exists and is readable, but OpenCV's V4L2 backend cannot open it (in use?)"


def _user_name() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def _group_name(path: Path) -> str:
    try:
        import grp

        return grp.getgrgid(path.stat().st_gid).gr_name
    except (ImportError, KeyError):
        return "video"


class OpenCVSource(FrameSource):
    """A ``cv2.VideoCapture``: video files, V4L2 cameras, RTSP/HTTP streams (FFmpeg) and GStreamer pipelines."""

    def __init__(self, target: str | int, kind: str, read_timeout_s: float, size: tuple[int, int] | None = None):
        self.target = target
        self.kind = kind
        self.live = kind != "file"
        self.name = str(target)
        self.read_timeout_s = read_timeout_s
        self.size = size
        self._capture: Any = None

    def check(self) -> None:
        if self.kind == "camera" and not Path(f"/dev/video{int(self.target)}").exists():
            raise SourceError(camera_problem(int(self.target)))
        if self.kind == "gstreamer":
            import cv2

            if "GStreamer:                   YES" not in cv2.getBuildInformation():
                raise SourceError(f"{self.name}: this OpenCV build has no GStreamer support (use the system OpenCV"
                                  " on Jetson, or an rtsp:// uri)")  # fmt: skip

    def open(self) -> None:
        # FFmpeg's own log lines ("moov atom not found") would come before ours, unasked: quiet unless the operator
        # sets OPENCV_FFMPEG_LOGLEVEL (read once, by OpenCV's first FFmpeg capture)
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        import cv2

        timeout_ms = int(self.read_timeout_s * 1000)
        if self.kind == "file":
            if not Path(str(self.target)).is_file():
                raise SourceError(f"{self.target}: video file not found")
            capture = cv2.VideoCapture(str(self.target))
        elif self.kind == "camera":
            capture = cv2.VideoCapture(int(self.target), cv2.CAP_V4L2)
            if self.size:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        elif self.kind == "gstreamer":
            if "GStreamer:                   YES" not in cv2.getBuildInformation():
                raise SourceError("this OpenCV build has no GStreamer support (use the system OpenCV on Jetson)")
            capture = cv2.VideoCapture(str(self.target), cv2.CAP_GSTREAMER)
        else:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
            capture = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            if self.kind == "camera":
                raise SourceError(camera_problem(int(self.target)))
            problem = " (not a video FFmpeg can read?)" if self.kind == "file" else ""
            raise SourceError(f"{self.name}: cannot open {self.kind} source{problem}")
        self._capture = capture

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise SourceError(f"{self.name}: not open")
        ok, image = self._capture.read()
        if ok and image is not None:
            return np.asarray(image)
        if self.live:
            raise SourceError(f"{self.name}: no frame (stream ended, stalled or failed)")
        return None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class MjpegHttpSource(FrameSource):
    """An HTTP ``multipart/x-mixed-replace`` JPEG stream (IP cameras, mjpg-streamer), read without FFmpeg.

    Each frame has a deadline of the stall timeout, not only each socket read: a server that sends a 200 KB frame a
    byte every 2 s never trips a per-read timeout, and capture would stall forever. A timer shuts the socket down at
    the deadline, which ends any blocked read, and the frame counts as a stall.
    """

    live = True

    def __init__(self, url: str, read_timeout_s: float) -> None:
        self.url = url
        self.name = url
        self.read_timeout_s = read_timeout_s
        self._response: Any = None
        self._boundary = b""
        self._late = threading.Event()  # the frame deadline passed and the socket was shut down

    def open(self) -> None:
        """Connect and read the response headers, all within the stall timeout: a server that drips its headers a
        byte at a time never trips a per-read timeout, so a timer shuts the socket down at the deadline."""
        parts = urllib.parse.urlsplit(self.url)
        kind = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
        try:
            connection = kind(parts.hostname or "", parts.port, timeout=self.read_timeout_s)
        except (ValueError, http.client.HTTPException) as error:
            raise SourceError(f"{self.url}: not a usable URL ({error})") from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {}
        if parts.username is not None:
            token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        self._late.clear()
        deadline = threading.Timer(self.read_timeout_s, self._open_past_deadline, args=(connection,))
        deadline.daemon = True
        deadline.start()
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            if self._late.is_set():
                raise SourceError(f"{self.url}: no response within {self.read_timeout_s:g} s"
                                  " (source.stall_timeout_s)") from None  # fmt: skip
            raise SourceError(f"{self.url}: cannot connect ({error or type(error).__name__})") from None
        finally:
            deadline.cancel()
        if self._late.is_set():  # the shutdown can end the header read as if the headers were complete
            connection.close()
            raise SourceError(f"{self.url}: no response within {self.read_timeout_s:g} s (source.stall_timeout_s)")
        if response.status != 200:
            connection.close()
            raise SourceError(f"{self.url}: HTTP {response.status} {response.reason}")
        content_type = response.headers.get("Content-Type", "")
        if "multipart/x-mixed-replace" not in content_type or "boundary=" not in content_type:
            response.close()
            raise SourceError(f"{self.url}: not an MJPEG stream (Content-Type {content_type!r})")
        boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"')
        self._boundary = b"--" + boundary.lstrip("-").encode("latin-1")
        self._response = response

    def read(self) -> np.ndarray | None:
        import cv2

        if self._response is None:
            raise SourceError(f"{self.url}: not open")
        self._late.clear()
        deadline = threading.Timer(self.read_timeout_s, self._past_deadline)
        deadline.daemon = True
        deadline.start()
        try:
            length = self._read_part_headers()
            data = self._response.read(length)
        except (OSError, socket.timeout, ValueError) as error:
            if self._late.is_set():
                raise SourceError(self._late_message()) from None
            raise SourceError(f"{self.url}: stream failed ({error or type(error).__name__})") from None
        finally:
            deadline.cancel()
        if self._late.is_set():
            raise SourceError(self._late_message())
        if len(data) != length:
            raise SourceError(f"{self.url}: stream ended mid-frame")
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{self.url}: a part is not a decodable JPEG")
        return np.asarray(image)

    def _late_message(self) -> str:
        return (f"{self.url}: no complete frame within {self.read_timeout_s:g} s (stalled, or sending too slowly:"
                " source.stall_timeout_s)")  # fmt: skip

    def _open_past_deadline(self, connection: http.client.HTTPConnection) -> None:
        """In the timer's thread: end a connect or header read that is past the deadline."""
        self._late.set()
        if connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)

    def _past_deadline(self) -> None:
        """In the timer's thread: end the blocked read by shutting the connection's socket down."""
        self._late.set()
        raw = getattr(getattr(self._response, "fp", None), "raw", None)
        sock = getattr(raw, "_sock", None)  # http.client's SocketIO; without it the per-read timeout still holds
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _read_part_headers(self) -> int:
        """Skip to the next boundary, read the part headers, return its Content-Length."""
        for _ in range(64):  # bounded: blank lines between parts
            line = self._response.readline(1024)
            if not line:
                raise OSError("connection closed")
            if line.strip().startswith(self._boundary.rstrip(b"-")) or line.strip() == self._boundary:
                break
        else:
            raise ValueError("no part boundary")
        length = -1
        for _ in range(32):
            line = self._response.readline(1024)
            if not line:
                raise OSError("connection closed")
            if not line.strip():
                break
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == "content-length":
                length = int(value.strip())
        if length < 0:
            raise ValueError("part without Content-Length")
        return length

    def close(self) -> None:
        if self._response is not None:
            with contextlib.suppress(OSError):
                self._response.close()
            self._response = None


class FakeSource(FrameSource):
    """Yields ``count`` generated frames (or forever), optionally failing on the reads listed in ``fail_at``."""

    def __init__(
        self,
        count: int | None = 10,
        live: bool = False,
        size: tuple[int, int] = (64, 48),
        fail_at: frozenset[int] = frozenset(),
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self.name = "fake"
        self.live = live
        self.count = count
        self.size = size
        self.fail_at = fail_at
        self.on_read = on_read
        self.reads = 0
        self.opens = 0
        self._position = 0
        self.is_open = False

    def open(self) -> None:
        self.opens += 1
        self.is_open = True
        self._position = 0 if not self.live else self._position

    def read(self) -> np.ndarray | None:
        if not self.is_open:
            raise SourceError("fake: not open")
        self.reads += 1
        if self.on_read:
            self.on_read(self.reads)
        if self.reads in self.fail_at:
            raise SourceError(f"fake: scripted failure at read {self.reads}")
        if self.count is not None and self._position >= self.count:
            return None
        self._position += 1
        width, height = self.size
        image = np.full((height, width, 3), self._position % 256, dtype=np.uint8)
        return image

    def close(self) -> None:
        self.is_open = False
