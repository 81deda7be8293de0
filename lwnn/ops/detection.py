"""Detection heads: Caffe SSD's PriorBox and DetectionOutput, darknet's YOLOv3 Yolo layer and
YoloOutput (gathering the heads, thresholding and per-class NMS).

None of these has an ONNX op; importers (darknet, caffe) create them, or a ``Graph`` is built
by hand (see ``tests/test_detection_ops.py``).

Detection lists have a data-dependent length, but lwnn plans every shape before a run, so
DetectionOutput and YoloOutput return a fixed ``[1, 1, rows, 7]`` tensor: the detections
(``image_id, label, score, xmin, ymin, xmax, ymax``, coordinates relative to the image) first,
then rows of -1 (Caffe's own marker for "no detection").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lwnn.errors import ShapeError, UnsupportedOpError
from lwnn.ops.base import Op, expect_rank


@dataclass(frozen=True)
class PriorBox(Op):
    """Caffe SSD PriorBox. Inputs: the feature map [N, C, H, W] and the image [N, C, IH, IW]
    (only their shapes are read). Output [1, 2, H*W*num_priors*4]: box corners relative to the
    image, then their variances.

    ``img_h``/``img_w`` (0: the image input's size) and ``step_h``/``step_w`` (0: image size
    over feature size) as Caffe's img_size/step parameters; ``offset`` places box centres.
    """

    type = "PriorBox"
    min_sizes: tuple[float, ...] = ()
    max_sizes: tuple[float, ...] = ()
    aspect_ratios: tuple[float, ...] = ()
    flip: bool = True
    clip: bool = False
    variances: tuple[float, ...] = (0.1,)
    img_h: int = 0
    img_w: int = 0
    step_h: float = 0.0
    step_w: float = 0.0
    offset: float = 0.5

    def resolved_aspect_ratios(self) -> list[float]:
        """1, then each new ratio (and its inverse when ``flip``), duplicates dropped as Caffe does."""
        ratios = [1.0]
        for ar in self.aspect_ratios:
            if any(abs(ar - r) < 1e-6 for r in ratios):
                continue
            ratios.append(float(ar))
            if self.flip:
                ratios.append(1.0 / ar)
        return ratios

    @property
    def num_priors(self) -> int:
        return len(self.resolved_aspect_ratios()) * len(self.min_sizes) + len(self.max_sizes)

    def infer(self, shapes, values):
        feature = shapes[0]
        expect_rank(self, feature, (4,), "feature map")
        if len(shapes) > 1 and shapes[1] is not None:
            expect_rank(self, shapes[1], (4,), "image")
        elif not (self.img_h and self.img_w):
            raise ShapeError("PriorBox needs the image input or img_h and img_w. Received neither.")
        if not self.min_sizes or any(m <= 0 for m in self.min_sizes):
            raise ShapeError(f"PriorBox expects positive min_sizes. Received {self.min_sizes}.")
        if self.max_sizes and len(self.max_sizes) != len(self.min_sizes):
            raise ShapeError(
                f"PriorBox expects one max_size per min_size. Received min_sizes {self.min_sizes}, "
                f"max_sizes {self.max_sizes}."
            )
        if any(mx <= mn for mn, mx in zip(self.min_sizes, self.max_sizes)):
            raise ShapeError(
                f"PriorBox expects max_size > min_size. Received {self.min_sizes}, {self.max_sizes}."
            )
        if len(self.variances) not in (1, 4):
            raise ShapeError(f"PriorBox expects 1 or 4 variances. Received {self.variances}.")
        return [(1, 2, feature[2] * feature[3] * self.num_priors * 4)]


def _detections_shape(batch: int, rows: int) -> tuple:
    return (1, 1, batch * rows, 7)


@dataclass(frozen=True)
class DetectionOutput(Op):
    """Caffe SSD DetectionOutput (CENTER_SIZE code). Inputs: loc [N, P*L*4] (L = 1 when
    ``share_location``, else num_classes), conf [N, P*num_classes] (probabilities), priors
    [1, 2, P*4] (PriorBox's output). Output [1, 1, N*rows, 7] (see the module docstring) with
    ``rows = keep_top_k`` (or every candidate NMS could keep when keep_top_k is -1).

    Per image and class (background skipped): scores above ``confidence_threshold``, the best
    ``top_k``, greedy NMS at ``nms_threshold`` (adapted by ``eta`` as Caffe does); then the best
    ``keep_top_k`` over all classes, listed by class, then by score.
    """

    type = "DetectionOutput"
    num_classes: int = 21
    share_location: bool = True
    background_label_id: int = 0
    nms_threshold: float = 0.45
    top_k: int = 100
    keep_top_k: int = 100
    confidence_threshold: float = 0.01
    eta: float = 1.0
    variance_encoded_in_target: bool = False
    code_type: str = "CENTER_SIZE"  # Caffe's CORNER and CORNER_SIZE codes are not implemented

    def rows(self, num_priors: int) -> int:
        if self.keep_top_k > 0:
            return self.keep_top_k
        classes = self.num_classes - (0 <= self.background_label_id < self.num_classes)
        return classes * (min(self.top_k, num_priors) if self.top_k > 0 else num_priors)

    def infer(self, shapes, values):
        if self.code_type != "CENTER_SIZE":
            raise UnsupportedOpError(
                f"DetectionOutput code_type {self.code_type!r} is not supported. Supported: CENTER_SIZE."
            )
        loc, conf, prior = shapes[0], shapes[1], shapes[2]
        expect_rank(self, prior, (3,), "prior input")
        if prior[1] != 2 or prior[2] % 4:
            raise ShapeError(f"DetectionOutput expects priors of shape [1, 2, P*4]. Received {tuple(prior)}.")
        num_priors = prior[2] // 4
        batch = loc[0]
        loc_classes = 1 if self.share_location else self.num_classes
        want_loc = num_priors * loc_classes * 4
        want_conf = num_priors * self.num_classes
        if math.prod(loc[1:]) != want_loc or math.prod(conf[1:]) != want_conf or conf[0] != batch:
            raise ShapeError(
                f"DetectionOutput with {num_priors} priors and {self.num_classes} classes expects loc "
                f"[{batch}, {want_loc}] and conf [{batch}, {want_conf}]. Received loc {tuple(loc)}, "
                f"conf {tuple(conf)}."
            )
        return [_detections_shape(batch, self.rows(num_priors))]


@dataclass(frozen=True)
class Yolo(Op):
    """Darknet YOLOv3 [yolo] layer decoding. Inputs: the head [N, A*(5+C), H, W] with
    A = len(mask), and optionally the network input (only its shape is read: the network size,
    else ``net_w`` x ``net_h``). Output [N, A*H*W, 5+C], rows in (anchor, row, column) order:
    box centre x, y and size w, h relative to the network input, objectness, class probabilities.

    x = (col + sigmoid(tx)*s - (s-1)/2) / W (s = ``scale_x_y``, 1 in YOLOv3), likewise y;
    w = exp(tw) * anchor_w / net_w, h likewise; objectness and classes through the sigmoid.
    ``anchors`` is the flat (w, h) list of every anchor; ``mask`` picks this head's anchors.
    """

    type = "Yolo"
    anchors: tuple[float, ...] = ()
    mask: tuple[int, ...] = ()
    num_classes: int = 80
    net_w: int = 416
    net_h: int = 416
    scale_x_y: float = 1.0

    def infer(self, shapes, values):
        x = shapes[0]
        expect_rank(self, x, (4,))
        if len(shapes) > 1 and shapes[1] is not None:
            expect_rank(self, shapes[1], (4,), "network input")
        pairs = len(self.anchors) // 2
        if len(self.anchors) % 2 or not self.mask or any(not 0 <= m < pairs for m in self.mask):
            raise ShapeError(
                f"Yolo expects (w, h) anchor pairs and mask indices into them. Received anchors "
                f"{self.anchors}, mask {self.mask}."
            )
        per_anchor = 5 + self.num_classes
        if x[1] != len(self.mask) * per_anchor:
            raise ShapeError(
                f"Yolo with {len(self.mask)} anchors and {self.num_classes} classes expects "
                f"{len(self.mask) * per_anchor} channels. Received shape {tuple(x)}."
            )
        return [(x[0], len(self.mask) * x[2] * x[3], per_anchor)]


@dataclass(frozen=True)
class YoloOutput(Op):
    """Detections from every Yolo head. Inputs: Yolo outputs [N, K_i, 5+C] (any number).
    Output [1, 1, N*keep_top_k, 7] (see the module docstring), sorted by score.

    As darknet: a box is a candidate when its objectness exceeds ``threshold``, and each class
    whose objectness * class probability exceeds ``threshold`` makes one detection of that
    score; per-class greedy NMS at ``nms_threshold``; the best ``keep_top_k`` are kept.
    """

    type = "YoloOutput"
    threshold: float = 0.5
    nms_threshold: float = 0.45
    keep_top_k: int = 100

    def infer(self, shapes, values):
        if not shapes:
            raise ShapeError("YoloOutput expects at least one Yolo head. Received none.")
        first = shapes[0]
        for s in shapes:
            expect_rank(self, s, (3,), "Yolo head")
            if s[0] != first[0] or s[2] != first[2]:
                raise ShapeError(
                    f"YoloOutput heads must agree on batch and 5+classes. Received "
                    f"{', '.join(str(tuple(t)) for t in shapes)}."
                )
        if self.keep_top_k <= 0:
            raise ShapeError(f"YoloOutput expects keep_top_k > 0. Received {self.keep_top_k}.")
        return [_detections_shape(first[0], self.keep_top_k)]
