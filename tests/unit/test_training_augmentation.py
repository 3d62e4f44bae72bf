"""mxnet-ssd's online augmentation: literal cases, properties, and boxes that still cover their objects' pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_training.training.augmentation import (
    AugmentationConfig,
    crop_boxes,
    expand_boxes,
    flip_boxes,
    pad_labels,
    render,
    sample_crop,
    to_network_input,
    train_transform,
)

BOXES = np.array([[0, 0.1, 0.2, 0.3, 0.6], [1, 0.5, 0.5, 0.9, 0.8]], dtype=np.float32)


def test_expand_places_boxes_on_the_larger_canvas() -> None:
    # ratio 2, image at the right/bottom end of the slack: x' = (x + 1) / 2
    np.testing.assert_allclose(expand_boxes(BOXES, 2.0, 1.0, 1.0)[0], [0, 0.55, 0.6, 0.65, 0.8])
    np.testing.assert_allclose(expand_boxes(BOXES, 2.0, 0.0, 0.0)[1], [1, 0.25, 0.25, 0.45, 0.4])


def test_crop_keeps_boxes_whose_centre_is_inside_and_clips_them() -> None:
    kept = crop_boxes(BOXES, np.array([0.0, 0.0, 0.5, 1.0]))
    np.testing.assert_allclose(kept, [[0, 0.2, 0.2, 0.6, 0.6]])  # box 1's centre (0.7) is outside
    # box 0's centre (x 0.2) lies on the crop's left edge, so it is dropped; box 1 is re-expressed in the patch
    moved = crop_boxes(BOXES, np.array([0.2, 0.3, 1.0, 1.0]))
    np.testing.assert_allclose(moved, [[1, 0.3 / 0.8, 0.2 / 0.7, 0.7 / 0.8, 0.5 / 0.7]], rtol=1e-6)
    clipped = crop_boxes(BOXES, np.array([0.0, 0.3, 0.25, 1.0]))
    np.testing.assert_allclose(clipped, [[0, 0.4, 0.0, 1.0, 0.3 / 0.7]], rtol=1e-6)  # x2 0.3 clipped to the edge


def test_flip_mirrors_x_and_twice_is_identity() -> None:
    np.testing.assert_allclose(flip_boxes(BOXES)[0], [0, 0.7, 0.2, 0.9, 0.6])
    np.testing.assert_allclose(flip_boxes(flip_boxes(BOXES)), BOXES, atol=1e-6)


def test_labels_are_padded_with_minus_one_and_images_are_mean_subtracted_nchw() -> None:
    labels = pad_labels([BOXES, BOXES[:0]], 3)
    assert labels.shape == (2, 3, 5)
    np.testing.assert_allclose(labels[0, :2], BOXES)
    assert (labels[0, 2] == -1).all() and (labels[1] == -1).all()
    image = np.full((4, 4, 3), [123, 117, 104], dtype=np.uint8)
    batch = to_network_input([image])
    assert batch.shape == (1, 3, 4, 4) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, :, 0, 0], [123 - 123.68, 117 - 116.779, 104 - 103.939], atol=1e-4)


def test_sampled_crops_meet_their_overlap_constraint() -> None:
    rng = np.random.default_rng(0)
    config = AugmentationConfig(min_overlaps=(0.7,))
    for _ in range(50):
        patch = sample_crop(BOXES, rng, config)
        if patch is None:
            continue
        assert 0 <= patch[0] < patch[2] <= 1 and 0 <= patch[1] < patch[3] <= 1
        assert len(crop_boxes(BOXES, patch)) >= 1


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(0, 4))
def test_augmented_boxes_stay_valid_and_inside_the_image(seed: int, count: int) -> None:
    rng = np.random.default_rng(seed)
    corners = np.sort(rng.uniform(0, 1, (count, 2, 2)), axis=1)
    boxes = np.concatenate([rng.integers(0, 3, (count, 1)), corners[:, 0, :], corners[:, 1, :]], axis=1)
    boxes = boxes[:, [0, 1, 2, 3, 4]].astype(np.float32)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    out_image, out_boxes = train_transform(image, boxes, 32, rng, AugmentationConfig())
    assert out_image.shape == (32, 32, 3) and out_image.dtype == np.uint8
    assert out_boxes.shape[1] == 5 and len(out_boxes) <= len(boxes)
    assert np.all(out_boxes[:, 1:] >= 0) and np.all(out_boxes[:, 1:] <= 1)
    assert np.all(out_boxes[:, 3] >= out_boxes[:, 1]) and np.all(out_boxes[:, 4] >= out_boxes[:, 2])
    assert set(out_boxes[:, 0].tolist()) <= set(boxes[:, 0].tolist())


@pytest.mark.parametrize("seed", range(8))
def test_an_augmented_box_covers_the_same_object_on_the_augmented_image(seed: int) -> None:
    """Paint each box in its own colour; after expand, crop, flip and resize, the box region is still that colour."""
    colours = {0: (255, 0, 0), 1: (0, 255, 0)}
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    for class_id, x1, y1, x2, y2 in BOXES:
        image[int(y1 * 240) : int(y2 * 240), int(x1 * 320) : int(x2 * 320)] = colours[int(class_id)]
    rng = np.random.default_rng(seed)
    out, boxes = train_transform(image, BOXES, 128, rng, AugmentationConfig(jitter_prob=0.0))
    for class_id, x1, y1, x2, y2 in boxes:
        inner = out[int(np.ceil(y1 * 128)) + 1 : int(y2 * 128) - 1, int(np.ceil(x1 * 128)) + 1 : int(x2 * 128) - 1]
        if inner.size == 0:
            continue
        matching = np.abs(inner.astype(int) - colours[int(class_id)]).sum(axis=-1) < 60
        assert matching.mean() > 0.95


def test_render_without_geometry_is_a_plain_resize() -> None:
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    same = render(image, 8, 1.0, (0.0, 0.0), np.array([0.0, 0.0, 1.0, 1.0]), mirror=False)
    np.testing.assert_array_equal(same, image)
    mirrored = render(image, 8, 1.0, (0.0, 0.0), np.array([0.0, 0.0, 1.0, 1.0]), mirror=True)
    np.testing.assert_array_equal(mirrored, image[:, ::-1])
