"""Many cameras: N sources in one daemon (one model shared) vs N single-source daemons, side by side in one run.

    python -m benchmarks.multi_source [--counts 1,2,4,8] [--seconds 20] [--warmup 8] [--max-fps 5] [--model models/demo]

For each N, two layouts run one after the other on the same video files (640x480 MJPG clips of moving boxes,
looped, paced at ``--max-fps`` each like a camera; 0: as fast as the detector goes): ``one daemon`` (``edge-runtime
run --source V1 ... --source VN``) and ``N daemons`` (one ``edge-runtime run --source Vi`` each). After ``--warmup``
seconds (model load, first frames) the detection lines each source wrote are counted over ``--seconds``; the CPU time
(utime + stime from /proc) of the processes over that window and their RSS at its end are read from /proc.

Printed per N and layout: total fps, per-source fps (min-max and the spread, (max-min)/mean), RSS in MB (summed over
the processes) and CPU in cores; then the ratios one daemon / N daemons.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def write_clip(path: Path, frames: int = 60, size: tuple[int, int] = (640, 480), seed: int = 0) -> Path:
    """A clip of two boxes moving over a grey background (what models/demo was trained to see)."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, size)
    x, y = int(rng.integers(0, 300)), int(rng.integers(0, 200))
    for index in range(frames):
        image = np.full((size[1], size[0], 3), 110, dtype=np.uint8)
        cv2.rectangle(image, (x + index * 3, y), (x + index * 3 + 120, y + 90), (255, 120, 0), -1)
        cv2.rectangle(image, (400 - index * 2, 300), (400 - index * 2 + 80, 380), (0, 220, 255), -1)
        writer.write(image)
    writer.release()
    return path


def start(model: Path, videos: list[Path], out: Path, max_fps: float) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "edge_runtime", "run", "--model", str(model), "--loop", "--publish", "file",
            "--set", f'publish.file.path="{out}"', "--set", "publish.file.max_bytes=10000000000",
            "--status-interval", "0"]  # fmt: skip
    if max_fps > 0:
        args += ["--max-fps", str(max_fps)]
    for video in videos:
        args += ["--source", str(video)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNTIME_")}
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def per_source(outs: list[Path]) -> Counter[str]:
    """Detection lines per source so far (a last line being written is not counted)."""
    counts: Counter[str] = Counter()
    for out in outs:
        if out.exists():
            text = out.read_bytes()
            for line in text[: text.rfind(b"\n") + 1].splitlines():
                start = line.find(b'"source":"')
                if start >= 0:
                    counts[line[start + 10 : line.find(b'"', start + 10)].decode()] += 1
    return counts


def measure(model: Path, videos: list[Path], one: bool, seconds: float, warmup: float, max_fps: float,
            folder: Path) -> dict[str, float]:  # fmt: skip
    groups = [videos] if one else [[video] for video in videos]
    outs = [folder / f"{'one' if one else 'many'}-{len(videos)}-{index}.jsonl" for index in range(len(groups))]
    for out in outs:
        out.unlink(missing_ok=True)
    processes = [start(model, group, out, max_fps) for group, out in zip(groups, outs)]
    try:
        time.sleep(warmup)
        if any(p.poll() is not None for p in processes):
            raise SystemExit(f"a daemon ended early (exit {[p.poll() for p in processes]})")
        before, cpu_before, started = per_source(outs), sum(cpu_seconds(p.pid) for p in processes), time.monotonic()
        time.sleep(seconds)
        after, cpu_after = per_source(outs), sum(cpu_seconds(p.pid) for p in processes)
        elapsed = time.monotonic() - started
        rss = sum(rss_mb(p.pid) for p in processes)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    rates = [(after[str(video)] - before[str(video)]) / elapsed for video in videos]
    mean = sum(rates) / len(rates)
    return {"fps": sum(rates), "min": min(rates), "max": max(rates),
            "spread": (max(rates) - min(rates)) / mean if mean else 0.0, "rss": rss,
            "cpu": (cpu_after - cpu_before) / elapsed}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,2,4,8", help="source counts to measure (comma-separated)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per run")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before the window (model load)")
    parser.add_argument("--max-fps", type=float, default=5.0, help="each source's rate, like a camera (0: unpaced)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "demo")
    args = parser.parse_args(argv)
    counts = [int(text) for text in args.counts.split(",")]
    with tempfile.TemporaryDirectory(prefix="multi-source-") as temp:
        folder = Path(temp)
        videos = [write_clip(folder / f"cam{index}.avi", seed=index) for index in range(max(counts))]
        print(f"model {args.model}, sources at {args.max_fps or 'unpaced'} fps each, {args.seconds:g} s windows"
              f" after {args.warmup:g} s, {os.cpu_count()} CPUs")  # fmt: skip
        header = f"{'N':>2} {'layout':<11} {'total fps':>9} {'per-source fps':>15} {'spread':>7} {'RSS MB':>8}" \
                 f" {'CPU cores':>9}"  # fmt: skip
        print(header)
        for count in counts:
            results = {}
            for one in (True, False):
                layout = "one daemon" if one else f"{count} daemon{'s' if count > 1 else ''}"
                figures = measure(args.model, videos[:count], one, args.seconds, args.warmup, args.max_fps, folder)
                results[one] = figures
                f = figures
                print(f"{count:>2} {layout:<11} {f['fps']:>9.1f} {f['min']:>7.1f}-{f['max']:<7.1f} {f['spread']:>7.1%}"
                      f" {f['rss']:>8.0f} {f['cpu']:>9.2f}", flush=True)  # fmt: skip
            one_run, many = results[True], results[False]
            fps_ratio, rss_ratio = one_run["fps"] / max(many["fps"], 1e-9), one_run["rss"] / many["rss"]
            print(f"{count:>2} one/many    fps {fps_ratio:.2f}x   RSS {rss_ratio:.2f}x"
                  f"   CPU {one_run['cpu'] / max(many['cpu'], 1e-9):.2f}x", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
