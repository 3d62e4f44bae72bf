"""Training and validation data: manifests in, augmented NCHW batches out, decoded ahead of the trainer.

Images are decoded once (in worker threads, with a progress bar) and kept in memory, downscaled so the longer side is
at most ``cache_side``: the augmentation then costs about a millisecond a sample, and a background thread assembles the
next batches while MXNet computes the current one. The producer stops on one event and every wait is bounded.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from cloud_training.errors import TrainingError
from cloud_training.manifest.io import expand, load_image, read_records
from cloud_training.manifest.records import Record
from cloud_training.progress import progress
from cloud_training.training.augmentation import (
    AugmentationConfig,
    pad_labels,
    to_network_input,
    train_transform,
)

log = logging.getLogger(__name__)
QUEUE_WAIT_SECONDS = 0.5
DECODE_WORKERS = 2


@dataclass(frozen=True)
class Sample:
    """One decoded image (RGB, downscaled) and its boxes (N, 5): class_id, xmin, ymin, xmax, ymax, normalised."""

    where: str
    image: np.ndarray
    boxes: np.ndarray


def record_boxes(record: Record) -> np.ndarray:
    boxes = np.zeros((len(record.boxes), 5), dtype=np.float32)
    for row, box in enumerate(record.boxes):
        boxes[row] = (
            box.class_id,
            box.left / record.width,
            box.top / record.height,
            (box.left + box.width) / record.width,
            (box.top + box.height) / record.height,
        )
    return boxes


def _decode(record: Record, cache_side: int) -> np.ndarray:
    image = load_image(record)  # BGR, checked against image_size
    scale = cache_side / max(image.shape[:2])
    if scale < 1.0:
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def checked_records(
    manifests: Sequence[str], num_classes: int, max_objects: int, label_attribute: str | None = None
) -> list[Record]:
    """Every line of ``manifests``, after checking its classes and box count fit the network."""
    records, _, _ = read_records(expand(list(manifests)), label_attribute, skip_invalid=False)
    if not records:
        raise TrainingError(f"{', '.join(manifests)}: no images")
    for record in records:
        for box in record.boxes:
            if not 0 <= box.class_id < num_classes:
                raise TrainingError(f"{record.where}: class_id {box.class_id} but num_classes is {num_classes}")
        if len(record.boxes) > max_objects:
            raise TrainingError(
                f"{record.where}: {len(record.boxes)} boxes but label_width allows {max_objects}; raise label_width"
            )
    return records


def load_samples(
    manifests: Sequence[str], num_classes: int, max_objects: int, cache_side: int, label_attribute: str | None = None,
    description: str = "decoding",
) -> list[Sample]:
    """Every line of ``manifests`` as a decoded sample, after checking its classes and box count fit the network."""
    records = checked_records(manifests, num_classes, max_objects, label_attribute)
    with ThreadPoolExecutor(DECODE_WORKERS) as pool:
        images = list(progress(pool.map(lambda r: _decode(r, cache_side), records), description, total=len(records),
                               unit="img"))
    return [Sample(r.where, image, record_boxes(r)) for r, image in zip(records, images)]


@dataclass(frozen=True)
class ValidationSample:
    """A validation image as the device's detector feeds it (the original decoded, squashed to ``size`` by the
    resize of :func:`edge_runtime.detectors.base.preprocess`, still BGR) and its ground truth as ``evaluate`` reads
    it."""

    where: str
    image_bgr: np.ndarray
    truth: np.ndarray  # (n, 5) float64 class_id, corners normalised


def load_validation(
    manifests: Sequence[str], num_classes: int, max_objects: int, size: int, label_attribute: str | None = None,
) -> list[ValidationSample]:
    """The validation images prepared once as ``evaluate`` prepares them, so the training log's mAP is its mAP."""
    from cloud_training.evaluation.loop import ground_truth_rows

    records = checked_records(manifests, num_classes, max_objects, label_attribute)

    def decode(record: Record) -> np.ndarray:
        return cv2.resize(load_image(record), (size, size), interpolation=cv2.INTER_LINEAR)

    with ThreadPoolExecutor(DECODE_WORKERS) as pool:
        images = list(progress(pool.map(decode, records), "decoding validation", total=len(records), unit="img"))
    return [ValidationSample(r.where, image, ground_truth_rows(r)) for r, image in zip(records, images)]


def validation_batches(
    samples: Sequence[ValidationSample], batch_size: int, size: int, max_objects: int, mean: Sequence[float]
) -> list[tuple[np.ndarray, np.ndarray, list[np.ndarray], int]]:
    """Validation batches as the device's detector sees images: (data, labels, ground truth rows, real count).

    The data is :func:`edge_runtime.detectors.base.preprocess` of each image; the last batch is padded by repeating its
    first image, and ``real count`` says how many rows are genuine.
    """
    from edge_runtime.detectors.base import preprocess

    batches = []
    for start in range(0, len(samples), batch_size):
        chunk = list(samples[start : start + batch_size])
        real = len(chunk)
        chunk += [chunk[0]] * (batch_size - real)
        data = np.concatenate([preprocess(s.image_bgr, size, mean) for s in chunk])
        labels = pad_labels([s.truth.astype(np.float32) for s in chunk], max_objects)
        batches.append((data, labels, [s.truth for s in chunk[:real]], real))
    return batches


class BatchLoader:
    """Shuffled, augmented training batches of a fixed size, produced by a background thread ``prefetch`` ahead.

    Each epoch covers every sample once; the last batch is topped up from the start of the epoch's order, since the
    bound network has a fixed batch size.
    """

    def __init__(
        self, samples: Sequence[Sample], batch_size: int, size: int, max_objects: int,
        config: AugmentationConfig, seed: int, prefetch: int = 4, workers: int = 1,
    ) -> None:
        if len(samples) < 1:
            raise TrainingError("no training images")
        self.samples = list(samples)
        self.batch_size = batch_size
        self.size = size
        self.max_objects = max_objects
        self.config = config
        self.seed = seed
        self.prefetch = prefetch
        self.workers = workers

    def batches_per_epoch(self) -> int:
        return -(-len(self.samples) // self.batch_size)

    def _make_batch(self, indices: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        seeds = rng.integers(0, 2**63 - 1, size=len(indices))
        pairs = [
            train_transform(self.samples[i].image, self.samples[i].boxes, self.size, np.random.default_rng(s),
                            self.config)
            for i, s in zip(indices, seeds)
        ]
        return to_network_input([p[0] for p in pairs]), pad_labels([p[1] for p in pairs], self.max_objects)

    def epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batches of ``epoch``; the same seed and epoch always give the same batches."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.samples))
        total = self.batches_per_epoch()
        order = np.concatenate([order, order[: total * self.batch_size - len(order)]])
        results: queue.Queue[tuple[np.ndarray, np.ndarray] | BaseException] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def produce() -> None:
            try:
                for index in range(total):
                    batch = self._make_batch(order[index * self.batch_size : (index + 1) * self.batch_size], rng)
                    while not stop.is_set():
                        try:
                            results.put(batch, timeout=QUEUE_WAIT_SECONDS)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            except BaseException as error:  # handed to the consumer, which re-raises it in the trainer's thread
                results.put(error)

        producer = threading.Thread(target=produce, name=f"batches-epoch-{epoch}", daemon=True)
        producer.start()
        try:
            for _ in range(total):
                item = self._next(results, producer)
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            producer.join(timeout=5.0)

    @staticmethod
    def _next(
        results: queue.Queue[tuple[np.ndarray, np.ndarray] | BaseException], producer: threading.Thread
    ) -> tuple[np.ndarray, np.ndarray] | BaseException:
        while True:
            try:
                return results.get(timeout=QUEUE_WAIT_SECONDS)
            except queue.Empty:
                if not producer.is_alive() and results.empty():
                    return TrainingError("the batch producer stopped unexpectedly")
