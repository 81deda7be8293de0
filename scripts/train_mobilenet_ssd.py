"""Train the scaled MobileNet-SSD on lwnn's Fashion-MNIST scenes (lwnn.zoo.scenes).

    .venv/bin/python scripts/train_mobilenet_ssd.py

Writes lwnn/data/models/mobilenet_ssd.onnx and mobilenet_ssd.json.

Architecture (MobileNet-SSD at a 96x96 grey input, channels scaled down): a 3x3 stride-2 conv, six
depthwise separable blocks (3x3 depthwise + 1x1 pointwise, BatchNorm folded at export, ReLU),
an extra 1x1 + 3x3 stride-2 layer, and SSD heads (1x1 convs for box offsets and class scores)
on the 12x12, 6x6 and 3x3 feature maps; class scores through a softmax over 11 classes
(background + 10), flattened as Caffe's mbox_conf_softmax. ONNX outputs: ``loc`` [N, P*4],
``conf`` [N, P*11] and the three head feature maps ``feat1..3`` (PriorBox reads their shapes).
``lwnn.zoo.famous.load_model("mobilenet_ssd")`` appends PriorBox per head, Concat and
DetectionOutput (lwnn.zoo.famous.SSD_HEADS / SSD_DETECTION hold their parameters; P = 846 priors).

Training: SSD's multibox loss (priors matched at IoU >= 0.5 plus each object's best prior, smooth
L1 on centre-size offsets with variances 0.1/0.2, cross-entropy with 3:1 hard negative mining),
AdamW with a one-cycle schedule, fixed seed, one thread: byte-identical on a re-run with the same
torch build. Metric: VOC mAP@0.5 of lwnn's DetectionOutput on held-out test scenes.
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

from lwnn.zoo.famous import SCENE_CLASSES, SCENE_SIZE, SSD_HEADS, load_model, ssd_priors  # noqa: E402
from lwnn.zoo.scenes import box_iou, detections_from_rows, make_scenes, mean_average_precision  # noqa: E402

NAME = "mobilenet_ssd"
COMMAND = ".venv/bin/python scripts/train_mobilenet_ssd.py"
CLASSES = SCENE_CLASSES + 1  # background first
FEATURE_SIZES = (12, 6, 3)
TEST_SUBSET = 64  # the test recomputes mAP on this many test scenes


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)),
                ("bn", nn.BatchNorm2d(cout)),
                ("relu", nn.ReLU()),
            ]
        )
    )


def separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict([("dw", conv_bn(cin, cin, 3, stride, groups=cin)), ("pw", conv_bn(cin, cout, 1))])
    )


class MobileNetSSD(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv0 = conv_bn(1, 16, 3, 2)  # 48x48
        self.conv1 = separable(16, 32, 1)  # 48x48
        self.conv2 = separable(32, 64, 2)  # 24x24
        self.conv3 = separable(64, 64, 1)
        self.conv4 = separable(64, 128, 2)  # 12x12
        self.conv5 = separable(128, 128, 1)  # feat1
        self.conv6 = separable(128, 256, 2)  # 6x6, feat2
        self.conv7_1 = conv_bn(256, 64, 1)
        self.conv7_2 = conv_bn(64, 128, 3, 2)  # 3x3, feat3
        channels = (128, 256, 128)
        anchors = [op.num_priors for _, op in SSD_HEADS]
        # 1x1 heads, as MobileNet-SSD's mbox_loc / mbox_conf layers.
        self.loc = nn.ModuleList(nn.Conv2d(c, a * 4, 1) for c, a in zip(channels, anchors))
        self.conf = nn.ModuleList(nn.Conv2d(c, a * CLASSES, 1) for c, a in zip(channels, anchors))

    def features(self, x):
        for layer in (self.conv0, self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            x = layer(x)
        f1 = x
        f2 = self.conv6(f1)
        f3 = self.conv7_2(self.conv7_1(f2))
        return f1, f2, f3

    def raw(self, x):
        feats = self.features(x)
        loc = torch.cat([h(f).permute(0, 2, 3, 1).flatten(1) for h, f in zip(self.loc, feats)], 1)
        conf = torch.cat([h(f).permute(0, 2, 3, 1).flatten(1) for h, f in zip(self.conf, feats)], 1)
        return loc, conf, feats

    def forward(self, x):
        loc, conf, (f1, f2, f3) = self.raw(x)
        probs = F.softmax(conf.reshape(conf.shape[0], -1, CLASSES), dim=-1).flatten(1)
        return loc, probs, f1, f2, f3


def encode_targets(boxes: tuple, labels: tuple, priors: np.ndarray, variances: np.ndarray):
    """Per image: loc targets [P, 4] (centre-size offsets over variances) and labels [P] (0 background)."""
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    pcx, pcy = priors[:, 0] + pw / 2, priors[:, 1] + ph / 2
    locs = np.zeros((len(boxes), len(priors), 4), np.float32)
    cls = np.zeros((len(boxes), len(priors)), np.int64)
    for i, (b, c) in enumerate(zip(boxes, labels)):
        if not len(b):
            continue
        gt = b / SCENE_SIZE
        iou = box_iou(gt, priors)  # [K, P]
        best_gt = iou.argmax(0)
        best_iou = iou.max(0)
        best_gt[iou.argmax(1)] = np.arange(len(gt))  # each object keeps its best prior
        best_iou[iou.argmax(1)] = 1.0
        g = gt[best_gt]
        gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
        locs[i] = np.stack(
            [
                ((g[:, 0] + gw / 2) - pcx) / pw / variances[:, 0],
                ((g[:, 1] + gh / 2) - pcy) / ph / variances[:, 1],
                np.log(gw / pw) / variances[:, 2],
                np.log(gh / ph) / variances[:, 3],
            ],
            1,
        )
        cls[i] = np.where(best_iou >= 0.5, c[best_gt] + 1, 0)
    return locs, cls


def multibox_loss(loc, conf, loc_t, cls_t):
    pos = cls_t > 0
    num_pos = pos.sum().clamp(min=1).float()
    loc_loss = F.smooth_l1_loss(loc.reshape(*cls_t.shape, 4)[pos], loc_t[pos], reduction="sum")
    ce = F.cross_entropy(conf.reshape(-1, CLASSES), cls_t.reshape(-1), reduction="none").reshape(cls_t.shape)
    neg_rank = ce.detach().masked_fill(pos, -1.0).argsort(1, descending=True).argsort(1)
    neg = neg_rank < (3 * pos.sum(1, keepdim=True))
    conf_loss = ce[pos | neg].sum()
    return (loc_loss + conf_loss) / num_pos


def evaluate(model_lwnn, scenes, batch: int = 32):
    dets = []
    for i in range(0, len(scenes), batch):
        rows = model_lwnn.run({"image": scenes.images[i : i + batch]})["detections"]
        dets += detections_from_rows(
            rows, SCENE_SIZE, label_offset=1, batch=len(scenes.images[i : i + batch])
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
    priors, variances = ssd_priors(FEATURE_SIZES, SCENE_SIZE)
    loc_t, cls_t = encode_targets(train.boxes, train.labels, priors, variances)
    print(f"{train}; {test}; {len(priors)} priors; data in {t_data.seconds:.0f} s", flush=True)
    x = torch.from_numpy(train.images)
    loc_t, cls_t = torch.from_numpy(loc_t), torch.from_numpy(cls_t)

    model = MobileNetSSD()
    steps = args.epochs * (len(x) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps, pct_start=0.15)
    rng = np.random.default_rng(args.seed)
    with Timer() as t_train:
        for epoch in range(args.epochs):
            model.train()
            order = torch.from_numpy(rng.permutation(len(x)))
            total = 0.0
            with Timer() as t_epoch:
                for i in range(len(x) // args.batch):
                    idx = order[i * args.batch : (i + 1) * args.batch]
                    loc, conf, _ = model.raw(x[idx])
                    loss = multibox_loss(loc, conf, loc_t[idx], cls_t[idx])
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
        ["loc", "conf", "feat1", "feat2", "feat3"],
        {
            "image": {0: "batch"},
            "loc": {0: "batch"},
            "conf": {0: "batch"},
            "feat1": {0: "batch"},
            "feat2": {0: "batch"},
            "feat3": {0: "batch"},
        },
        NAME,
        f"lwnn/scripts/train_{NAME}.py",
    )
    with torch.no_grad():
        ref = dict(zip(["loc", "conf"], [t.numpy() for t in model(example)[:2]]))
    got_ort = ort_run(onnx_bytes, {"image": test.images[:8]})
    write_artefacts(NAME, onnx_bytes, {}, args.out)
    import lwnn

    got_lwnn = lwnn.load(args.out / f"{NAME}.onnx").run({"image": test.images[:8]})
    diff_ort = max_abs_diff(ref, {k: got_ort[k] for k in ref})
    diff_lwnn = max_abs_diff({k: got_ort[k] for k in ref}, {k: got_lwnn[k] for k in ref})
    print(f"max |ort - torch| {diff_ort:.2e}; max |lwnn - ort| {diff_lwnn:.2e}")
    assert diff_ort < 1e-4 and diff_lwnn < 1e-4, "the exported model disagrees with torch"

    full = load_model(NAME) if args.out == OUT_DIR else None
    if full is None:
        from lwnn.importers.onnx import import_onnx, read_onnx
        from lwnn.model import Model
        from lwnn.zoo.famous import ssd_graph

        full = Model(ssd_graph(import_onnx(read_onnx(args.out / f"{NAME}.onnx"))))
    with Timer() as t_eval:
        score = evaluate(full, test)
    subset = make_scenes(TEST_SUBSET, SCENE_SIZE, "test", args.seed)
    score_subset = evaluate(full, subset)
    print(
        f"held-out mAP@0.5 (lwnn, {len(test)} test scenes): {score.map:.4f}; first {TEST_SUBSET}: "
        f"{score_subset.map:.4f} ({t_eval.seconds:.0f} s)"
    )
    meta = {
        "model": f"{NAME}.onnx",
        "architecture": "MobileNet-SSD, scaled: conv + 6 depthwise separable blocks + extra layer, "
        "SSD heads on "
        "12x12, 6x6, 3x3 maps; PriorBox/Concat/DetectionOutput appended by lwnn.zoo.famous",
        "input": {
            "name": "image",
            "shape": ["batch", 1, SCENE_SIZE, SCENE_SIZE],
            "dtype": "float32",
            "preprocessing": "lwnn.zoo.scenes images: grey level in [0, 1]",
        },
        "outputs": {
            "loc": "box offsets [N, P*4]",
            "conf": "softmax scores [N, P*11], class 0 = background",
            "feat1..3": "head feature maps (PriorBox inputs)",
        },
        "priors": len(priors),
        "classes": ["background", "Fashion-MNIST 0..9"],
        "data": {
            "train": f"lwnn.zoo.scenes.make_scenes({args.train_scenes}, {SCENE_SIZE}, 'train', "
                     f"seed={args.seed})",
            "test": f"lwnn.zoo.scenes.make_scenes({args.test_scenes}, {SCENE_SIZE}, 'test', "
                    f"seed={args.seed})",
        },
        "metric": "VOC mAP@0.5 (all-point), lwnn DetectionOutput (conf > 0.01, NMS 0.45, keep 100)",
        "test_map50": round(score.map, 4),
        "test_ap50_per_class": {str(k): round(v, 4) for k, v in score.ap.items()},
        "test_subset": {"scenes": TEST_SUBSET, "map50": round(score_subset.map, 6)},
    }
    finish_run(NAME, onnx_bytes, meta, args, t_train.seconds, diff_ort, diff_lwnn, COMMAND)


if __name__ == "__main__":
    main()
