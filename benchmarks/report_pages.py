"""Report time against ``--pages``: the PDF must grow linearly with its image pages (40 pages ≤ 4× 10 pages).

    python -m benchmarks.report_pages [--images 48] [--size 640x480] [--pages 10,40] [--rounds 2]

One evaluation of models/demo on synthetic frames (tests.support.datasets), then ``Report.write_pdf`` with each
``--pages`` value, alternately, ``--rounds`` times; prints each time (best of the rounds) and its ratio to the
first, next to the ratio of the page counts. Drawing the pages and re-encoding their photographs as JPEG are timed
together, as ``evaluate --report`` runs them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cloud_training.commands.evaluate import measure
from cloud_training.evaluation.report import Report

DEMO = Path(__file__).resolve().parents[1] / "models" / "demo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--pages", default="10,40", help="comma-separated --pages values (the first is the base)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    pages = [int(p) for p in args.pages.split(",")]
    width, height = (int(v) for v in args.size.split("x"))
    from tests.support.datasets import write_boxes_dataset

    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_boxes_dataset(Path(tmp) / "data", args.images, seed=5, size=(width, height))
        measured = measure(str(DEMO), str(manifest), None, desc="evaluating")
        best: dict[int, float] = {}
        for round_ in range(args.rounds):
            for count in pages if round_ % 2 == 0 else reversed(pages):
                report = Report(measured.summary, measured.analysis, measured.evaluation, measured.names, count)
                started = time.perf_counter()
                report.write_pdf(str(Path(tmp) / f"report-{count}.pdf"))
                elapsed = time.perf_counter() - started
                best[count] = min(best.get(count, elapsed), elapsed)
                size = (Path(tmp) / f"report-{count}.pdf").stat().st_size
                print(f"round {round_ + 1}: --pages {count}: {elapsed:.2f} s ({size / 1e6:.2f} MB)", flush=True)
        base = pages[0]
        print(f"{'--pages':>8} {'best s':>8} {'time ratio':>11} {'pages ratio':>12}")
        for count in pages:
            print(f"{count:>8} {best[count]:>8.2f} {best[count] / best[base]:>11.2f} {count / base:>12.2f}")


if __name__ == "__main__":
    main()
