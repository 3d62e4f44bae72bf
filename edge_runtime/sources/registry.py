"""The source registry: the single list of source kinds, how ``auto`` guesses one from a URI, and how each is built.

Config choices (``source.kind``), the CLI's help and :func:`make_source` all come from :data:`KINDS`; a new kind
of source is one module plus one entry here. Nothing heavy is imported at module level, so ``check-config`` stays
fast: each factory imports its adapter when it is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from edge_runtime.errors import ConfigError

# kind -> what it reads (also the help text of source.kind)
KINDS: dict[str, str] = {
    "file": "a video file (FFmpeg through OpenCV)",
    "folder": "a folder of images, in name order",
    "camera": "a V4L2 camera by index (0 is /dev/video0)",
    "stream": "an rtsp:// stream (FFmpeg), or an http(s):// MJPEG stream",
    "gstreamer": "a GStreamer pipeline (text containing '!' or prefixed 'gst:'), needs OpenCV built with GStreamer",
    "libcamera": "a Raspberry Pi camera module through libcamera: 'libcamera' or 'libcamera:N' (rpicam-vid, or"
    " picamera2 when importable)",
}
KIND_CHOICES = ("auto", *KINDS)


def guess_kind(uri: str, kind: str = "auto") -> str:
    """What ``uri`` names, when the config leaves ``kind`` as auto."""
    if kind != "auto":
        return kind
    if uri == "libcamera" or uri.startswith("libcamera:"):
        return "libcamera"
    if uri.startswith("gst:") or "!" in uri:
        return "gstreamer"
    if uri.isdigit():
        return "camera"
    if "://" in uri:
        return "stream"
    if Path(uri).is_dir():
        return "folder"
    return "file"


def _folder(config: Any, key: str) -> Any:
    from edge_runtime.sources.base import ImageFolderSource

    return ImageFolderSource(str(config.uri))


def _file(config: Any, key: str) -> Any:
    from edge_runtime.sources.base import OpenCVSource

    return OpenCVSource(str(config.uri), "file", float(config.stall_timeout_s))


def _camera(config: Any, key: str) -> Any:
    from edge_runtime.sources.base import OpenCVSource

    uri = str(config.uri)
    if not uri.isdigit():
        raise ConfigError(f"{key}.uri: a camera is its index, e.g. 0 for /dev/video0 (got {uri!r})")
    size = (config.width, config.height) if config.width and config.height else None
    return OpenCVSource(int(uri), "camera", float(config.stall_timeout_s), size)


def _gstreamer(config: Any, key: str) -> Any:
    from edge_runtime.sources.base import OpenCVSource

    uri = str(config.uri)
    return OpenCVSource(uri[4:] if uri.startswith("gst:") else uri, "gstreamer", float(config.stall_timeout_s))


def _stream(config: Any, key: str) -> Any:
    from edge_runtime.sources.base import MjpegHttpSource, OpenCVSource

    uri = str(config.uri)
    if uri.split("://", 1)[0].lower() in ("http", "https"):
        return MjpegHttpSource(uri, float(config.stall_timeout_s))
    return OpenCVSource(uri, "stream", float(config.stall_timeout_s))


def _libcamera(config: Any, key: str) -> Any:
    from edge_runtime.sources.libcamera import make_libcamera_source

    return make_libcamera_source(config, key)


FACTORIES: dict[str, Callable[[Any, str], Any]] = {
    "file": _file,
    "folder": _folder,
    "camera": _camera,
    "stream": _stream,
    "gstreamer": _gstreamer,
    "libcamera": _libcamera,
}
assert set(FACTORIES) == set(KINDS)


def make_source(config: Any, key: str = "source") -> Any:
    """The :class:`~edge_runtime.sources.base.FrameSource` for a source section (its ``uri`` set); ``key`` is where
    the section is in the config (``source``, ``sources.1``), for errors. ``uri`` ``auto`` is resolved here, at
    run time: the first libcamera camera when rpicam-vid lists one, else camera 0."""
    if str(config.uri) == "auto":
        from edge_runtime.sources.libcamera import first_camera_uri

        config = config.model_copy(update={"uri": first_camera_uri(), "kind": "auto"})
    kind = guess_kind(str(config.uri), config.kind)
    factory = FACTORIES.get(kind)
    if factory is None:
        raise ConfigError(f"{key}.kind: unknown source kind, one of"
                          f" {', '.join(KIND_CHOICES)} (got {kind!r})")  # fmt: skip
    return factory(config, key)
