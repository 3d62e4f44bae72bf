"""The four offline transforms on literal arrays, and their round trips as properties (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_training.augment.transforms import (
    TRANSFORMS,
    corners_from_ground_truth,
    ground_truth_from_corners,
    parse_names,
    rotate_ccw,
    rotate_cw,
    x_flip,
    y_flip,
)

# a 2x3 image (H=2, W=3) whose pixel values name their position: value = 10*y + x
IMAGE = np.array([[0, 1, 2], [10, 11, 12]], dtype=np.uint8)
BOX = np.array([[1, 0, 3, 1]], dtype=np.float64)  # covers pixels (x=1..2, y=0): values 1 and 2


def test_x_flip_mirrors_columns_and_boxes():
    image, boxes = x_flip(IMAGE, BOX)
    assert image.tolist() == [[2, 1, 0], [12, 11, 10]]
    assert boxes.tolist() == [[0, 0, 2, 1]]  # now covers values 2 and 1


def test_y_flip_mirrors_rows_and_boxes():
    image, boxes = y_flip(IMAGE, BOX)
    assert image.tolist() == [[10, 11, 12], [0, 1, 2]]
    assert boxes.tolist() == [[1, 1, 3, 2]]


def test_cw_rotates_right_and_swaps_size():
    image, boxes = rotate_cw(IMAGE, BOX)
    # clockwise: the left column (0, 10) read bottom-up becomes the top row
    assert image.tolist() == [[10, 0], [11, 1], [12, 2]]
    assert boxes.tolist() == [[1, 1, 2, 3]]  # pixels (x=1, y=1..2): values 1 and 2


def test_ccw_rotates_left_and_swaps_size():
    image, boxes = rotate_ccw(IMAGE, BOX)
    assert image.tolist() == [[2, 12], [1, 11], [0, 10]]
    assert boxes.tolist() == [[0, 0, 1, 2]]  # pixels (x=0, y=0..1): values 2 and 1


def test_color_images_keep_channels():
    image = np.zeros((4, 6, 3), np.uint8)
    image[0, 0] = (1, 2, 3)
    rotated, _ = rotate_cw(image, np.zeros((0, 4)))
    assert rotated.shape == (6, 4, 3)
    assert rotated[0, 3].tolist() == [1, 2, 3]


def test_ground_truth_conversion_round_trips_and_keeps_ints():
    annotations = [{"class_id": 0, "width": 429, "top": 681, "height": 399, "left": 608}]
    corners = corners_from_ground_truth(annotations)
    assert corners.tolist() == [[608, 681, 1037, 1080]]
    assert ground_truth_from_corners(corners, integers=True) == [{"left": 608, "top": 681, "width": 429, "height": 399}]
    assert corners_from_ground_truth([]).shape == (0, 4)


def test_parse_names():
    assert parse_names("x-flip, cw") == ["x-flip", "cw"]
    for bad in ("x-flip,spin", "", "cw,cw"):
        with pytest.raises(ValueError):
            parse_names(bad)


@st.composite
def image_and_boxes(draw):
    width = draw(st.integers(1, 24))
    height = draw(st.integers(1, 24))
    channels = draw(st.sampled_from([1, 3]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    count = draw(st.integers(0, 4))
    boxes = []
    for _ in range(count):
        x0 = draw(st.integers(0, width - 1))
        y0 = draw(st.integers(0, height - 1))
        x1 = draw(st.integers(x0 + 1, width))
        y1 = draw(st.integers(y0 + 1, height))
        boxes.append([x0, y0, x1, y1])
    return image, np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def mask(shape: tuple[int, ...], box: np.ndarray) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = (int(v) for v in box)
    out[y0:y1, x0:x1] = True
    return out


FAST = settings(max_examples=150, deadline=None)


@FAST
@given(image_and_boxes())
def test_flips_twice_are_the_identity(sample):
    image, boxes = sample
    for flip in (x_flip, y_flip):
        again_image, again_boxes = flip(*flip(image, boxes))
        assert np.array_equal(again_image, image)
        assert np.array_equal(again_boxes, boxes)


@FAST
@given(image_and_boxes())
def test_cw_then_ccw_is_the_identity(sample):
    image, boxes = sample
    for first, second in ((rotate_cw, rotate_ccw), (rotate_ccw, rotate_cw)):
        back_image, back_boxes = second(*first(image, boxes))
        assert np.array_equal(back_image, image)
        assert np.array_equal(back_boxes, boxes)


@FAST
@given(image_and_boxes())
def test_four_cw_rotations_are_the_identity(sample):
    image, boxes = sample
    out_image, out_boxes = image, boxes
    for _ in range(4):
        out_image, out_boxes = rotate_cw(out_image, out_boxes)
    assert np.array_equal(out_image, image)
    assert np.array_equal(out_boxes, boxes)


@FAST
@given(image_and_boxes(), st.sampled_from(sorted(TRANSFORMS)))
def test_boxes_stay_inside_the_image_with_their_area(sample, name):
    image, boxes = sample
    new_image, new_boxes = TRANSFORMS[name](image, boxes)
    height, width = new_image.shape[:2]
    assert np.all(new_boxes[:, 0] >= 0) and np.all(new_boxes[:, 1] >= 0)
    assert np.all(new_boxes[:, 2] <= width) and np.all(new_boxes[:, 3] <= height)
    assert np.all(new_boxes[:, 2] > new_boxes[:, 0]) and np.all(new_boxes[:, 3] > new_boxes[:, 1])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    new_area = (new_boxes[:, 2] - new_boxes[:, 0]) * (new_boxes[:, 3] - new_boxes[:, 1])
    assert np.array_equal(area, new_area)
    if name in ("cw", "ccw"):
        assert new_image.shape[:2] == image.shape[1::-1]
    else:
        assert new_image.shape == image.shape


@FAST
@given(image_and_boxes(), st.sampled_from(sorted(TRANSFORMS)))
def test_a_transformed_box_covers_the_same_pixels(sample, name):
    """Draw each box as a mask on the original, transform the mask like the image: it must equal the mask of the
    transformed box, and the image pixels under it must be the same multiset of values."""
    image, boxes = sample
    new_image, new_boxes = TRANSFORMS[name](image, boxes)
    for box, new_box in zip(boxes, new_boxes):
        moved_mask, _ = TRANSFORMS[name](mask(image.shape[:2], box), np.zeros((0, 4)))
        assert np.array_equal(moved_mask, mask(new_image.shape[:2], new_box))
        before = np.sort(image[mask(image.shape[:2], box)], axis=None)
        after = np.sort(new_image[mask(new_image.shape[:2], new_box)], axis=None)
        assert np.array_equal(before, after)
