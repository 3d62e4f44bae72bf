"""mxnet-ssd's online training augmentation as pure functions of (image, boxes, rng).

Boxes are float arrays (N, 5): ``[class_id, xmin, ymin, xmax, ymax]`` normalised to [0, 1]. Images are HxWx3 uint8 RGB.
Each function returns new arrays; the random generator is passed in, so a seed reproduces a batch exactly.
The steps follow the SSD paper as mxnet-ssd implements them: zoom out (expand onto a mean-coloured canvas), a box-aware
random crop (the patch must overlap some object by a sampled minimum IoU, and keeps the objects whose centres it
contains), a horizontal flip, a square resize to ``image_shape`` and photometric distortion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

MEAN_RGB = np.array([123.68, 116.779, 103.939], dtype=np.float32)
INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST)


@dataclass(frozen=True)
class AugmentationConfig:
    """mxnet-ssd's defaults (``train.py``: rand_crop 0.833?, pad up to 4x, mirror 0.5, colour jitter)."""

    crop_prob: float = 5.0 / 6.0
    min_overlaps: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9)
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_aspect: tuple[float, float] = (0.5, 2.0)
    crop_trials: int = 50
    expand_prob: float = 0.5
    max_expand_ratio: float = 4.0
    flip_prob: float = 0.5
    jitter_prob: float = 0.5
    brightness_delta: float = 32.0
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: float = 18.0


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with each of (N, 4) boxes, normalised coordinates (no +1 pixel convention)."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def color_jitter(image: np.ndarray, rng: np.random.Generator, config: AugmentationConfig) -> np.ndarray:
    """Brightness, contrast, saturation and hue, each applied with ``jitter_prob``, as the SSD paper's distortion."""
    out = image.astype(np.float32)
    if rng.random() < config.jitter_prob:
        out += rng.uniform(-config.brightness_delta, config.brightness_delta)
    if rng.random() < config.jitter_prob:
        out *= rng.uniform(*config.contrast_range)
    if rng.random() < config.jitter_prob or rng.random() < config.jitter_prob:
        hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
        if rng.random() < config.jitter_prob:
            hsv[..., 1] *= rng.uniform(*config.saturation_range)
        if rng.random() < config.jitter_prob:
            hsv[..., 0] = (hsv[..., 0] + rng.uniform(-config.hue_delta, config.hue_delta) / 2.0) % 180.0
        out = cv2.cvtColor(np.clip(hsv, 0, [180, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def expand_boxes(boxes: np.ndarray, ratio: float, left: float, top: float) -> np.ndarray:
    """Boxes after placing the image on a canvas ``ratio`` times larger, at fractional offset (left, top)."""
    out = boxes.copy()
    out[:, [1, 3]] = (boxes[:, [1, 3]] + left * (ratio - 1.0)) / ratio
    out[:, [2, 4]] = (boxes[:, [2, 4]] + top * (ratio - 1.0)) / ratio
    return out


def crop_boxes(boxes: np.ndarray, patch: np.ndarray) -> np.ndarray:
    """Boxes seen through ``patch`` (normalised xmin, ymin, xmax, ymax): those whose centre is inside, clipped."""
    px1, py1, px2, py2 = patch
    centres_x = (boxes[:, 1] + boxes[:, 3]) / 2
    centres_y = (boxes[:, 2] + boxes[:, 4]) / 2
    keep = (centres_x > px1) & (centres_x < px2) & (centres_y > py1) & (centres_y < py2)
    out = boxes[keep].copy()
    out[:, [1, 3]] = (np.clip(out[:, [1, 3]], px1, px2) - px1) / (px2 - px1)
    out[:, [2, 4]] = (np.clip(out[:, [2, 4]], py1, py2) - py1) / (py2 - py1)
    return out


def flip_boxes(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    out[:, 1], out[:, 3] = 1.0 - boxes[:, 3], 1.0 - boxes[:, 1]
    return out


def sample_crop(boxes: np.ndarray, rng: np.random.Generator, config: AugmentationConfig) -> np.ndarray | None:
    """A patch meeting a randomly chosen minimum-IoU constraint with some object, or None after ``crop_trials``."""
    min_overlap = float(rng.choice(np.asarray(config.min_overlaps)))
    centres_x = (boxes[:, 1] + boxes[:, 3]) / 2
    centres_y = (boxes[:, 2] + boxes[:, 4]) / 2
    for _ in range(config.crop_trials):
        scale = rng.uniform(*config.crop_scale)
        aspect = rng.uniform(max(config.crop_aspect[0], scale**2), min(config.crop_aspect[1], 1.0 / scale**2))
        w, h = scale * np.sqrt(aspect), scale / np.sqrt(aspect)
        if w > 1.0 or h > 1.0:
            continue
        left, top = rng.uniform(0, 1.0 - w), rng.uniform(0, 1.0 - h)
        patch = np.array([left, top, left + w, top + h])
        if len(boxes) == 0:
            return patch
        inside = (centres_x > patch[0]) & (centres_x < patch[2]) & (centres_y > patch[1]) & (centres_y < patch[3])
        if inside.any() and iou(patch, boxes[:, 1:5]).max() >= min_overlap:
            return patch
    return None


def render(
    image: np.ndarray, size: int, ratio: float, offset: tuple[float, float], patch: np.ndarray, mirror: bool,
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """The size x size view of ``image`` after expand (ratio, offset), crop (patch) and flip, as ONE affine warp.

    Doing the geometry in one resampling step, straight at the output size, keeps a sample to about a millisecond
    however large the frame or the zoom-out canvas would have been.
    """
    height, width = image.shape[:2]
    canvas_w, canvas_h = width * ratio, height * ratio
    x0, y0 = offset[0] * (canvas_w - width), offset[1] * (canvas_h - height)
    scale_x = (patch[2] - patch[0]) * canvas_w / size
    scale_y = (patch[3] - patch[1]) * canvas_h / size
    # output pixel centre (u + 0.5) maps to source coordinate; subtract 0.5 for OpenCV's pixel-centre convention
    shift_x = patch[0] * canvas_w - x0 + 0.5 * scale_x - 0.5
    shift_y = patch[1] * canvas_h - y0 + 0.5 * scale_y - 0.5
    if mirror:
        matrix = np.array([[-scale_x, 0, shift_x + (size - 1) * scale_x], [0, scale_y, shift_y]], dtype=np.float64)
    else:
        matrix = np.array([[scale_x, 0, shift_x], [0, scale_y, shift_y]], dtype=np.float64)
    return cv2.warpAffine(
        image, matrix, (size, size), flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in MEAN_RGB),
    )


def resize_square(image: np.ndarray, size: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Squash to size x size (no letterbox): what the algorithm and the edge runtime do at inference."""
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interpolation)


def train_transform(
    image: np.ndarray, boxes: np.ndarray, size: int, rng: np.random.Generator, config: AugmentationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One training sample: maybe expand, maybe crop, maybe flip, resize, distort. Returns (size x size RGB, boxes)."""
    ratio, offset = 1.0, (0.0, 0.0)
    if rng.random() < config.expand_prob and config.max_expand_ratio > 1.0:
        ratio = float(rng.uniform(1.0, config.max_expand_ratio))
        offset = (float(rng.random()), float(rng.random()))
        boxes = expand_boxes(boxes, ratio, *offset)
    patch = np.array([0.0, 0.0, 1.0, 1.0])
    if rng.random() < config.crop_prob:
        sampled = sample_crop(boxes, rng, config)
        if sampled is not None:
            patch = sampled
            boxes = crop_boxes(boxes, patch)
    mirror = bool(rng.random() < config.flip_prob)
    if mirror:
        boxes = flip_boxes(boxes)
    interpolation = INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))]
    pixels = render(image, size, ratio, offset, patch, mirror, interpolation)
    # float rounding of expand + crop can land a hair outside [0, 1]; a new array, the caller's stays untouched
    boxes = np.concatenate([boxes[:, :1], np.clip(boxes[:, 1:5], 0.0, 1.0)], axis=1)
    return color_jitter(pixels, rng, config), boxes


def to_network_input(images: Sequence[np.ndarray]) -> np.ndarray:
    """Stack size x size RGB uint8 images into NCHW float32 minus the algorithm's mean."""
    batch = np.stack(images).astype(np.float32) - MEAN_RGB
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def pad_labels(boxes_list: Sequence[np.ndarray], max_objects: int) -> np.ndarray:
    """(batch, max_objects, 5) labels, -1 padded, as MultiBoxTarget reads them."""
    labels = np.full((len(boxes_list), max_objects, 5), -1.0, dtype=np.float32)
    for index, boxes in enumerate(boxes_list):
        count = min(len(boxes), max_objects)
        labels[index, :count] = boxes[:count]
    return labels
