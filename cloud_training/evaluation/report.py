"""The evaluation report: one PDF page per validation image with true boxes (green) and predictions (red, labelled).

A page per image, as the seed project's local-inference notebook made, because the point is to page through and see
*which* images fail (a class confused, a box consistently too small, a missed object at the border), which no mAP can
say. Pages are drawn as the evaluation streams, so memory does not grow with the data set; the file is written into a
temporary folder and moved into place (or uploaded) only once complete, so a failed run leaves no partial PDF.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Optional

from cloud_training import storage
from cloud_training.evaluation.loop import ImageOutcome

TRUE_COLOR = "#00c000"
PREDICTED_COLOR = "#e00000"
PAGE_INCHES = (8.27, 6.5)


class PdfReport:
    """A context manager: ``add`` one :class:`ImageOutcome` per page; the PDF reaches ``target`` on a clean exit."""

    def __init__(self, target: str, names: Mapping[int, str], score_threshold: float = 0.5) -> None:
        self.target = target
        self.names = dict(names)
        self.score_threshold = score_threshold
        self.pages = 0
        self._folder: Optional[str] = None
        self._pdf: Any = None

    def __enter__(self) -> PdfReport:
        import matplotlib

        matplotlib.use("Agg")  # never a GUI backend (build machines have no display), whatever MPLBACKEND says
        from matplotlib.backends.backend_pdf import PdfPages

        self._folder = tempfile.mkdtemp(prefix="cloud-training-report-")
        self._pdf = PdfPages(os.path.join(self._folder, "report.pdf"))
        return self

    def add(self, outcome: ImageOutcome) -> None:
        """Draw one image with its true boxes and the predictions scoring at least ``score_threshold``."""
        import cv2
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        record = outcome.record
        width, height = record.width, record.height
        figure = Figure(figsize=PAGE_INCHES)
        axes = figure.add_subplot(1, 1, 1)
        axes.imshow(cv2.cvtColor(outcome.image, cv2.COLOR_BGR2RGB))
        axes.set_axis_off()
        for row in outcome.ground_truth:
            left, top = float(row[1]) * width, float(row[2]) * height
            right, bottom = float(row[3]) * width, float(row[4]) * height
            axes.add_patch(
                Rectangle((left, top), right - left, bottom - top, fill=False, edgecolor=TRUE_COLOR, linewidth=2)
            )
            axes.text(left, bottom, self._name(int(row[0])), color="white", fontsize=7, va="top",
                      bbox={"facecolor": TRUE_COLOR, "alpha": 0.7, "pad": 1, "edgecolor": "none"})
        shown = [item for item in outcome.detections if item.score >= self.score_threshold]
        for item in shown:
            x0, y0, x1, y1 = item.box
            axes.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=PREDICTED_COLOR, linewidth=1.5))
            axes.text(x0, y0, f"{self._name(item.class_id)} {item.score:.2f}", color="white", fontsize=7,
                      va="bottom", bbox={"facecolor": PREDICTED_COLOR, "alpha": 0.7, "pad": 1, "edgecolor": "none"})
        axes.set_title(
            f"{storage.basename(record.resolved_ref)}  ({width}x{height})\n"
            f"true boxes (green): {len(outcome.ground_truth)}   "
            f"predictions ≥ {self.score_threshold:g} (red): {len(shown)}",
            fontsize=9,
        )
        self._pdf.savefig(figure)
        self.pages += 1

    def _name(self, class_id: int) -> str:
        return self.names.get(class_id, f"class_{class_id}")

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        assert self._folder is not None
        try:
            self._pdf.close()
            if exc_type is None:
                storage.put_file(os.path.join(self._folder, "report.pdf"), self.target)
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)
