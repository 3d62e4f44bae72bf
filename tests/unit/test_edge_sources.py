"""Several sources, one detector: the registry's kinds, the sources config, fair round-robin sharing, per-source
order and honest states, and the rpicam-vid listing parser, with the in-repo fakes."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from edge_runtime.config import validate
from edge_runtime.daemon import Daemon, DaemonSettings
from edge_runtime.detectors.fake import FakeDetector
from edge_runtime.errors import ConfigError, SourceError
from edge_runtime.publishers.base import RecordingPublisher
from edge_runtime.sources.base import FakeSource
from edge_runtime.sources.libcamera import camera_index, parse_camera_list
from edge_runtime.sources.registry import FACTORIES, KIND_CHOICES, KINDS, guess_kind, make_source
from tests.support.assembly import source_settings
from tests.support.waiting import wait_until

LISTING = """Available cameras
-----------------
0 : imx708 [4608x2592 10-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx708@1a)
    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]
                             4608x2592 [14.35 fps - (0, 0)/4608x2592 crop]

1 : imx477 [4056x3040 12-bit RGGB] (/base/soc/i2c0mux/i2c@0/imx477@1a)
    Modes: 'SRGGB10_CSI2P' : 1332x990 [120.05 fps - (696, 528)/2664x1980 crop]
"""


def test_the_registry_is_the_one_list_of_kinds() -> None:
    assert set(FACTORIES) == set(KINDS) and KIND_CHOICES[0] == "auto"
    assert guess_kind("libcamera") == guess_kind("libcamera:1") == "libcamera"
    assert guess_kind("rtsp://127.0.0.1/x") == "stream" and guess_kind("2") == "camera"
    with pytest.raises(ConfigError, match=r"sources.2.uri: a camera is its index"):
        make_source(validate({"source": {"uri": "front", "kind": "camera"}}).source, "sources.2")


def test_sources_config_ids_defaults_and_duplicates() -> None:
    config = validate({"source": {"max_fps": 5, "loop": True}, "sources": [{"uri": "a.mp4"}, {"id": "b", "uri": "b.mp4",
                                                                                             "loop": False}]})
    listed = config.source_list()
    assert [(key, s.id, s.max_fps, s.loop) for key, s in listed] == [("sources.0", "a.mp4", 5.0, True),
                                                                    ("sources.1", "b", 5.0, False)]
    with pytest.raises(ConfigError, match=r"^sources.1.id: duplicate source id, also sources.0's \(got 'a.mp4'\)"):
        validate({"sources": [{"uri": "a.mp4"}, {"uri": "a.mp4"}]})
    with pytest.raises(ConfigError, match=r"^source.uri: give one camera in source.uri or several in sources"):
        validate({"source": {"uri": "x"}, "sources": [{"uri": "y"}]})
    with pytest.raises(ConfigError, match=r"sources.0.kind: unknown source kind, one of auto, file, .*\(got 'usb'\)"):
        validate({"sources": [{"uri": "y", "kind": "usb"}]})


def test_rpicam_listing_and_camera_index() -> None:
    cameras = parse_camera_list(LISTING)
    assert [(c.index, c.sensor, c.width, c.height) for c in cameras] == [(0, "imx708", 4608, 2592),
                                                                      (1, "imx477", 4056, 3040)]
    assert parse_camera_list("No cameras available!") == []
    assert camera_index("libcamera", "source") == 0 and camera_index("libcamera:1", "source") == 1
    with pytest.raises(SourceError, match=r"sources\.1\.uri: libcamera or libcamera:N"):
        camera_index("libcamera:one", "sources.1")


def test_one_detector_is_shared_fairly_and_each_source_stays_in_order() -> None:
    """Three live sources that always have a frame, a detector slower than all of them: each gets its third."""
    recorder = RecordingPublisher()
    stop = threading.Event()
    sources = [(source_settings(name), FakeSource(count=None, live=True)) for name in ("a", "b", "c")]
    daemon = Daemon(DaemonSettings(workers=2, status_interval_s=0), FakeDetector(delay_s=0.004), [recorder], sources,
                    stop)  # fmt: skip
    daemon.start()
    assert wait_until(lambda: len(recorder.of_kind("detection")) >= 150, 20.0)
    assert daemon.stop(2.0)
    messages = recorder.of_kind("detection")
    counts = Counter(m["source"] for m in messages)
    assert set(counts) == {"a", "b", "c"}
    share = sum(counts.values()) / 3
    assert all(abs(count - share) <= 0.1 * share for count in counts.values()), counts
    for name in "abc":
        seqs = [m["seq"] for m in messages if m["source"] == name]
        assert seqs == sorted(set(seqs))


def test_files_end_the_daemon_only_when_every_file_is_done() -> None:
    recorder = RecordingPublisher()
    stop = threading.Event()
    sources = [(source_settings("short"), FakeSource(count=3)), (source_settings("long"), FakeSource(count=20))]
    daemon = Daemon(DaemonSettings(status_interval_s=0), FakeDetector(), [recorder], sources, stop)
    daemon.start()
    assert wait_until(daemon.finished.is_set, 10.0)
    assert daemon.stop(2.0)
    counts = Counter(m["source"] for m in recorder.of_kind("detection"))
    assert counts == {"short": 3, "long": 20}


class NeverOpens(FakeSource):
    """A camera that is unreachable from the start."""

    def open(self) -> None:
        self.opens += 1
        raise SourceError("rtsp://10.0.0.9/cam: cannot open stream source")


def test_a_source_connecting_past_its_stall_timeout_is_degraded_naming_it() -> None:
    recorder = RecordingPublisher()
    stop = threading.Event()
    settings = source_settings("door", stall_timeout_s=0.3, reconnect_initial_s=0.05, reconnect_max_s=0.1)
    sources = [(settings, NeverOpens(count=None, live=True)),
               (source_settings("ok"), FakeSource(count=None, live=True))]
    daemon = Daemon(DaemonSettings(status_interval_s=0), FakeDetector(delay_s=0.01), [recorder], sources, stop)
    daemon.start()
    try:
        assert daemon.status("running")["state"] == "running"  # connecting, not for long yet
        time.sleep(0.5)
        status = daemon.status("running")
    finally:
        daemon.stop(2.0)
    assert status["state"] == "degraded"
    assert [entry["state"] for entry in status["sources"]] == ["connecting", "streaming"]
    (problem,) = status["problems"]
    assert problem["part"] == "source" and problem["reason"].startswith("source door: no connection after")
    assert "rtsp://10.0.0.9/cam: cannot open" in problem["reason"]


def test_topics_may_name_the_source() -> None:
    from edge_runtime.errors import PublishError
    from edge_runtime.publishers.mqtt import render_topic

    assert render_topic("edge/{thing_name}/{source}/detections", "cam-1", "door") == "edge/cam-1/door/detections"
    assert render_topic("e/{source}", "t", "rtsp://10.0.0.9/live+1#") == "e/rtsp:__10.0.0.9_live_1_"
    with pytest.raises(PublishError, match=r"only \{thing_name\} may be used"):
        render_topic("edge/{thing_name}/{source}/status", "cam-1")  # a status covers every source
