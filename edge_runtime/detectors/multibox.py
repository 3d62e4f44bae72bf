"""MXNet's ``MultiBoxDetection`` in numpy: class scores + box offsets + anchors in, detection rows out.

Why here and not as ONNX ``NonMaxSuppression`` in the graph: the two are different algorithms. MultiBoxDetection
gives each anchor its single best class, keeps the ``nms_topk`` best anchors over all classes, and suppresses at
IoU >= threshold across classes (``force_suppress``) or within one; ONNX's operator runs NMS per class over every
anchor's score for that class (an anchor can survive for two classes), takes a per-class box limit, and suppresses
at IoU > threshold. Rebuilding MultiBoxDetection's semantics from ONNX operators would need a loop the quantiser and
older runtimes handle badly. In numpy it is one short function, the same for every ONNX backend (fp32, int8, GPU),
tested row for row against MXNet's operator, and cheap: decoding is vectorised and NMS only visits the rows a caller
can still see (``min_score``).

The steps, as in MXNet 1.9's ``multibox_detection.cc``:
1. per anchor: the best non-background class (first maximum), its score; below ``threshold`` it is background;
2. boxes decoded from the anchor (centre/size with the variances), clipped to [0, 1] when ``clip``;
3. valid rows (class >= 0) in anchor order; unless ``nms_threshold`` is outside (0, 1]: stable sort by score
   (descending), keep the first ``nms_topk`` (> 0), then greedy NMS over those;
4. rows ``[class_id, score, xmin, ymin, xmax, ymax]``, every other row all ``-1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np


def decode_boxes(
    loc_pred: np.ndarray, anchors: np.ndarray, variances: Sequence[float], clip: bool = True
) -> np.ndarray:
    """(A, 4) corner boxes from (A*4,) offsets and (A, 4) corner anchors, in float32 as MXNet computes them."""
    offsets = np.asarray(loc_pred, dtype=np.float32).reshape(-1, 4)
    anchor = np.asarray(anchors, dtype=np.float32).reshape(-1, 4)
    vx, vy, vw, vh = (np.float32(value) for value in variances)
    width = anchor[:, 2] - anchor[:, 0]
    height = anchor[:, 3] - anchor[:, 1]
    centre_x = (anchor[:, 0] + anchor[:, 2]) / np.float32(2)
    centre_y = (anchor[:, 1] + anchor[:, 3]) / np.float32(2)
    out_x = offsets[:, 0] * vx * width + centre_x
    out_y = offsets[:, 1] * vy * height + centre_y
    with np.errstate(over="ignore"):  # a huge offset gives inf, as in MXNet's float32 exp; clipping makes it 0 or 1
        half_w = np.exp(offsets[:, 2] * vw) * width / np.float32(2)
        half_h = np.exp(offsets[:, 3] * vh) * height / np.float32(2)
    boxes = np.stack([out_x - half_w, out_y - half_h, out_x + half_w, out_y + half_h], axis=1)
    if clip:
        np.clip(boxes, 0.0, 1.0, out=boxes)
    return boxes


def pairwise_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(B, M) IoU of (B, 4) corner boxes against (M, 4), in float32; 0 where the union is not positive (MXNet's
    CalculateOverlap)."""
    width = np.maximum(np.float32(0), np.minimum(boxes[:, None, 2], others[None, :, 2])
                       - np.maximum(boxes[:, None, 0], others[None, :, 0]))  # fmt: skip
    height = np.maximum(np.float32(0), np.minimum(boxes[:, None, 3], others[None, :, 3])
                        - np.maximum(boxes[:, None, 1], others[None, :, 1]))  # fmt: skip
    inter = width * height
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    other_area = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = (area[:, None] + other_area[None, :]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union <= 0, np.float32(0), inter / union)


NMS_BLOCK = 256  # rows whose IoU against every later row is computed at once: 256 x 6,132 floats is 6 MB at most


def greedy_nms(boxes: np.ndarray, classes: np.ndarray, threshold: np.float32, force_suppress: bool) -> np.ndarray:
    """Which of the score-sorted rows survive greedy NMS: a row suppresses every later row (of its class, unless
    ``force_suppress``) that overlaps it at IoU >= ``threshold``.

    Why blocks: a Python loop of small numpy calls per surviving row cost 9-14 ms a frame on a busy scene (400 rows
    above the threshold, the seed network on every frame), all of it holding the GIL that a many-core device's
    inference threads share; the suppression rows of a block are computed in one numpy call and the loop left per
    row is one boolean AND.
    """
    count = boxes.shape[0]
    alive = np.ones(count, dtype=bool)
    for start in range(0, count, NMS_BLOCK):
        stop = min(count, start + NMS_BLOCK)
        if not alive[start:stop].any():
            continue
        suppresses = pairwise_iou(boxes[start:stop], boxes[start:]) >= threshold
        if not force_suppress:
            suppresses &= classes[start:stop, None] == classes[None, start:]
        for row in range(start, stop):
            if alive[row]:
                alive[row + 1 :] &= ~suppresses[row - start, row + 1 - start :]
    return alive


def multibox_detection(
    cls_prob: np.ndarray,
    loc_pred: np.ndarray,
    anchors: np.ndarray,
    *,
    threshold: float = 0.01,
    clip: bool = True,
    variances: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
    nms_threshold: float = 0.5,
    force_suppress: bool = False,
    nms_topk: int = -1,
    min_score: Optional[float] = None,
) -> np.ndarray:
    """The (A, 6) detection rows of one image from ``cls_prob`` (classes+1, A), ``loc_pred`` (A*4,), ``anchors``.

    ``min_score`` is an optimisation with the same visible result: rows scoring below it are dropped after the
    top-k cut and before NMS. They cannot suppress a row scoring at least ``min_score`` (NMS only lets a row
    suppress the rows sorted after it, which score no higher), so every row at or above ``min_score`` comes out
    exactly as without it; the rest come out as ``-1``.
    """
    probs = np.asarray(cls_prob, dtype=np.float32)
    num_anchors = probs.shape[1]
    out = np.full((num_anchors, 6), -1.0, dtype=np.float32)
    if probs.shape[0] < 2:
        return out
    foreground = probs[1:]
    best = np.argmax(foreground, axis=0)  # first maximum, as MXNet's strict ``>`` scan
    score = foreground[best, np.arange(num_anchors)]
    valid = np.flatnonzero(score >= np.float32(threshold))
    if valid.size == 0:
        return out
    boxes = decode_boxes(np.asarray(loc_pred).reshape(-1, 4)[valid], np.asarray(anchors).reshape(-1, 4)[valid],
                         variances, clip)
    rows = np.empty((valid.size, 6), dtype=np.float32)
    rows[:, 0] = best[valid]
    rows[:, 1] = score[valid]
    rows[:, 2:] = boxes
    if not 0.0 < nms_threshold <= 1.0:  # MXNet then returns the valid rows unsorted, in anchor order
        out[: rows.shape[0]] = rows
        return out
    rows = rows[np.argsort(-rows[:, 1], kind="stable")]
    if 0 < nms_topk < rows.shape[0]:
        rows = rows[:nms_topk]
    visible = rows.shape[0]
    if min_score is not None:
        visible = int(np.searchsorted(-rows[:, 1], -np.float32(min_score), side="right"))
    alive = greedy_nms(rows[:visible, 2:], rows[:visible, 0], np.float32(nms_threshold), force_suppress)
    kept = rows[:visible].copy()
    kept[~alive, 0] = -1.0
    out[:visible] = kept
    return out
