"""The three measured modes of ``edge-runtime bench`` (see :mod:`edge_runtime.bench` for what each one is).

Kept apart from the command module because this one imports numpy, the pipeline and (when run) MXNet, while the
command line must build its parser without them.
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from edge_runtime.bench import MODES
from edge_runtime.config import ModelConfig, SourceConfig
from edge_runtime.detector import DetectionResult, MXNetDetector, postprocess, preprocess
from edge_runtime.errors import SourceError
from edge_runtime.frames import Frame
from edge_runtime.health import percentile
from edge_runtime.messages import detection_message
from edge_runtime.pipeline import Pipeline
from edge_runtime.publishers import JsonlFilePublisher, Publisher
from edge_runtime.sources import FrameSource, make_source


@dataclass
class ModeFigures:
    """What one mode measured over all rounds: fps per round, every frame's latency, peak RSS per round."""

    fps: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    peak_rss_bytes: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "fps": statistics.median(self.fps) if self.fps else None,
            "fps_rounds": [round(value, 3) for value in self.fps],
            "latency_ms_p50": percentile(self.latency_ms, 0.5),
            "latency_ms_p95": percentile(self.latency_ms, 0.95),
            "peak_rss_bytes": max(self.peak_rss_bytes) if self.peak_rss_bytes else None,
        }


@dataclass
class BenchResult:
    model: str
    input_size: int
    video: str
    frame_size: tuple[int, int]
    frames: int
    rounds: int
    queue_size: int
    rss_scope: str  # "per mode" (VmHWM reset before each run) or "process"
    modes: dict[str, ModeFigures]

    def ratios(self, mode: str, over: str) -> list[float]:
        """Round-by-round ratio of fps: each pair was measured minutes apart at most, on the same machine state."""
        return [a / b for a, b in zip(self.modes[mode].fps, self.modes[over].fps)]

    def to_dict(self) -> dict[str, Any]:
        ratios = {
            "pipeline/bare": self.ratios("pipeline", "bare"),
            "pipeline/sequential": self.ratios("pipeline", "sequential"),
        }
        return {
            "model": self.model,
            "input_size": self.input_size,
            "video": self.video,
            "frame_size": list(self.frame_size),
            "frames_per_run": self.frames,
            "rounds": self.rounds,
            "queue_size": self.queue_size,
            "rss_scope": self.rss_scope,
            "modes": {mode: figures.summary() for mode, figures in self.modes.items()},
            "ratios": {
                name: {"median": statistics.median(values), "rounds": [round(v, 4) for v in values]}
                for name, values in ratios.items()
            },
        }


class LimitedSource(FrameSource):
    """A :class:`FrameSource` wrapper that ends after ``limit`` frames, so a long video gives equal runs."""

    def __init__(self, inner: FrameSource, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.name = inner.name
        self.live = False
        self._read = 0

    def open(self) -> None:
        self.inner.open()
        self._read = 0

    def read(self) -> np.ndarray | None:
        if self._read >= self.limit:
            return None
        self._read += 1
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()

    def rewind(self) -> None:
        self.close()
        self.open()


class TimedPublisher(Publisher):
    """Publishes through ``inner`` (a real publisher) and records, per detection message, publish time − capture."""

    name = "timed"

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.latency_ms: list[float] = []
        self.last_publish = 0.0  # perf_counter of the last detection published

    def publish(self, kind: str, message: dict[str, Any]) -> None:
        self.inner.publish(kind, message)
        if kind == "detection":
            now = time.time()
            self.last_publish = time.perf_counter()
            self.latency_ms.append((now - _parse_utc(message["captured_at"])) * 1000.0)

    def close(self, timeout_s: float) -> None:
        self.inner.close(timeout_s)


def _parse_utc(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def reset_peak_rss() -> bool:
    """Reset Linux's peak RSS (VmHWM) to the current RSS, so the next reading is this mode's peak."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class Bench:
    """One detector, one video, three ways of running them; each ``run_*`` is one timed run of ``frames`` frames."""

    def __init__(self, detector: MXNetDetector, video: str, frames: int, queue_size: int, out_dir: Path) -> None:
        self.detector = detector
        self.video = video
        self.frames = frames
        self.queue_size = queue_size
        self.out_dir = out_dir
        self._runs = 0
        first = self._source(1)
        first.open()
        image = first.read()
        first.close()
        if image is None:
            raise SourceError(f"{video}: no frame could be read")
        self.frame_size = (int(image.shape[1]), int(image.shape[0]))
        self.batch = preprocess(image, detector.info.image_size, detector.info.mean)

    def _source(self, limit: int) -> LimitedSource:
        return LimitedSource(make_source(SourceConfig(uri=self.video, kind="file")), limit)

    def _publisher(self) -> TimedPublisher:
        self._runs += 1
        return TimedPublisher(JsonlFilePublisher(self.out_dir / f"run-{self._runs}.jsonl", 10_000_000_000, 0))

    def run_bare(self, frames: int) -> tuple[float, list[float]]:
        started = time.perf_counter()
        for _ in range(frames):
            self.detector._forward(self.batch)  # the detector's own forward: array in, asnumpy out
        return frames / (time.perf_counter() - started), []

    def run_pipeline(self, frames: int) -> tuple[float, list[float]]:
        publisher = self._publisher()
        stop = threading.Event()
        source = self._source(frames)
        pipeline = Pipeline(source, self.detector, [publisher], stop, queue_size=self.queue_size, status_interval_s=0.0)
        started = time.perf_counter()
        pipeline.start()
        pipeline.finished.wait()
        pipeline.stop(5.0)
        if pipeline.failed or len(publisher.latency_ms) != frames:
            raise RuntimeError(f"pipeline published {len(publisher.latency_ms)} of {frames} frames")
        return frames / (publisher.last_publish - started), publisher.latency_ms

    def _sample_detect(self, image_bgr: np.ndarray) -> DetectionResult:
        """Preprocess as the AWS sample's ``predict_from_file`` does, then the detector's forward and postprocess.

        The sample converts the colours of the full frame, resizes, swaps axes (a strided view that MXNet must
        copy) and feeds 0-255 values without the mean; speed, not the detections, is what is compared here.
        """
        size = self.detector.info.image_size
        started = time.perf_counter()
        image = cv2.resize(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), (size, size))
        batch = np.swapaxes(np.swapaxes(image, 0, 2), 1, 2)[np.newaxis, :]
        prepared = time.perf_counter()
        rows = self.detector._forward(batch)[0]
        inferred = time.perf_counter()
        height, width = image_bgr.shape[:2]
        detector = self.detector
        detections = postprocess(rows, width, height, detector.info.label, detector.score_threshold,
                                 detector.class_thresholds, detector.top_k)
        timings = {"preprocess": (prepared - started) * 1000.0, "inference": (inferred - prepared) * 1000.0,
                   "postprocess": (time.perf_counter() - inferred) * 1000.0}
        return DetectionResult(width=width, height=height, detections=detections, timings_ms=timings)

    def run_sequential(self, frames: int) -> tuple[float, list[float]]:
        publisher = self._publisher()
        source = self._source(frames)
        info = self.detector.info
        started = time.perf_counter()
        source.open()
        seq = 0
        while (image := source.read()) is not None:
            seq += 1
            frame = Frame(image=image, seq=seq, captured_at=time.time())
            result = self._sample_detect(frame.image)
            message = detection_message(device="bench", session="sequential", source=self.video, frame=frame,
                                        result=result, model_name=info.name, model_version=info.version,
                                        published_at=time.time())
            publisher.publish("detection", message)
        source.close()
        publisher.close(5.0)
        if seq != frames:
            raise RuntimeError(f"the video gave {seq} frames, not {frames}")
        return frames / (publisher.last_publish - started), publisher.latency_ms


def run_bench(
    model: str | Path,
    video: str | Path,
    frames: int = 30,
    rounds: int = 3,
    warmup_frames: int = 3,
    queue_size: int = 2,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Measure the three modes, interleaved: ``rounds`` × (a, b, c) in a rotating order, after one warm-up each."""
    detector = MXNetDetector.from_config(ModelConfig(path=str(model), warmup_runs=2))
    figures = {mode: ModeFigures() for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        bench = Bench(detector, str(video), frames, queue_size, Path(tmp))
        runners = {"bare": bench.run_bare, "pipeline": bench.run_pipeline, "sequential": bench.run_sequential}
        for mode in MODES:
            runners[mode](warmup_frames)  # threads, allocations, decoder start-up, page cache
        per_mode = reset_peak_rss()
        for round_index in range(rounds):
            order = MODES[round_index % 3 :] + MODES[: round_index % 3]
            for mode in order:
                reset_peak_rss()
                fps, latency = runners[mode](frames)
                figures[mode].fps.append(fps)
                figures[mode].latency_ms.extend(latency)
                figures[mode].peak_rss_bytes.append(peak_rss_bytes())
                if progress:
                    progress(f"round {round_index + 1}/{rounds} {mode}: {fps:.2f} fps")
    return BenchResult(
        model=f"{detector.info.name} {detector.info.version}",
        input_size=detector.info.image_size,
        video=str(video),
        frame_size=bench.frame_size,
        frames=frames,
        rounds=rounds,
        queue_size=queue_size,
        rss_scope="per mode" if per_mode else "process",
        modes=figures,
    )


