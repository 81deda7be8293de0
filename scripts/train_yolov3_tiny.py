"""Train the scaled YOLOv3-tiny on lwnn's Fashion-MNIST scenes (lwnn.zoo.scenes).

    .venv/bin/python scripts/train_yolov3_tiny.py

Writes lwnn/data/models/yolov3_tiny.onnx and yolov3_tiny.json.

Architecture: YOLOv3-tiny's layout (lwnn/data/darknet/yolov3-tiny.cfg) at a 96x96 grey input with
fewer filters: six 3x3 conv + BatchNorm (folded at export) + leaky ReLU 0.1 layers with 2x2 max
pools (the last with stride 1 on an edge-padded map, as darknet pools), 3x3 / 1x1 / 3x3 convs, a
1x1 head on the 3x3 map (``head1``, stride 32, anchors 3-5); a route back to the 1x1 conv, a 1x1
conv, 2x nearest upsampling, a route concatenating layer 8 (the 6x6 map), a 3x3 conv and a 1x1
head (``head2``, stride 16, anchors 0-2). Heads are [N, 3*(5+10), H, W] in darknet's channel
order; ``lwnn.zoo.famous.load_model("yolov3_tiny")`` appends a Yolo layer per head and YoloOutput.

Training: YOLOv3's loss (each object assigned to the anchor of best shape IoU among all six, in
the cell holding its centre; BCE on the sigmoid centre offsets and objectness, squared error on
the log size scaled by 2 - w*h, BCE per class; predictions overlapping an object by IoU > 0.7 are
not pushed to background), AdamW with a one-cycle schedule, fixed seed, one thread.
Metric: VOC mAP@0.5 of lwnn's Yolo + YoloOutput (threshold 0.05, NMS 0.45) on held-out scenes.
"""

from __future__ import annotations

import argparse
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from famous_common import (  # noqa: E402
    OUT_DIR,
    Timer,
    deterministic,
    export_onnx,
    finish_run,
    max_abs_diff,
    ort_run,
    write_artefacts,
)

from lwnn.zoo.famous import SCENE_CLASSES, SCENE_SIZE, YOLO_ANCHORS, YOLO_MASKS, yolo_graph  # noqa: E402
from lwnn.zoo.scenes import detections_from_rows, make_scenes, mean_average_precision  # noqa: E402

NAME = "yolov3_tiny"
COMMAND = ".venv/bin/python scripts/train_yolov3_tiny.py"
PER_ANCHOR = 5 + SCENE_CLASSES
STRIDES = (32, 16)
ANCHORS = np.array(YOLO_ANCHORS, np.float32).reshape(-1, 2)
TEST_SUBSET = 64


def cbl(cin: int, cout: int, k: int) -> nn.Sequential:
    """darknet [convolutional] with batch_normalize=1, activation=leaky."""
    return nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(cin, cout, k, 1, k // 2, bias=False)),
                ("bn", nn.BatchNorm2d(cout)),
                ("leaky", nn.LeakyReLU(0.1)),
            ]
        )
    )


class YoloV3Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.l0, self.l2, self.l4, self.l6 = cbl(1, 8, 3), cbl(8, 16, 3), cbl(16, 32, 3), cbl(32, 64, 3)
        self.l8 = cbl(64, 96, 3)  # 6x6, routed into the second head
        self.l10 = cbl(96, 128, 3)  # 3x3
        self.l12 = cbl(128, 128, 3)
        self.l13 = cbl(128, 64, 1)
        self.l14 = cbl(64, 128, 3)
        self.l15 = nn.Conv2d(128, 3 * PER_ANCHOR, 1)
        self.l18 = cbl(64, 32, 1)
        self.l21 = cbl(32 + 96, 64, 3)
        self.l22 = nn.Conv2d(64, 3 * PER_ANCHOR, 1)

    def forward(self, x):
        pool = F.max_pool2d
        x = pool(self.l0(x), 2)
        x = pool(self.l2(x), 2)
        x = pool(self.l4(x), 2)
        x = pool(self.l6(x), 2)
        r8 = self.l8(x)
        x = self.l10(pool(r8, 2))
        x = pool(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2, 1)  # darknet's size-2 stride-1 max pool
        r13 = self.l13(self.l12(x))
        head1 = self.l15(self.l14(r13))
        up = F.interpolate(self.l18(r13), scale_factor=2, mode="nearest")
        head2 = self.l22(self.l21(torch.cat([up, r8], 1)))
        return head1, head2


def build_targets(boxes: tuple, labels: tuple):
    """Per head: (positive mask [N, 3, G, G], box targets [N, 3, G, G, 4] = sigmoid x/y offsets and
    log w/h ratios, scale weights [N, 3, G, G], classes [N, 3, G, G])."""
    n = len(boxes)
    out = []
    for stride in STRIDES:
        g = SCENE_SIZE // stride
        out.append(
            [
                np.zeros((n, 3, g, g), bool),
                np.zeros((n, 3, g, g, 4), np.float32),
                np.zeros((n, 3, g, g), np.float32),
                np.zeros((n, 3, g, g), np.int64),
            ]
        )
    for i, (b, c) in enumerate(zip(boxes, labels)):
        for box, cls in zip(b, c):
            w, h = box[2] - box[0], box[3] - box[1]
            cx, cy = box[0] + w / 2, box[1] + h / 2
            inter = np.minimum(w, ANCHORS[:, 0]) * np.minimum(h, ANCHORS[:, 1])
            best = int(np.argmax(inter / (w * h + ANCHORS.prod(1) - inter)))
            head = next(k for k, mask in enumerate(YOLO_MASKS) if best in mask)
            a = YOLO_MASKS[head].index(best)
            stride = STRIDES[head]
            gx, gy = int(cx // stride), int(cy // stride)
            pos, tgt, scale, cl = out[head]
            pos[i, a, gy, gx] = True
            tgt[i, a, gy, gx] = (
                cx / stride - gx,
                cy / stride - gy,
                np.log(w / ANCHORS[best, 0]),
                np.log(h / ANCHORS[best, 1]),
            )
            scale[i, a, gy, gx] = 2.0 - w * h / SCENE_SIZE**2
            cl[i, a, gy, gx] = cls
    return [[torch.from_numpy(t) for t in head] for head in out]


def gt_tensor(boxes: tuple) -> torch.Tensor:
    """Objects' boxes padded to [N, K, 4] with empty boxes (IoU 0)."""
    k = max(max(len(b) for b in boxes), 1)
    out = np.zeros((len(boxes), k, 4), np.float32)
    for i, b in enumerate(boxes):
        out[i, : len(b)] = b
    return torch.from_numpy(out)


def yolo_loss(heads, targets, gt):
    total = 0.0
    n = heads[0].shape[0]
    for head, (pos, tgt, scale, cls), stride, mask in zip(heads, targets, STRIDES, YOLO_MASKS):
        g = head.shape[-1]
        p = head.reshape(n, 3, PER_ANCHOR, g, g).permute(0, 1, 3, 4, 2)  # [N, 3, G, G, 5+C]
        with torch.no_grad():  # predicted boxes overlapping an object well are not background
            col = torch.arange(g).view(1, 1, 1, g)
            row = torch.arange(g).view(1, 1, g, 1)
            anchors = torch.from_numpy(ANCHORS[list(mask)]).view(1, 3, 1, 1, 2)
            cx = (col + torch.sigmoid(p[..., 0])) * stride
            cy = (row + torch.sigmoid(p[..., 1])) * stride
            wh = torch.exp(p[..., 2:4].clamp(max=6)) * anchors
            pred = torch.stack(
                [cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2], -1
            ).reshape(n, -1, 4)
            lt = torch.maximum(pred[:, :, None, :2], gt[:, None, :, :2])
            rb = torch.minimum(pred[:, :, None, 2:], gt[:, None, :, 2:])
            inter = (rb - lt).clamp(min=0).prod(-1)
            area_p = (pred[..., 2:] - pred[..., :2]).prod(-1)
            area_g = (gt[..., 2:] - gt[..., :2]).prod(-1)
            iou = inter / (area_p[:, :, None] + area_g[:, None, :] - inter + 1e-9)
            ignore = (iou.max(-1).values > 0.7).reshape(pos.shape)
        obj_t = pos.float()
        obj_w = (pos | ~ignore).float()
        total = total + (F.binary_cross_entropy_with_logits(p[..., 4], obj_t, reduction="none") * obj_w).sum()
        if pos.any():
            pp, tt, ss = p[pos], tgt[pos], scale[pos]
            total = (
                total
                + (
                    ss[:, None] * F.binary_cross_entropy_with_logits(pp[:, :2], tt[:, :2], reduction="none")
                ).sum()
            )
            total = total + (ss[:, None] * 0.5 * (pp[:, 2:4] - tt[:, 2:4]) ** 2).sum()
            onehot = F.one_hot(cls[pos], SCENE_CLASSES).float()
            total = total + F.binary_cross_entropy_with_logits(pp[:, 5:], onehot, reduction="sum")
    return total / n


def evaluate(model_lwnn, scenes, batch: int = 32):
    dets = []
    for i in range(0, len(scenes), batch):
        rows = model_lwnn.run({"image": scenes.images[i : i + batch]})["detections"]
        dets += detections_from_rows(
            rows, SCENE_SIZE, label_offset=0, batch=len(scenes.images[i : i + batch])
        )
    return mean_average_precision(dets, scenes.boxes, scenes.labels, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-scenes", type=int, default=3000)
    parser.add_argument("--test-scenes", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    deterministic(args.seed)

    with Timer() as t_data:
        train = make_scenes(args.train_scenes, SCENE_SIZE, "train", args.seed)
        test = make_scenes(args.test_scenes, SCENE_SIZE, "test", args.seed)
    print(f"{train}; {test}; data in {t_data.seconds:.0f} s", flush=True)
    x = torch.from_numpy(train.images)
    targets = build_targets(train.boxes, train.labels)
    gt = gt_tensor(train.boxes)

    model = YoloV3Tiny()
    steps = args.epochs * (len(x) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    rng = np.random.default_rng(args.seed)
    with Timer() as t_train:
        for epoch in range(args.epochs):
            model.train()
            order = torch.from_numpy(rng.permutation(len(x)))
            total = 0.0
            with Timer() as t_epoch:
                for i in range(len(x) // args.batch):
                    idx = order[i * args.batch : (i + 1) * args.batch]
                    loss = yolo_loss(model(x[idx]), [[t[idx] for t in head] for head in targets], gt[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    total += loss.item()
            print(
                f"epoch {epoch + 1}/{args.epochs}: loss {total / (len(x) // args.batch):.4f} "
                f"({t_epoch.seconds:.0f} s)",
                flush=True,
            )
    model.eval()

    example = torch.from_numpy(test.images[:8])
    onnx_bytes = export_onnx(
        model,
        (example,),
        ["image"],
        ["head1", "head2"],
        {"image": {0: "batch"}, "head1": {0: "batch"}, "head2": {0: "batch"}},
        NAME,
        f"lwnn/scripts/train_{NAME}.py",
    )
    with torch.no_grad():
        ref = dict(zip(["head1", "head2"], [t.numpy() for t in model(example)]))
    got_ort = ort_run(onnx_bytes, {"image": test.images[:8]})
    write_artefacts(NAME, onnx_bytes, {}, args.out)
    import lwnn
    from lwnn.importers.onnx import import_onnx, read_onnx
    from lwnn.model import Model

    got_lwnn = lwnn.load(args.out / f"{NAME}.onnx").run({"image": test.images[:8]})
    diff_ort = max_abs_diff(ref, got_ort)
    diff_lwnn = max_abs_diff(got_ort, got_lwnn)
    print(f"max |ort - torch| {diff_ort:.2e}; max |lwnn - ort| {diff_lwnn:.2e}")
    assert diff_ort < 1e-4 and diff_lwnn < 1e-4, "the exported model disagrees with torch"

    full = Model(yolo_graph(import_onnx(read_onnx(args.out / f"{NAME}.onnx"))))
    with Timer() as t_eval:
        score = evaluate(full, test)
    score_subset = evaluate(full, make_scenes(TEST_SUBSET, SCENE_SIZE, "test", args.seed))
    print(
        f"held-out mAP@0.5 (lwnn, {len(test)} test scenes): {score.map:.4f}; first {TEST_SUBSET}: "
        f"{score_subset.map:.4f} ({t_eval.seconds:.0f} s)"
    )
    meta = {
        "model": f"{NAME}.onnx",
        "architecture": "YOLOv3-tiny layout, scaled (8..128 filters): "
        "two heads (3x3 stride 32, 6x6 stride 16), "
        "route + 1x1 conv + upsample; Yolo/YoloOutput appended by lwnn.zoo.famous",
        "input": {
            "name": "image",
            "shape": ["batch", 1, SCENE_SIZE, SCENE_SIZE],
            "dtype": "float32",
            "preprocessing": "lwnn.zoo.scenes images: grey level in [0, 1]",
        },
        "outputs": {
            "head1": f"[N, {3 * PER_ANCHOR}, 3, 3], anchors 3,4,5",
            "head2": f"[N, {3 * PER_ANCHOR}, 6, 6], anchors 0,1,2",
        },
        "anchors": list(YOLO_ANCHORS),
        "masks": [list(m) for m in YOLO_MASKS],
        "classes": "Fashion-MNIST 0..9",
        "data": {
            "train": f"lwnn.zoo.scenes.make_scenes({args.train_scenes}, {SCENE_SIZE}, 'train', "
                     f"seed={args.seed})",
            "test": f"lwnn.zoo.scenes.make_scenes({args.test_scenes}, {SCENE_SIZE}, 'test', "
                    f"seed={args.seed})",
        },
        "metric": "VOC mAP@0.5 (all-point), lwnn Yolo + YoloOutput (threshold 0.05, NMS 0.45, keep 100)",
        "test_map50": round(score.map, 4),
        "test_ap50_per_class": {str(k): round(v, 4) for k, v in score.ap.items()},
        "test_subset": {"scenes": TEST_SUBSET, "map50": round(score_subset.map, 6)},
    }
    finish_run(NAME, onnx_bytes, meta, args, t_train.seconds, diff_ort, diff_lwnn, COMMAND)


if __name__ == "__main__":
    main()
