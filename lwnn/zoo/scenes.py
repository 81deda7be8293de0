"""Detection and segmentation scenes made of real images, and their task metrics.

A scene is a grey photograph crop from scikit-image's sample images with a few Fashion-MNIST
objects pasted on it at random sizes and positions. Because lwnn pastes the objects itself, every
scene comes with exact ground truth: one box per object, tight around the pixels the object
covers, and a per-pixel class mask. Train scenes take their objects from Fashion-MNIST's training
split and their backgrounds from one set of photographs; test scenes use the test split and other
photographs, so a model is scored on objects and backgrounds it never saw.

Scene ``i`` of a (split, size, seed) depends on nothing else (its random generator is seeded by
``(seed, i)``), so the first 64 test scenes are the same whether 64 or 4,000 are made.

Conventions: images float32 [N, 1, H, W] grey levels in [0, 1]; masks uint8 [N, H, W] with 0 for
background and ``1 + label`` on an object's pixels; boxes float32 [K, 4] ``(x1, y1, x2, y2)`` in
pixels with ``x2``/``y2`` exclusive (a box covering only column 5 has x1 = 5, x2 = 6); labels
int64 [K], Fashion-MNIST classes (``lwnn.zoo.datasets.FASHION_MNIST_CLASSES``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from lwnn.zoo.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

NUM_CLASSES = len(FASHION_MNIST_CLASSES)
# Disjoint photographs for training and test backgrounds (all bundled with scikit-image).
BACKGROUNDS = {
    "train": (
        "camera",
        "coffee",
        "chelsea",
        "coins",
        "moon",
        "rocket",
        "clock",
        "grass",
        "brick",
        "astronaut",
        "hubble_deep_field",
    ),
    "test": ("gravel", "cell", "page", "text", "immunohistochemistry", "cat"),
}
OBJECT_THRESHOLD = 0.1  # a resized object pixel brighter than this belongs to the object
_SPLIT_SALT = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Scenes:
    """A batch of scenes with their ground truth (see the module docstring for conventions)."""

    images: np.ndarray
    masks: np.ndarray
    boxes: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]
    split: str
    size: int
    seed: int

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        objects = sum(len(b) for b in self.boxes)
        return (
            f"Scenes({len(self)} {self.split} scenes of {self.size}x{self.size}, {objects} objects, "
            f"seed {self.seed})"
        )


@functools.lru_cache(maxsize=2)
def _objects(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_fashion_mnist(split)
    return images, labels.astype(np.int64)


@functools.lru_cache(maxsize=2)
def _backgrounds(split: str) -> tuple[np.ndarray, ...]:
    from skimage import data
    from skimage.color import rgb2gray

    out = []
    for name in BACKGROUNDS[split]:
        img = getattr(data, name)()
        img = rgb2gray(img[..., :3]) if img.ndim == 3 else img.astype(np.float64) / 255.0
        out.append(np.ascontiguousarray(img, dtype=np.float64))
    return tuple(out)


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(img, (height, width), order=1, mode="edge", anti_aliasing=True, preserve_range=True)


def _background(rng: np.random.Generator, photos: tuple[np.ndarray, ...], size: int) -> np.ndarray:
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape
    side = int(rng.integers(max(8, min(h, w) // 4), min(h, w) + 1))
    y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    crop = _resize(photo[y : y + side, x : x + side], size, size)
    # Dim and compress the photograph so the (mostly bright) clothes stand out, as a real
    # detector's objects usually do; keep its texture.
    lo, hi = crop.min(), crop.max()
    crop = (crop - lo) / (hi - lo) if hi > lo else np.zeros_like(crop)
    top = rng.uniform(0.35, 0.7)
    return crop * top


def make_scene(
    rng: np.random.Generator,
    size: int,
    split: str = "train",
    max_objects: int = 3,
    scale: tuple[float, float] = (0.25, 0.55),
):
    """One scene: (image float32 [H, W], mask uint8 [H, W], boxes float32 [K, 4], labels int64 [K]).

    1 to ``max_objects`` objects, each resized to a side drawn from ``scale`` times ``size``,
    randomly mirrored, placed where its box (plus a 2-pixel margin) overlaps no earlier box.
    """
    images, labels = _objects(split)
    image = _background(rng, _backgrounds(split), size)
    mask = np.zeros((size, size), np.uint8)
    boxes, classes = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        index = int(rng.integers(len(images)))
        side = int(round(rng.uniform(*scale) * size))
        # float32 before thresholding, so the pasted pixels compare as the returned image does
        obj = _resize(images[index].astype(np.float64) / 255.0, side, side).astype(np.float32)
        if rng.random() < 0.5:
            obj = obj[:, ::-1]
        keep = obj > np.float32(OBJECT_THRESHOLD)
        if not keep.any():
            continue
        rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
        top, left = rows[0], cols[0]
        obj, keep = (
            obj[top : rows[-1] + 1, left : cols[-1] + 1],
            keep[top : rows[-1] + 1, left : cols[-1] + 1],
        )
        h, w = keep.shape
        for _try in range(20):
            y, x = int(rng.integers(size - h + 1)), int(rng.integers(size - w + 1))
            if all(x + w + 2 <= b[0] or b[2] + 2 <= x or y + h + 2 <= b[1] or b[3] + 2 <= y for b in boxes):
                break
        else:
            continue  # no free place for this object
        region = image[y : y + h, x : x + w]
        region[keep] = obj[keep]
        mask[y : y + h, x : x + w][keep] = labels[index] + 1
        boxes.append((x, y, x + w, y + h))
        classes.append(labels[index])
    return (
        image.astype(np.float32),
        mask,
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(classes, np.int64),
    )


def make_scenes(
    count: int,
    size: int = 96,
    split: str = "train",
    seed: int = 0,
    max_objects: int = 3,
    scale: tuple[float, float] = (0.25, 0.55),
    start: int = 0,
) -> Scenes:
    """Scenes ``start .. start+count-1`` of the (split, size, seed) family (see ``make_scene``).

    ``split`` "train" uses Fashion-MNIST's training images and the training photographs, "test"
    the test images and the other photographs.
    """
    if split not in BACKGROUNDS:
        raise ValueError(f"Scene split must be 'train' or 'test'. Received {split!r}.")
    if size < 16:
        raise ValueError(f"Scenes must be at least 16 pixels wide. Received size {size}.")
    images = np.empty((count, 1, size, size), np.float32)
    masks = np.empty((count, size, size), np.uint8)
    boxes, labels = [], []
    for i in range(count):
        rng = np.random.default_rng([seed, _SPLIT_SALT[split], size, start + i])
        images[i, 0], masks[i], b, c = make_scene(rng, size, split, max_objects, scale)
        boxes.append(b)
        labels.append(c)
    return Scenes(images, masks, tuple(boxes), tuple(labels), split, size, seed)


# --- metrics ----------------------------------------------------------------------------------


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[K, M] intersection over union of boxes a [K, 4] and b [M, 4] (x1, y1, x2, y2; areas are
    (x2 - x1) * (y2 - y1), so pixel boxes with exclusive ends need no +1)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision-recall curve with all-point interpolation (PASCAL VOC 2010+):
    precision made monotonically decreasing from the right, summed over the recall steps."""
    r = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    p = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


@dataclass(frozen=True)
class DetectionScore:
    """mAP over the classes that have ground truth, and each such class's AP."""

    map: float
    ap: dict[int, float]
    iou_threshold: float

    def __repr__(self) -> str:
        return f"DetectionScore(mAP@{self.iou_threshold:g} {self.map:.4f} over {len(self.ap)} classes)"


def mean_average_precision(detections, gt_boxes, gt_labels, iou_threshold: float = 0.5) -> DetectionScore:
    """VOC-style mAP. ``detections``: per image (boxes [D, 4], scores [D], labels [D]);
    ``gt_boxes``/``gt_labels``: per image [K, 4] / [K].

    Per class, every image's detections ranked by score; each is a true positive when its best
    overlapping ground-truth box of that class and image has IoU > ``iou_threshold`` (strictly,
    as the VOC devkit) and was not matched before, else a false positive. AP by all-point
    interpolation; the mean is over the classes present in the ground truth.
    """
    if not len(detections) == len(gt_boxes) == len(gt_labels):
        raise ValueError(
            f"mean_average_precision expects one entry per image in each argument. Received "
            f"{len(detections)} detections, {len(gt_boxes)} box and {len(gt_labels)} label entries."
        )
    gt_labels = [np.asarray(g, np.int64).reshape(-1) for g in gt_labels]
    classes = sorted({int(c) for g in gt_labels for c in g})
    ap = {}
    for c in classes:
        ranked = []  # (-score, image, box)
        for i, (boxes, scores, labels) in enumerate(detections):
            labels = np.asarray(labels).reshape(-1)
            for j in np.flatnonzero(labels == c):
                ranked.append((-float(np.asarray(scores).reshape(-1)[j]), i, np.asarray(boxes)[j]))
        ranked.sort(key=lambda d: (d[0], d[1]))
        truth = {i: np.asarray(gt_boxes[i]).reshape(-1, 4)[g == c] for i, g in enumerate(gt_labels)}
        used = {i: np.zeros(len(t), bool) for i, t in truth.items()}
        positives = sum(len(t) for t in truth.values())
        tp = np.zeros(len(ranked))
        for k, (_, i, box) in enumerate(ranked):
            if not len(truth[i]):
                continue
            overlaps = box_iou(box[None], truth[i])[0]
            best = int(np.argmax(overlaps))
            if overlaps[best] > iou_threshold and not used[i][best]:
                used[i][best] = True
                tp[k] = 1
        hits = np.cumsum(tp)
        recall = hits / positives
        precision = hits / np.arange(1, len(ranked) + 1)
        ap[c] = average_precision(recall, precision) if len(ranked) else 0.0
    mean = float(np.mean(list(ap.values()))) if ap else 0.0
    return DetectionScore(mean, ap, iou_threshold)


@dataclass(frozen=True)
class SegmentationScore:
    """mIoU over the classes present in the prediction or the target, and each class's IoU."""

    miou: float
    iou: dict[int, float]
    pixel_accuracy: float

    def __repr__(self) -> str:
        return (
            f"SegmentationScore(mIoU {self.miou:.4f} over {len(self.iou)} classes, pixel accuracy "
            f"{self.pixel_accuracy:.4f})"
        )


def mean_iou(pred: np.ndarray, target: np.ndarray, num_classes: int) -> SegmentationScore:
    """Per-class IoU = TP / (TP + FP + FN) from the confusion matrix summed over every pixel of
    every image; the mean is over the classes that occur in ``pred`` or ``target`` (classes
    absent from both are skipped, as they have no union)."""
    pred, target = (
        np.asarray(pred).reshape(-1).astype(np.int64),
        np.asarray(target).reshape(-1).astype(np.int64),
    )
    if pred.shape != target.shape:
        raise ValueError(
            f"mean_iou expects masks of one shape. Received {pred.size} and {target.size} pixels."
        )
    if pred.size and (min(pred.min(), target.min()) < 0 or max(pred.max(), target.max()) >= num_classes):
        raise ValueError(f"mean_iou expects class ids in [0, {num_classes}).")
    confusion = np.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = {c: float(tp[c] / union[c]) for c in range(num_classes) if union[c] > 0}
    miou = float(np.mean(list(iou.values()))) if iou else 0.0
    accuracy = float(tp.sum() / max(pred.size, 1))
    return SegmentationScore(miou, iou, accuracy)


def detections_from_rows(rows: np.ndarray, size: int, label_offset: int = 0, batch: int | None = None):
    """Per image (boxes [D, 4] in pixels, scores [D], labels [D]) from the [1, 1, R, 7] tensor of
    DetectionOutput / YoloOutput (rows ``image_id, label, score, x1, y1, x2, y2``, coordinates
    relative to the image, -1 rows unused). ``label_offset`` is subtracted from the labels (1 for
    SSD, whose label 0 is the background)."""
    rows = np.asarray(rows, np.float64).reshape(-1, 7)
    rows = rows[rows[:, 0] >= 0]
    count = batch if batch is not None else (int(rows[:, 0].max()) + 1 if len(rows) else 1)
    out = []
    for n in range(count):
        r = rows[rows[:, 0] == n]
        out.append((np.clip(r[:, 3:7], 0.0, 1.0) * size, r[:, 2], r[:, 1].astype(np.int64) - label_offset))
    return out
