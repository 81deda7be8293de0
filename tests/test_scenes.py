"""Detection/segmentation scenes (lwnn.zoo.scenes): ground truth matches the pixels, scenes are
deterministic, and the metric functions agree with hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from lwnn.zoo import scenes as sc
from lwnn.zoo.scenes import (
    average_precision,
    box_iou,
    detections_from_rows,
    make_scenes,
    mean_average_precision,
    mean_iou,
)


@pytest.fixture(scope="module")
def train_scenes():
    return make_scenes(24, 96, "train", seed=3)


def test_scenes_shapes_and_ranges(train_scenes):
    s = train_scenes
    assert s.images.shape == (24, 1, 96, 96) and s.images.dtype == np.float32
    assert s.masks.shape == (24, 96, 96) and s.masks.dtype == np.uint8
    assert 0.0 <= s.images.min() and s.images.max() <= 1.0
    assert len(s.boxes) == len(s.labels) == 24
    for b, c in zip(s.boxes, s.labels):
        assert b.shape == (len(c), 4) and 1 <= len(c) <= 3
        assert ((0 <= c) & (c < sc.NUM_CLASSES)).all()
        assert (b[:, :2] >= 0).all() and (b[:, 2:] <= 96).all() and (b[:, 2:] > b[:, :2]).all()


def test_boxes_are_tight_around_each_objects_pixels(train_scenes):
    s = train_scenes
    for image, mask, boxes, labels in zip(s.images[:, 0], s.masks, s.boxes, s.labels):
        covered = np.zeros(mask.shape, bool)
        for (x1, y1, x2, y2), label in zip(boxes.astype(int), labels):
            inside = np.zeros(mask.shape, bool)
            inside[y1:y2, x1:x2] = True
            obj = inside & (mask > 0)
            # Only this object's class inside its box (objects never overlap) ...
            assert set(np.unique(mask[obj])) == {label + 1}
            # ... and its pixels touch all four sides of the box: the box is tight.
            rows, cols = np.flatnonzero(obj.any(1)), np.flatnonzero(obj.any(0))
            assert (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) == (x1, y1, x2, y2)
            covered |= inside
        # Every object pixel lies in a box, and object pixels are the pasted (bright) ones.
        assert not ((mask > 0) & ~covered).any()
        assert (image[mask > 0] > sc.OBJECT_THRESHOLD).all()


def test_scenes_are_deterministic_and_independent_of_count():
    a = make_scenes(5, 64, "test", seed=7)
    b = make_scenes(5, 64, "test", seed=7)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    more = make_scenes(8, 64, "test", seed=7)
    np.testing.assert_array_equal(more.images[:5], a.images)
    tail = make_scenes(3, 64, "test", seed=7, start=5)
    np.testing.assert_array_equal(more.images[5:], tail.images)
    for x, y in zip(a.boxes, more.boxes):
        np.testing.assert_array_equal(x, y)
    other = make_scenes(5, 64, "test", seed=8)
    assert not np.array_equal(other.images, a.images)


def test_train_and_test_scenes_use_different_photographs_and_images():
    assert not set(sc.BACKGROUNDS["train"]) & set(sc.BACKGROUNDS["test"])
    train = make_scenes(2, 64, "train", seed=0)
    test = make_scenes(2, 64, "test", seed=0)
    assert not np.array_equal(train.images, test.images)
    with pytest.raises(ValueError, match="split"):
        make_scenes(1, 64, "valid")


def test_box_iou_hand_computed():
    iou = box_iou(
        np.array([[0, 0, 2, 2], [0, 0, 1, 1]]), np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    )
    np.testing.assert_allclose(iou, [[1 / 7, 1.0, 0.0], [0.0, 0.25, 0.0]])


def test_average_precision_all_point_interpolation():
    # Precision at recall 0.5 is lifted to 1 (the best to its right); then 2/3 up to recall 1.
    assert average_precision([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision([0.25, 0.5], [1.0, 1.0]) == pytest.approx(0.5)
    assert average_precision([], []) == 0.0


def test_mean_average_precision_hand_computed():
    a, b, c = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]
    gt_boxes = [np.array([a]), np.array([b, c])]
    gt_labels = [np.array([0]), np.array([0, 1])]
    detections = [
        (np.array([a, [0, 0, 10, 11]]), np.array([0.9, 0.5]), np.array([0, 0])),  # hit, duplicate
        (np.array([[60, 60, 70, 70], b, [40, 40, 50, 60]]), np.array([0.8, 0.7, 0.6]), np.array([0, 0, 1])),
    ]
    score = mean_average_precision(detections, gt_boxes, gt_labels, 0.5)
    # class 0 ranked: 0.9 TP, 0.8 FP, 0.7 TP, 0.5 FP (duplicate) -> recall .5 .5 1 1, precision 1 .5 2/3 .5
    assert score.ap[0] == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    # class 1: the only detection overlaps by IoU 0.5, which is not above the threshold.
    assert score.ap[1] == 0.0
    assert score.map == pytest.approx((0.5 + 1 / 3) / 2)
    perfect = [(g, np.ones(len(g)), lab) for g, lab in zip(gt_boxes, gt_labels)]
    assert mean_average_precision(perfect, gt_boxes, gt_labels).map == 1.0


def test_mean_iou_hand_computed():
    pred = np.array([[0, 1], [1, 1]])
    target = np.array([[0, 1], [0, 2]])
    score = mean_iou(pred, target, 3)
    # class 0: TP 1, FN 1 -> 1/2; class 1: TP 1, FP 2 -> 1/3; class 2: FN 1 -> 0
    assert score.iou == pytest.approx({0: 0.5, 1: 1 / 3, 2: 0.0})
    assert score.miou == pytest.approx((0.5 + 1 / 3) / 3)
    assert score.pixel_accuracy == 0.5
    assert mean_iou(pred, target, 5).miou == pytest.approx(score.miou)  # absent classes are skipped
    with pytest.raises(ValueError):
        mean_iou(pred, target, 2)


def test_detections_from_rows():
    rows = np.full((1, 1, 4, 7), -1.0, np.float32)
    rows[0, 0, 0] = [0, 3, 0.9, 0.1, 0.2, 0.5, 0.6]
    rows[0, 0, 1] = [1, 1, 0.4, 0.0, 0.0, 1.2, 0.5]
    dets = detections_from_rows(rows, 100, label_offset=1, batch=3)
    assert len(dets) == 3 and len(dets[2][0]) == 0
    np.testing.assert_allclose(dets[0][0], [[10, 20, 50, 60]], atol=1e-4)
    np.testing.assert_array_equal(dets[0][2], [2])
    np.testing.assert_allclose(dets[1][0], [[0, 0, 100, 50]])  # clipped to the image
