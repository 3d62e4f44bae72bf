"""``model.backend auto``: measure every installed engine x precision on this model, here, and run the fastest one
whose detections equal the fp32 reference.

Which engine wins depends on the device (OpenVINO bf16 ran 6.7x ONNX Runtime fp32 on an AVX512-BF16 x86, and no
table can say what an Arm board will do), so it is measured on the device, once: the result is cached in
``state_dir/engine-choice.json`` under a key of the model files' digests, the CPU/GPU identity, the engine versions
and the settings that change the figures, and measured again when any of them changes (a corrupt cache: one
warning, then measured again).

The accuracy gate (:func:`gate`): on the sample frames ``cloud-training convert`` stored in the model folder
(``samples.npz``: frames at the input size and the fp32 detections of ``model.onnx`` on them), every detection
scoring clearly above the gate's floor must be found by the candidate with the same class, its score within
``model.auto.score_tolerance`` and each normalised box coordinate within ``model.auto.box_tolerance``, and the
candidate must find nothing clearly above the floor that the reference lacks. Detections within the score tolerance
of the floor may come and go (a 0.301 that becomes 0.299 is no disagreement). int8 must also show a held-out mAP
drop of at most ``model.auto.max_map_drop`` that ``evaluate --precision int8 --record`` wrote into model.json.
A reduced precision is never chosen silently: the choice is logged as a warning with the gate's figures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edge_runtime.detectors.base import Detector, usable_cores
from edge_runtime.detectors.registry import ENGINES
from edge_runtime.errors import ModelError
from edge_runtime.model import ModelInfo, sha256_of
from edge_runtime.model_format import MODEL_JSON, ONNX_FILE, ONNX_INT8_FILE, SAMPLES_FILE

log = logging.getLogger(__name__)

CACHE_FILE = "engine-choice.json"
CACHE_FORMAT = "engine-choice/1"
MIN_TIMED_RUNS = 2  # per thread, whatever the budget
ENOUGH_RUNS = 30  # forwards (all threads) after which, once ENOUGH_S have passed, an engine is measured
ENOUGH_S = 1.0


@dataclass
class Measured:
    """One engine x precision on this model: how fast, how long it took to start, and whether it passed the gate."""

    engine: str
    precision: str
    fps: Optional[float] = None
    startup_s: Optional[float] = None
    gate: str = "not measured"  # "pass", or why not

    @property
    def passed(self) -> bool:
        return self.gate == "pass"

    def line(self) -> str:
        fps = f"{self.fps:7.2f} fps" if self.fps is not None else "      - fps"
        start = f"start {self.startup_s:5.2f} s" if self.startup_s is not None else "start     - s"
        return f"{self.engine + ' ' + self.precision:<18}{fps}  {start}  gate: {self.gate}"


# ---------------------------------------------------------------------------------------------------- the gate


def gate(
    reference: np.ndarray, candidate: np.ndarray, floor: float, score_tolerance: float, box_tolerance: float
) -> Optional[str]:
    """None when ``candidate``'s detection rows equal ``reference``'s (see the module docstring), else why not.

    Rows are ``[class_id, score, xmin, ymin, xmax, ymax]`` (normalised); ``class_id -1`` rows are ignored.
    """
    ref = _kept(reference, floor - score_tolerance)
    cand = _kept(candidate, floor - score_tolerance)
    for name, required, pool in (("reference", ref, cand), ("candidate", cand, ref)):
        used = np.zeros(len(pool), dtype=bool)
        for row in required[required[:, 1] >= floor + score_tolerance]:
            found = _match(row, pool, used, score_tolerance, box_tolerance)
            if found is None:
                missing = "misses" if name == "reference" else "adds"
                return (f"{missing} class {int(row[0])} score {row[1]:.3f} box"
                        f" [{', '.join(f'{v:.3f}' for v in row[2:6])}]")  # fmt: skip
            used[found] = True
    return None


def _kept(rows: np.ndarray, minimum: float) -> np.ndarray:
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return table[(table[:, 0] >= 0) & (table[:, 1] >= minimum)]


def _match(row: np.ndarray, pool: np.ndarray, used: np.ndarray, score_tol: float, box_tol: float) -> Optional[int]:
    for index, other in enumerate(pool):
        if used[index] or int(other[0]) != int(row[0]):
            continue
        if abs(other[1] - row[1]) <= score_tol and float(np.max(np.abs(other[2:6] - row[2:6]))) <= box_tol:
            return index
    return None


def read_samples(info: ModelInfo) -> Optional[tuple[np.ndarray, list[np.ndarray], float]]:
    """(prepared batches (N, 1, 3, S, S), the fp32 reference rows per frame, the gate's floor) from samples.npz,
    whose ``frames`` are the resized RGB frames (N, 3, S, S) as uint8."""
    path = info.folder / SAMPLES_FILE
    if not path.is_file():
        return None
    mean = np.asarray(info.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    with np.load(path, allow_pickle=False) as data:
        batches = np.stack([frame.astype(np.float32)[np.newaxis] - mean for frame in data["frames"]])
        rows = [np.asarray(data["rows"][index]) for index in range(len(batches))]
        floor = float(data["floor"])
    return batches, rows, floor


def check_against_samples(detector: Detector, samples: tuple[np.ndarray, list[np.ndarray], float],
                          score_tolerance: float, box_tolerance: float) -> Optional[str]:  # fmt: skip
    """The gate on every sample frame: None, or the first disagreement with its frame number."""
    batches, references, floor = samples
    for index, (batch, reference) in enumerate(zip(batches, references)):
        rows = detector.rows(detector.forward(batch), min_score=max(0.0, floor - score_tolerance))
        problem = gate(reference, rows, floor, score_tolerance, box_tolerance)
        if problem is not None:
            return f"sample frame {index + 1}: {problem}"
    return None


def map_drop_problem(folder: Path, precision: str, max_drop: float) -> Optional[str]:
    """int8's second gate: the held-out mAP drop that ``evaluate --record`` wrote, or why it cannot pass."""
    try:
        manifest = json.loads((folder / MODEL_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"no readable {MODEL_JSON} with a recorded evaluation"
    base = (manifest.get("evaluation") or {}).get("mAP")
    reduced = ((manifest.get("evaluations") or {}).get(precision) or {}).get("mAP")
    if base is None or reduced is None:
        return (f"no recorded held-out mAP for fp32 and {precision} (cloud-training evaluate --record, and again"
                f" with --precision {precision} --record)")  # fmt: skip
    drop = float(base) - float(reduced)
    if drop > max_drop:
        return f"held-out mAP drop {drop:.4f} > {max_drop} ({base:.4f} -> {reduced:.4f})"
    return None


# ---------------------------------------------------------------------------------------------------- the cache


def hardware_identity() -> dict[str, Any]:
    """What the figures depend on besides the model: the CPU (model name and flags), usable cores, GPU providers."""
    cpu = {"model name": platform.processor(), "flags": ""}
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "flags", "Features", "CPU part") and not cpu.get(key):
                cpu[key] = value.strip()
    except OSError:
        pass
    identity: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu": cpu.get("model name") or cpu.get("CPU part", ""),
        "cpu_flags": hashlib.sha256((cpu.get("flags") or cpu.get("Features", "")).encode()).hexdigest()[:16],
        "cores": usable_cores(),
    }
    if ENGINES["onnxruntime"].installed():
        import onnxruntime as ort

        identity["onnxruntime_providers"] = list(ort.get_available_providers())
    return identity


def cache_key(info: ModelInfo, config: Any) -> dict[str, Any]:
    files = {name: sha256_of(info.folder / name) for name in (MODEL_JSON, ONNX_FILE, ONNX_INT8_FILE, SAMPLES_FILE)
             if (info.folder / name).is_file()}  # fmt: skip
    return {
        "model": files,
        "hardware": hardware_identity(),
        "engines": {name: spec.version() for name, spec in ENGINES.items() if spec.installed()},
        "settings": {
            "workers": config.workers, "threads": config.threads, "context": config.context,
            "openvino_streams": config.openvino.streams, "precisions": list(config.auto.precisions),
            "score_tolerance": config.auto.score_tolerance, "box_tolerance": config.auto.box_tolerance,
            "max_map_drop": config.auto.max_map_drop,
        },
    }  # fmt: skip


def read_cache(path: Path, key: dict[str, Any]) -> Optional[tuple[list[Measured], Measured]]:
    """The cached table and choice for ``key``; None (measure again) when absent, stale or corrupt (one warning)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != CACHE_FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        table = [Measured(**entry) for entry in data["table"]]
        choice = Measured(**data["choice"])
        stored_key = data["key"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("auto: %s is unreadable (%s): measuring again", path, str(error).splitlines()[0][:120])
        return None
    if stored_key != key:
        changed = [part for part in key if stored_key.get(part) != key[part]]
        log.info("auto: the %s changed since the last measurement: measuring again", ", ".join(changed) or "key")
        return None
    return table, choice


def write_cache(path: Path, key: dict[str, Any], table: list[Measured], choice: Measured) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    data = {"format": CACHE_FORMAT, "key": key, "table": [asdict(item) for item in table], "choice": asdict(choice),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


# ---------------------------------------------------------------------------------------------------- measuring


def candidates(config: Any) -> list[tuple[str, str]]:
    """Every installed engine x allowed precision, ONNX Runtime fp32 (the reference) first; MXNet is the cloud's
    reference, not a device engine, and is left out."""
    pairs = [(name, precision) for name, spec in ENGINES.items() if name != "mxnet" and spec.installed()
             for precision in spec.precisions if precision in config.auto.precisions]  # fmt: skip
    return sorted(pairs, key=lambda pair: (pair != ("onnxruntime", "fp32"), pair[1] != "fp32"))


def timed_fps(detector: Detector, batch: np.ndarray, seconds: float) -> float:
    """Forwards per second with :attr:`Detector.concurrency` threads side by side (as the daemon runs them), for
    at most ``seconds``; it stops sooner once :data:`ENOUGH_RUNS` forwards and :data:`ENOUGH_S` have passed (a
    small model needs no 6 s to be measured; a device restarting with a new model waits less)."""
    started = time.perf_counter()
    deadline = started + seconds
    counts = [0] * max(1, detector.concurrency)

    def done(slot: int) -> bool:
        now = time.perf_counter()
        if counts[slot] < MIN_TIMED_RUNS:
            return False
        return now >= deadline or (sum(counts) >= ENOUGH_RUNS and now - started >= ENOUGH_S)

    def loop(slot: int) -> None:
        while not done(slot):
            detector.forward(batch)
            counts[slot] += 1

    threads = [threading.Thread(target=loop, args=(slot,), daemon=True) for slot in range(len(counts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds * 4 + 120)  # bounded: a forward that hangs does not hang the daemon's start
    return sum(counts) / max(1e-9, time.perf_counter() - started)


def measure(info: ModelInfo, config: Any, state_dir: Optional[Path]) -> tuple[list[Measured], Optional[Detector]]:
    """The table of every candidate, and the fastest detector that passed (kept, so it need not be built again)."""
    from edge_runtime.detectors import build_engine

    pairs = candidates(config)
    samples = read_samples(info)
    budget = config.auto.budget_s
    share = budget / max(1, len(pairs))
    log.info("auto: measuring %d engine configuration(s) (%s) on %s for at most %.0f s; the result is cached in"
             " state_dir", len(pairs), ", ".join(f"{e} {p}" for e, p in pairs), info.name, budget)  # fmt: skip
    if samples is None:
        log.warning("auto: %s has no %s (cloud-training convert stores it): reduced precisions cannot be checked"
                    " and are not chosen", info.folder, SAMPLES_FILE)  # fmt: skip
    started = time.monotonic()
    table: list[Measured] = []
    best: Optional[Detector] = None
    best_fps = -1.0
    blank = np.zeros((1, 3, info.image_size, info.image_size), dtype=np.float32)
    for slot, (engine, precision) in enumerate(pairs):
        item = Measured(engine, precision)
        table.append(item)
        remaining = budget - (time.monotonic() - started)
        if remaining <= 0:
            item.gate = "skipped: time budget spent"
            continue
        load_started = time.perf_counter()
        try:
            detector = build_engine(engine, precision, info, config, state_dir)
        except ModelError as error:
            item.gate = f"unavailable: {error}"
            continue
        item.startup_s = round(time.perf_counter() - load_started, 3)
        problem: Optional[str]
        if samples is not None:
            problem = check_against_samples(detector, samples, config.auto.score_tolerance, config.auto.box_tolerance)
        else:
            problem = None if precision == "fp32" else f"no {SAMPLES_FILE} to check it against"
        if problem is None and precision == "int8":
            problem = map_drop_problem(info.folder, precision, config.auto.max_map_drop)
        batch = samples[0][0] if samples is not None else blank
        slot_left = share * (slot + 1) - (time.monotonic() - started)
        item.fps = round(timed_fps(detector, batch, max(0.2, min(slot_left, remaining))), 3)
        item.gate = "pass" if problem is None else f"fail: {problem}"
        if item.passed and item.fps > best_fps:
            best, best_fps = detector, item.fps
    return table, best


def choose_engine(info: ModelInfo, config: Any, state_dir: Path) -> Detector:
    """The daemon's ``auto``: the cached choice for this model, device and install, or a fresh measurement."""
    from edge_runtime.detectors import build_engine

    path = Path(state_dir) / CACHE_FILE
    key = cache_key(info, config)
    cached = read_cache(path, key)
    detector: Optional[Detector]
    if cached is not None:
        table, choice = cached
        detector = build_engine(choice.engine, choice.precision, info, config, state_dir)
        source = f"cached in {path}"
    else:
        table, detector = measure(info, config, state_dir)
        if detector is None:
            raise ModelError("model.backend auto: no engine passed:\n  " + "\n  ".join(item.line() for item in table))
        choice = next(item for item in table if item.passed and item.fps == max(
            entry.fps or 0.0 for entry in table if entry.passed))  # fmt: skip
        write_cache(path, key, table, choice)
        source = "measured now"
    report(table, choice, source)
    detector.choice = {"engine": choice.engine, "precision": choice.precision, "source": source,
                       "table": [asdict(item) for item in table]}  # fmt: skip
    return detector


def report(table: list[Measured], choice: Measured, source: str) -> None:
    """The start-up lines: the table, then the choice; a reduced precision as a warning with its gate's figures."""
    for item in table:
        log.info("auto: %s", item.line())
    line = f"auto: chose {choice.engine} {choice.precision} at {choice.fps:.2f} fps ({source})"
    if choice.precision != "fp32":
        log.warning("%s: REDUCED PRECISION, chosen because its detections equal fp32's on the model's sample frames"
                    " within the gate's tolerances%s; set model.auto.precisions to [\"fp32\"] to forbid it", line,
                    " and its recorded held-out mAP drop is within model.auto.max_map_drop" if choice.precision ==
                    "int8" else "")  # fmt: skip
    else:
        log.info("%s", line)
