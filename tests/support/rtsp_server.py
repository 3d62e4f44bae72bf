"""A real RTSP server on loopback for the stream tests: GStreamer's gst-rtsp-server (Debian's
gir1.2-gst-rtsp-server-1.0, run by the system python3 with python3-gi), serving live MJPEG over RTP.

    /usr/bin/python3 tests/support/rtsp_server.py PORT [PATH]

serves ``rtsp://127.0.0.1:PORT/PATH`` (default ``cam``): 320x240 at 10 fps from ``videotestsrc`` (a moving ball,
so frames differ), one pipeline shared by every client. It prints ``ready`` once listening. A test restarts it
(a camera rebooting) by ending the process and starting another on the same port, and stalls it with SIGSTOP.
"""

from __future__ import annotations

import sys

import gi  # type: ignore[import-not-found]

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # type: ignore[import-not-found]  # noqa: E402

LAUNCH = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=10/1"
    " ! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )"
)


def main() -> int:
    port = sys.argv[1]
    path = sys.argv[2] if len(sys.argv) > 2 else "cam"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(LAUNCH)
    factory.set_shared(True)
    server.get_mount_points().add_factory(f"/{path}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
