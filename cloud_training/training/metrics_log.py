"""Training metrics as SageMaker's object detection algorithm reports them, plus metrics.csv and a PNG plot.

The log lines use the algorithm's own format, so the metric regexes of SageMaker (``validation:mAP``,
``train:cross_entropy``, ``train:smooth_l1``) and any tuning tooling read a local run the same way.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("cloud_training.train")
HOST = "algo-1"


@dataclass
class EpochMetrics:
    epoch: int
    train_cross_entropy: float
    train_smooth_l1: float
    validation_map: float
    learning_rate: float
    seconds: float


class MultiBoxLoss:
    """mxnet-ssd's MultiBoxMetric: mean cross-entropy of the matched anchors and mean smooth L1 per matched anchor."""

    EPS = 1e-8

    def __init__(self) -> None:
        self.cross_entropy = 0.0
        self.smooth_l1 = 0.0
        self.count = 0

    def update(self, cls_prob: np.ndarray, loc_loss: np.ndarray, cls_label: np.ndarray) -> None:
        labels = cls_label.reshape(-1)
        valid = np.where(labels >= 0)[0]
        probs = cls_prob.transpose(0, 2, 1).reshape(-1, cls_prob.shape[1])[valid, labels[valid].astype(np.int64)]
        self.cross_entropy += float(-np.log(probs + self.EPS).sum())
        self.smooth_l1 += float(loc_loss.sum())
        self.count += len(valid)

    def values(self) -> tuple[float, float]:
        count = max(self.count, 1)
        return self.cross_entropy / count, self.smooth_l1 / count


def log_train(epoch: int, batch: int, cross_entropy: float, smooth_l1: float) -> None:
    log.info("#quality_metric: host=%s, epoch=%d, batch=%d train cross_entropy <loss>=(%s)", HOST, epoch, batch,
             cross_entropy)
    log.info("#quality_metric: host=%s, epoch=%d, batch=%d train smooth_l1 <loss>=(%s)", HOST, epoch, batch, smooth_l1)


def log_validation(epoch: int, mean_ap: float) -> None:
    log.info("#quality_metric: host=%s, epoch=%d, validation mAP <score>=(%s)", HOST, epoch, mean_ap)


def log_progress(epoch: int, epochs: int) -> None:
    log.info("#progress_metric: host=%s, completed %d %% of epochs", HOST, int(100 * (epoch + 1) / epochs))


def write_csv(path: Path, history: list[EpochMetrics]) -> None:
    fields = list(asdict(history[0])) if history else list(EpochMetrics.__dataclass_fields__)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=fields)
        writer.writeheader()
        for row in history:
            writer.writerow(asdict(row))
    tmp.replace(path)


def write_plot(path: Path, history: list[EpochMetrics]) -> bool:
    """Loss and validation mAP per epoch as a PNG; False (and a log line) if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no %s (pip install matplotlib)", path.name)
        return False
    from matplotlib.ticker import MaxNLocator

    epochs = [m.epoch for m in history]
    figure, (losses, quality, rate) = plt.subplots(1, 3, figsize=(13, 4))
    losses.plot(epochs, [m.train_cross_entropy for m in history], marker=".", label="train cross_entropy")
    losses.plot(epochs, [m.train_smooth_l1 for m in history], marker=".", label="train smooth_l1")
    losses.set_title("training loss")
    losses.legend()
    quality.plot(epochs, [m.validation_map for m in history], color="tab:green", marker=".", label="validation mAP")
    best = max(history, key=lambda m: m.validation_map) if history else None
    if best is not None:
        quality.annotate(f"best {best.validation_map:.4f} (epoch {best.epoch})", (best.epoch, best.validation_map),
                         textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    quality.set_title("validation mAP (VOC07, as evaluate)")
    quality.set_ylim(0, 1)
    quality.legend()
    rate.plot(epochs, [m.learning_rate for m in history], color="tab:purple", marker=".")
    rate.set_title("learning rate (end of epoch)")
    for axes in (losses, quality, rate):
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    figure.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    tmp.replace(path)
    return True
