"""The report's figures as matplotlib ``Figure`` objects (Agg, no display): the PDF saves them as pages and the HTML
version as images, so both show the same thing.

Colours say what a box is, on every page and in the legend: a true positive green, a false positive red, a missed
true box blue and dashed. Image pages show each box's class and score; a false positive lying over a true box of
another class also names that class ("is blue box").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import numpy as np

from cloud_training.evaluation.analysis import Curve, ImageReview, Recommendation

TP_COLOR = "#1a9850"
FP_COLOR = "#d73027"
MISSED_COLOR = "#2c7bb6"
OUTCOME_COLORS = {"tp": TP_COLOR, "fp": FP_COLOR, "missed": MISSED_COLOR}
OUTCOME_LABELS = {"tp": "true positive", "fp": "false positive", "missed": "missed (true box not found)"}
PAGE_INCHES = (8.27, 6.5)
MAX_IMAGE_SIDE = 640  # pixels kept per report image: enough to see a box, small enough for a light file
PER_PAGE = 6  # classes per curves/histograms page


def new_figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # never a GUI backend (build machines have no display), whatever MPLBACKEND says
    from matplotlib.figure import Figure

    return Figure(figsize=PAGE_INCHES)


def summary_page(summary: Mapping[str, Any], lines: Sequence[str]) -> Any:
    """Page 1: the text of :func:`summary_lines`, monospaced so its table lines up, and AP per class as bars."""
    figure = new_figure()
    model = summary["model"]
    figure.text(0.04, 0.965, f"Evaluation of {model['name']} {model['version']}: mAP {_map_text(summary['mAP'])}",
                fontsize=14, weight="bold", va="top")
    size = 7.4 if len(lines) <= 26 else 6.2
    figure.text(0.04, 0.91, "\n".join(lines), fontsize=size, family="monospace", va="top", linespacing=1.3)
    classes = summary["classes"]
    text_bottom = 0.91 - len(lines) * size * 1.3 / (72 * PAGE_INCHES[1])
    height = min(0.3, 0.05 * len(classes) + 0.04, text_bottom - 0.14)
    if classes and height > 0.06:  # AP per class as bars, under the text when there is room
        axes = figure.add_axes((0.22, text_bottom - 0.07 - height, 0.72, height))
        names = [item["name"] for item in classes]
        values = [item["ap"] or 0.0 for item in classes]
        axes.barh(range(len(classes)), values, color="#4d4d4d", height=0.6)
        for position, value in enumerate(values):
            axes.text(value + 0.01, position, f"{value:.3f}", va="center", fontsize=7)
        axes.set_yticks(range(len(classes)), names, fontsize=7)
        axes.invert_yaxis()
        axes.set_xlim(0, 1.08)
        axes.set_xlabel("AP (VOC07)", fontsize=7)
        axes.tick_params(labelsize=7)
    return figure


def _map_text(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"


def curves_pages(curves: Mapping[int, Curve], recommended: Mapping[int, Recommendation],
                 names: Mapping[int, str]) -> list[Any]:
    """Precision-recall per class, the recommended threshold marked on each."""
    def draw(axes: Any, class_id: int) -> None:
        found = curves[class_id]
        if len(found.scores):
            axes.plot(found.recall, found.precision, color="#333333", linewidth=1.2)
        choice = recommended.get(class_id)
        if choice is not None:
            axes.plot([choice.recall], [choice.precision], "o", color=TP_COLOR)
            axes.annotate(f"≥ {choice.threshold:.2f}", (choice.recall, choice.precision), fontsize=7,
                          textcoords="offset points", xytext=(4, 4))
        axes.set_title(f"{names.get(class_id, class_id)} ({found.positives} true boxes)", fontsize=8)
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.02)
        axes.set_xlabel("recall", fontsize=7)
        axes.set_ylabel("precision", fontsize=7)

    return class_grid_pages(sorted(curves), "Precision-recall per class (VOC07 matching; • recommended threshold)",
                            draw)


def histogram_pages(curves: Mapping[int, Curve], recommended: Mapping[int, Recommendation],
                    names: Mapping[int, str]) -> list[Any]:
    """Scores of true and false positives per class, the recommended threshold as a line."""
    bins = np.linspace(0.0, 1.0, 21)

    def draw(axes: Any, class_id: int) -> None:
        found = curves[class_id]
        axes.hist([found.tp_scores, found.fp_scores], bins=bins, color=[TP_COLOR, FP_COLOR], stacked=False,
                  label=["true positives", "false positives"])
        choice = recommended.get(class_id)
        if choice is not None:
            axes.axvline(choice.threshold, color="#333333", linestyle="--", linewidth=1)
        axes.set_yscale("symlog", linthresh=1)
        axes.set_title(f"{names.get(class_id, class_id)}", fontsize=10)
        axes.set_xlabel("score", fontsize=9)
        axes.set_ylabel("detections (log scale)", fontsize=9)

    return class_grid_pages(sorted(curves), "Scores of true positives (green) and false positives (red)", draw)


def class_grid_pages(class_ids: list[int], title: str, draw: Callable[[Any, int], None]) -> list[Any]:
    """Pages of up to PER_PAGE per-class panels, three a row, each drawn by ``draw(axes, class_id)``."""
    pages = []
    for start in range(0, len(class_ids), PER_PAGE):
        chunk = class_ids[start : start + PER_PAGE]
        figure = new_figure()
        figure.suptitle(title, fontsize=11)
        columns = min(3, len(chunk))
        rows = math.ceil(len(chunk) / columns)
        for position, class_id in enumerate(chunk, start=1):
            axes = figure.add_subplot(rows, columns, position)
            draw(axes, class_id)
            axes.tick_params(labelsize=8)  # 6 was unreadable on a printed page
        figure.tight_layout(rect=(0, 0, 1, 0.94))
        pages.append(figure)
    return pages


def confusion_page(matrix: np.ndarray, names: Mapping[int, str], shown: Mapping[int, float]) -> Any:
    """Counts by true class (rows) and predicted class (columns), background last, at the thresholds shown."""
    figure = new_figure()
    axes = figure.add_subplot(1, 1, 1)
    size = matrix.shape[0]
    labels = [names.get(class_id, f"class_{class_id}") for class_id in range(size - 1)] + ["background"]
    axes.imshow(np.log1p(matrix), cmap="Blues")
    for row in range(size):
        for column in range(size):
            value = int(matrix[row, column])
            if row == size - 1 and column == size - 1:
                continue
            axes.text(column, row, str(value), ha="center", va="center", fontsize=9,
                      color="white" if value > matrix.max() / 2 and value > 0 else "black")
    axes.set_xticks(range(size), labels, rotation=30, ha="right", fontsize=8)
    axes.set_yticks(range(size), labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    thresholds = ", ".join(f"{names.get(c, c)} ≥ {value:.2f}" for c, value in sorted(shown.items()))
    axes.set_title(f"Confusion matrix at the shown thresholds ({thresholds})\n"
                   "background row: spurious detections; background column: missed boxes", fontsize=9)
    figure.tight_layout()
    return figure


def downscaled_rgb(image_bgr: np.ndarray, max_side: int = MAX_IMAGE_SIDE) -> np.ndarray:
    import cv2

    scale = max_side / max(image_bgr.shape[:2])
    if scale < 1.0:
        size = (max(1, round(image_bgr.shape[1] * scale)), max(1, round(image_bgr.shape[0] * scale)))
        image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image_bgr[:, :, ::-1])


def image_page(image_bgr: np.ndarray, review: ImageReview, title: str, names: Mapping[int, str]) -> Any:
    """One image with every box coloured by outcome, labelled with class (and score), and the legend."""
    from matplotlib.patches import Patch, Rectangle

    height, width = image_bgr.shape[:2]
    figure = new_figure()
    axes = figure.add_axes((0.02, 0.1, 0.96, 0.78))
    axes.imshow(downscaled_rgb(image_bgr), extent=(0, width, height, 0), interpolation="antialiased")
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_axis_off()
    for box in review.boxes:
        color = OUTCOME_COLORS[box.outcome]
        x0, x1 = box.corners[0] * width, box.corners[2] * width
        y0, y1 = box.corners[1] * height, box.corners[3] * height
        axes.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=1.8,
                                 linestyle="--" if box.outcome == "missed" else "-"))
        text = names.get(box.class_id, f"class_{box.class_id}")
        if box.score is not None:
            text += f" {box.score:.2f}"
        if box.actual_class is not None:
            text += f" (is {names.get(box.actual_class, box.actual_class)})"
        axes.text(x0, y0 if box.outcome != "missed" else y1, text, color="white", fontsize=7,
                  va="bottom" if box.outcome != "missed" else "top",
                  bbox={"facecolor": color, "alpha": 0.85, "pad": 1, "edgecolor": "none"})
    figure.text(0.02, 0.97, title, fontsize=9, va="top")
    handles = [Patch(facecolor="none", edgecolor=OUTCOME_COLORS[key], linewidth=1.8,
                     linestyle="--" if key == "missed" else "-", label=f"{OUTCOME_LABELS[key]}: {review.count(key)}")
               for key in ("tp", "fp", "missed")]
    figure.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    return figure


def image_title(rank: int, total: int, where: str, review: ImageReview, width: int, height: int,
                error_free: Optional[int] = None) -> str:
    heading = f"worst image {rank} of {total}" if review.errors else f"image {rank} of {total} (no error)"
    text = (f"{heading}: {where}  ({width}x{height})\n"
            f"missed {review.count('missed')}, false positives {review.count('fp')}, "
            f"true positives {review.count('tp')}")
    if error_free is not None:
        text += f"   ({error_free} image(s) had no error)"
    return text
