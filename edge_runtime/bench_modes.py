"""The three measured modes of ``edge-runtime bench`` (see :mod:`edge_runtime.bench` for what each one is).

Every timed run happens in a fresh child process (``python -m edge_runtime.bench_modes MODE ...``), for two
reasons. MXNet reads its thread settings once, when it loads, and the modes are measured each at its own best:
the sequential loop with one executor on every core, the bare forward and the pipeline with the pipeline's
``workers`` x ``threads``. And each child's peak RSS is its own. The parent only checks the inputs, orders the
runs (rounds interleaved, the order rotating) and collects each child's one JSON line. Only one child runs at a
time, so the runs never compete for the cores and a small device holds one copy of the model at once.

Kept apart from the command module because this one imports numpy, the pipeline and (when run) MXNet, while the
command line must build its parser without them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from edge_runtime.bench import MODES
from edge_runtime.config import ModelConfig, SourceConfig
from edge_runtime.errors import BenchError, EdgeRuntimeError, SourceError
from edge_runtime.health import percentile, rss_bytes
from edge_runtime.publishers.base import JsonlFilePublisher, Publisher
from edge_runtime.sources.base import FrameSource
from edge_runtime.sources.registry import make_source

RUN_TIMEOUT_S = 1800  # one child: model load, warm-up and the timed frames; a stuck child is killed


def engine_configurations() -> dict[str, tuple[str, str]]:
    """Every engine x precision the registry knows, by bench's name for it: ``onnxruntime`` (fp32),
    ``onnxruntime-int8``, ``openvino-bf16``...: (model.backend, model.precision)."""
    from edge_runtime.detectors.registry import ENGINES as REGISTERED

    return {(name if precision == "fp32" else f"{name}-{precision}"): (name, precision)
            for name, spec in REGISTERED.items() for precision in spec.precisions}  # fmt: skip


# ``auto``: what the daemon runs by default: measured once per model (cached in a temporary state_dir, so the first
# round's start-up includes the measurement), then the chosen engine.
ENGINES = {**engine_configurations(), "auto": ("auto", "fp32")}  # bench.engine_names() lists the same names
DEFAULT_ENGINES = ("mxnet", "onnxruntime", "onnxruntime-int8")  # without --engines; ``all``: every one available


def run_key(mode: str, engine: str) -> str:
    return f"{mode}@{engine}"


@dataclass
class ModeFigures:
    """What one mode on one engine measured over all rounds: fps, every frame's latency, peak RSS, start-up."""

    fps: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    peak_rss_bytes: list[int] = field(default_factory=list)
    startup_s: list[float] = field(default_factory=list)  # process start to a warmed-up detector
    layout: str = ""  # "2 workers x 1 thread": how the child ran the engine

    def summary(self) -> dict[str, Any]:
        return {
            "fps": statistics.median(self.fps) if self.fps else None,
            "fps_rounds": [round(value, 3) for value in self.fps],
            "latency_ms_p50": percentile(self.latency_ms, 0.5),
            "latency_ms_p95": percentile(self.latency_ms, 0.95),
            "peak_rss_bytes": max(self.peak_rss_bytes) if self.peak_rss_bytes else None,
            "startup_s": statistics.median(self.startup_s) if self.startup_s else None,
            "layout": self.layout,
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
    workers: int
    rss_scope: str  # "per mode" (VmHWM reset after the warm-up) or "process" (the child's peak, loading included)
    modes: dict[str, ModeFigures]  # by run_key(mode, engine)
    engines: tuple[str, ...] = ("mxnet",)
    gflop_per_frame: Optional[float] = None  # the network's convolutions, counted from model.onnx
    sgemm_gflops: Optional[float] = None  # this machine's float32 matrix product, every core: the physical limit
    load_processes: int = 0  # busy-loop processes that ran beside every timed run (--load)

    def ratios(self, mode: str, over: str, engine: str, over_engine: Optional[str] = None) -> list[float]:
        """Round-by-round ratio of fps: each pair was measured minutes apart at most, on the same machine state."""
        top, bottom = self.modes[run_key(mode, engine)], self.modes[run_key(over, over_engine or engine)]
        return [a / b for a, b in zip(top.fps, bottom.fps)]

    def ratio_table(self) -> dict[str, list[float]]:
        modes = {key.split("@")[0] for key in self.modes}
        table: dict[str, list[float]] = {}
        for engine in self.engines:
            for over in ("bare", "sequential"):
                if {"pipeline", over} <= modes:
                    table[f"pipeline/{over} {engine}"] = self.ratios("pipeline", over, engine)
        reference = self.engines[0]
        for engine in self.engines[1:]:
            for mode in sorted(modes & {"bare", "pipeline"}):
                table[f"{engine}/{reference} {mode}"] = self.ratios(mode, mode, engine, reference)
        return table

    def gflops(self, engine: str) -> Optional[float]:
        """The bare forward's achieved GFLOP/s on ``engine`` (None when the FLOPs are unknown)."""
        bare = self.modes.get(run_key("bare", engine))
        if self.gflop_per_frame is None or bare is None or not bare.fps:
            return None
        return self.gflop_per_frame * statistics.median(bare.fps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_size": self.input_size,
            "video": self.video,
            "frame_size": list(self.frame_size),
            "frames_per_run": self.frames,
            "rounds": self.rounds,
            "queue_size": self.queue_size,
            "workers": self.workers,
            "engines": list(self.engines),
            "load_processes": self.load_processes,
            "rss_scope": self.rss_scope,
            "gflop_per_frame": self.gflop_per_frame,
            "sgemm_gflops": self.sgemm_gflops,
            "achieved_gflops": {engine: self.gflops(engine) for engine in self.engines},
            "modes": {key: figures.summary() for key, figures in self.modes.items()},
            "ratios": {
                name: {"median": statistics.median(values), "rounds": [round(v, 4) for v in values]}
                for name, values in self.ratio_table().items()
            },
        }


@dataclass(frozen=True)
class RunSpec:
    """One timed run, as the parent asks a child for it."""

    mode: str
    model: str
    video: str
    frames: int
    warmup_frames: int
    queue_size: int
    workers: int
    threads: int
    engine: str = "mxnet"
    spin_wait: bool = False

    @property
    def backend(self) -> str:
        return ENGINES[self.engine][0]

    @property
    def precision(self) -> str:
        return ENGINES[self.engine][1]

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "edge_runtime.bench_modes", self.mode, "--model", self.model, "--video", self.video,
            "--frames", str(self.frames), "--warmup", str(self.warmup_frames), "--queue-size", str(self.queue_size),
            "--workers", str(self.workers), "--threads", str(self.threads), "--engine", self.engine,
            *(["--spin-wait"] if self.spin_wait else []),
        ]  # fmt: skip


def layout_of(mode: str, workers: int, threads: int) -> tuple[int, int]:
    """(workers, threads) a mode runs with: the sequential loop is one executor on every core, as a plain
    ``Module`` script would be at its best; the bare forward runs the pipeline's layout, so b/a is the pipeline's
    own overhead."""
    return (1, 0) if mode == "sequential" else (workers, threads)


def available_engines(info: Any) -> tuple[str, ...]:
    """The engine configurations this model and this install can run, MXNet (the reference) first; a precision the
    CPU lacks (OpenVINO's fp16 on most x86) is left out."""
    from edge_runtime.detectors.registry import ENGINES as REGISTERED

    engines = []
    for name, (backend, precision) in ENGINES.items():
        if backend == "auto":
            if info.onnx_path is not None:
                engines.append(name)
            continue
        if not REGISTERED[backend].installed():
            continue
        if backend == "mxnet" and not info.has_mxnet:
            continue
        if backend != "mxnet" and (info.onnx_int8_path if precision == "int8" else info.onnx_path) is None:
            continue
        if backend == "openvino" and precision in ("bf16", "fp16"):
            from edge_runtime.detectors.openvino import HINTS, cpu_capabilities

            if HINTS[precision][1] not in cpu_capabilities():
                continue
        engines.append(name)
    return tuple(sorted(engines, key=lambda name: (name != "mxnet", name == "auto")))


def conv_gflop(onnx_path: Optional[Path]) -> Optional[float]:
    """GFLOP of one forward's convolutions (2 x multiply-adds), from model.onnx's inferred shapes; None without onnx."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    if onnx_path is None:
        return None
    model = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes = {info.name: [dim.dim_value for dim in info.type.tensor_type.shape.dim]
              for info in (*model.graph.value_info, *model.graph.output)}  # fmt: skip
    weights = {tensor.name: list(tensor.dims) for tensor in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type != "Conv" or node.output[0] not in shapes or node.input[1] not in weights:
            continue
        out = shapes[node.output[0]]
        kernel = weights[node.input[1]]  # (out channels, in channels / group, kh, kw)
        total += 2 * out[1] * out[2] * out[3] * kernel[1] * kernel[2] * kernel[3]
    return total / 1e9 if total else None


def sgemm_gflops(size: int = 1536, repeats: int = 8) -> float:
    """This machine's float32 matrix-product rate (numpy's BLAS on every core): the ceiling a network can reach.

    The best of ``repeats``, measured before the timed runs (and before ``--load`` starts): a VM's neighbours move
    single readings by a third."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: threads, pages
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


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


def first_frame_size(video: str) -> tuple[int, int]:
    """(width, height) of the video's first frame; SourceError when it cannot be opened or read."""
    source = LimitedSource(make_source(SourceConfig(uri=video, kind="file")), 1)
    source.open()
    try:
        image = source.read()
    finally:
        source.close()
    if image is None:
        raise SourceError(f"{video}: no frame could be read")
    return int(image.shape[1]), int(image.shape[0])


def run_bench(
    model: str | Path,
    video: str | Path,
    frames: int = 30,
    rounds: int = 3,
    warmup_frames: int = 3,
    queue_size: int = 2,
    progress: Callable[[str], None] | None = None,
    workers: int = 1,
    threads: int = 0,
    engines: Optional[Sequence[str]] = None,
    modes: Sequence[str] = MODES,
    load: int = 0,
    spin_wait: bool = False,
) -> BenchResult:
    """Measure ``modes`` on each engine, ``rounds`` times in a rotating order, each run in a fresh child process.

    ``engines`` defaults to every one the model and this install can run; ``load`` busy-loop processes run beside
    every timed run (what a device running something else alongside looks like).
    """
    from edge_runtime.model import read_model_info

    info = read_model_info(str(model))  # a bad model folder or a missing video fails here, in one line
    if not engines:  # the default: the reference and the device install's two configurations
        chosen = tuple(name for name in available_engines(info) if name in DEFAULT_ENGINES)
    elif tuple(engines) == ("all",):
        chosen = available_engines(info)
    else:
        chosen = tuple(engines)
    unknown = [engine for engine in chosen if engine not in ENGINES]
    if unknown or not chosen:
        raise BenchError(f"--backends: {', '.join(unknown) or 'none'} (choose from {', '.join(ENGINES)}; this model"
                         f" and install can run {', '.join(available_engines(info)) or 'none'})")  # fmt: skip
    frame_size = first_frame_size(str(video))
    sgemm = sgemm_gflops()
    runs = [(mode, engine) for engine in chosen for mode in modes]
    figures = {run_key(mode, engine): ModeFigures() for mode, engine in runs}
    scopes: set[str] = set()
    with BusyLoad(load):
        for round_index in range(rounds):
            shift = round_index % len(runs)
            for mode, engine in runs[shift:] + runs[:shift]:
                mode_workers, mode_threads = layout_of(mode, workers, threads)
                spec = RunSpec(mode, str(model), str(video), frames, warmup_frames, queue_size, mode_workers,
                               mode_threads, engine, spin_wait)  # fmt: skip
                run = _run_child(spec)
                figure = figures[run_key(mode, engine)]
                figure.fps.append(float(run["fps"]))
                figure.latency_ms.extend(float(value) for value in run["latency_ms"])
                figure.peak_rss_bytes.append(int(run["peak_rss_bytes"]))
                if run.get("startup_s") is not None:
                    figure.startup_s.append(float(run["startup_s"]))
                figure.layout = str(run["layout"])
                scopes.add(str(run["rss_scope"]))
                if progress:
                    progress(f"round {round_index + 1}/{rounds} {mode} on {engine} ({run['layout']}):"
                             f" {run['fps']:.2f} fps")  # fmt: skip
    return BenchResult(
        model=f"{info.name} {info.version}",
        input_size=info.image_size,
        video=str(video),
        frame_size=frame_size,
        frames=frames,
        rounds=rounds,
        queue_size=queue_size,
        workers=workers,
        rss_scope="per mode" if scopes == {"per mode"} else "process",
        modes=figures,
        engines=chosen,
        gflop_per_frame=conv_gflop(info.onnx_path),
        sgemm_gflops=sgemm,
        load_processes=load,
    )


class BusyLoad:
    """``count`` processes spinning on the CPU while the block runs (a device that does something else too)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._children: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> BusyLoad:
        spin = "import time\nend = time.monotonic() + 7200\nwhile time.monotonic() < end: pass"
        self._children = [subprocess.Popen([sys.executable, "-c", spin], stdin=subprocess.DEVNULL)
                          for _ in range(self.count)]  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        for child in self._children:
            child.kill()
        for child in self._children:
            child.wait(timeout=10)


def _run_child(spec: RunSpec) -> dict[str, Any]:
    try:
        done = subprocess.run(
            spec.argv(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"the {spec.mode} run did not finish within {RUN_TIMEOUT_S} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        problem = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise BenchError(f"the {spec.mode} run failed: {problem}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# ---- the child: one mode, one timed run ---------------------------------------------------------------------


class TimedPublisher(Publisher):
    """Publishes through ``inner`` (a real publisher) and records, per detection message, publish time - capture."""

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
    """Reset Linux's peak RSS (VmHWM) to the current RSS, so the next reading is this run's peak."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class Bench:
    """One detector, one video; each ``run_*`` is one timed run of ``frames`` frames, returning (fps, latencies)."""

    def __init__(self, detector: Any, video: str, queue_size: int, out_dir: Path) -> None:
        from edge_runtime.detectors.base import preprocess

        self.detector = detector
        self.video = video
        self.queue_size = queue_size
        self.out_dir = out_dir
        self._runs = 0
        source = self._source(1)
        source.open()
        image = source.read()
        source.close()
        if image is None:
            raise SourceError(f"{video}: no frame could be read")
        self.batch = preprocess(image, detector.info.image_size, detector.info.mean)

    def _source(self, limit: int) -> LimitedSource:
        return LimitedSource(make_source(SourceConfig(uri=self.video, kind="file")), limit)

    def _publisher(self) -> TimedPublisher:
        self._runs += 1
        return TimedPublisher(JsonlFilePublisher(self.out_dir / f"run-{self._runs}.jsonl", 10_000_000_000, 0))

    def run_bare(self, frames: int) -> tuple[float, list[float]]:
        """``frames`` forwards of one prepared batch, spread over ``workers`` threads as the pipeline would be."""
        workers = self.detector.concurrency
        shares = [frames // workers + (1 if index < frames % workers else 0) for index in range(workers)]

        def loop(count: int) -> None:
            for _ in range(count):
                self.detector.forward(self.batch)  # the network alone: array in, outputs out

        threads = [threading.Thread(target=loop, args=(count,)) for count in shares]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return frames / (time.perf_counter() - started), []

    def run_pipeline(self, frames: int) -> tuple[float, list[float]]:
        from edge_runtime.daemon import Daemon, DaemonSettings
        from edge_runtime.pipeline import PipelineSettings

        publisher = self._publisher()
        stop = threading.Event()
        part = PipelineSettings(SourceConfig(uri=self.video, kind="file", queue_size=self.queue_size))
        pipeline = Daemon(
            DaemonSettings(workers=self.detector.concurrency, status_interval_s=0.0), self.detector, [publisher],
            [(part, self._source(frames))], stop,
        )  # fmt: skip
        started = time.perf_counter()
        pipeline.start()
        pipeline.finished.wait()
        pipeline.stop(5.0)
        if pipeline.failed or len(publisher.latency_ms) != frames:
            raise BenchError(f"the pipeline published {len(publisher.latency_ms)} of {frames} frames")
        return frames / (publisher.last_publish - started), publisher.latency_ms

    def _sample_detect(self, image_bgr: np.ndarray) -> Any:
        """Preprocess as the AWS sample's ``predict_from_file`` does, then the detector's forward and postprocess.

        The sample converts the colours of the full frame, resizes, swaps axes (a strided view that MXNet must
        copy) and feeds 0-255 values without the mean; speed, not the detections, is what is compared here.
        """
        import cv2

        from edge_runtime.detectors.base import DetectionResult

        size = self.detector.info.image_size
        started = time.perf_counter()
        image = cv2.resize(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), (size, size))
        batch = np.swapaxes(np.swapaxes(image, 0, 2), 1, 2)[np.newaxis, :]
        prepared = time.perf_counter()
        outputs = self.detector.forward(batch.astype(np.float32))
        inferred = time.perf_counter()
        height, width = image_bgr.shape[:2]
        rows = self.detector.rows(outputs, min_score=self.detector.score_threshold)
        detections = self.detector.detections_from(rows, width, height)
        timings = {"preprocess": (prepared - started) * 1000.0, "inference": (inferred - prepared) * 1000.0,
                   "postprocess": (time.perf_counter() - inferred) * 1000.0}  # fmt: skip
        return DetectionResult(width=width, height=height, detections=detections, timings_ms=timings)

    def run_sequential(self, frames: int) -> tuple[float, list[float]]:
        from edge_runtime.frames import Frame
        from edge_runtime.messages import detection_message

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
                                        published_at=time.time())  # fmt: skip
            publisher.publish("detection", message)
        source.close()
        publisher.close(5.0)
        if seq != frames:
            raise BenchError(f"the video gave {seq} frames, not {frames}")
        return frames / (publisher.last_publish - started), publisher.latency_ms


def process_age_s() -> Optional[float]:
    """Seconds since this process started (Linux ``/proc``): interpreter, imports, model load and warm-up."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as uptime:
            now_s = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return now_s - started_ticks / os.sysconf("SC_CLK_TCK")


def measure(spec: RunSpec) -> dict[str, Any]:
    """In the child: load the model as the spec says, warm this mode up, then one timed run of it."""
    from edge_runtime.detectors import create_detector

    config = ModelConfig.model_validate({"path": spec.model, "warmup_runs": 2, "workers": spec.workers,
                                         "threads": spec.threads, "backend": spec.backend,
                                         "precision": spec.precision, "spin_wait": spec.spin_wait})  # fmt: skip
    state_dir = None
    if spec.backend == "auto":  # the daemon's default: measured once per model here, then read from the cache
        state_dir = auto_state_dir(spec.model)
    detector = create_detector(config, state_dir=state_dir)  # MXNet: sets its threads before it loads
    startup_s = process_age_s()
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        bench = Bench(detector, spec.video, spec.queue_size, Path(tmp))
        runner = {"bare": bench.run_bare, "pipeline": bench.run_pipeline, "sequential": bench.run_sequential}
        runner[spec.mode](spec.warmup_frames)  # threads, allocations, decoder start-up, page cache
        per_run = reset_peak_rss()
        fps, latency = runner[spec.mode](spec.frames)
    described = detector.describe()
    threads = described.get("threads", "?") + (" spinning" if described.get("spin_wait") == "on" else "")
    workers = detector.concurrency
    chosen = f"{detector.backend} {detector.precision}: " if detector.choice else ""
    return {
        "mode": spec.mode,
        "fps": fps,
        "latency_ms": [round(value, 3) for value in latency],
        "peak_rss_bytes": rss_bytes("VmHWM"),
        "rss_scope": "per mode" if per_run else "process",
        "startup_s": startup_s,
        "layout": f"{chosen}{workers} worker{'s' * (workers != 1)} x {threads} thread{'s' * (threads != '1')}",
    }


def auto_state_dir(model: str | Path) -> Path:
    """Where bench's ``auto`` runs keep their measured choice (one per model folder, in the temporary folder)."""
    digest = hashlib.sha256(str(Path(model).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"edge-bench-auto-{digest}"


def auto_choice_lines(model: str | Path) -> list[str]:
    """The table ``auto`` measured for ``model`` in bench's runs and what it chose; empty when it did not run."""
    from edge_runtime.detectors.choice import CACHE_FILE, Measured

    try:
        data = json.loads((auto_state_dir(model) / CACHE_FILE).read_text(encoding="utf-8"))
        table, choice = [Measured(**item) for item in data["table"]], Measured(**data["choice"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return ["auto (the daemon's default) measured on this model:", *(f"  {item.line()}" for item in table),
            f"  chose {choice.engine} {choice.precision}"]  # fmt: skip


def child_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_runtime.bench_modes", description="one timed bench run")
    parser.add_argument("mode", choices=MODES)
    for name in ("model", "video"):
        parser.add_argument(f"--{name}", required=True)
    for name in ("frames", "warmup", "queue-size", "workers", "threads"):
        parser.add_argument(f"--{name}", type=int, required=True)
    parser.add_argument("--engine", choices=list(ENGINES), default="mxnet")
    parser.add_argument("--spin-wait", action="store_true")
    args = parser.parse_args(argv)
    spec = RunSpec(args.mode, args.model, args.video, args.frames, args.warmup, args.queue_size, args.workers,
                   args.threads, args.engine, args.spin_wait)  # fmt: skip
    try:
        result = measure(spec)
    except EdgeRuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
