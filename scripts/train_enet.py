"""Train the scaled ENet segmenter on lwnn's Fashion-MNIST scenes (lwnn.zoo.scenes masks).

    .venv/bin/python scripts/train_enet.py

Writes lwnn/data/models/enet.onnx and enet.json.

    .venv/bin/python scripts/train_enet.py --real

writes instead enet_real.onnx / enet_real.json: ENet at its published size (3x512x512 input,
0.37 M parameters, 20 classes) with seeded, untrained weights and BatchNorm statistics measured on
four 512x512 scenes, for runs of the real architecture (about 20 s).

Architecture: ENet (Paszke et al. 2016) at a 96x96 grey input with fewer channels (16/32/64 instead
of 16/64/128) and fewer bottlenecks: the initial block (3x3 stride-2 conv of 15 filters next to a
2x2 max pool, concatenated, BatchNorm, PReLU); downsampling bottlenecks (main branch: max pool and
zero channel padding; extension: 2x2 stride-2 conv, 3x3 conv, 1x1 expansion); regular, dilated
(2, 4, 8) and asymmetric (5x1 then 1x5) bottlenecks with PReLU; decoder upsampling bottlenecks
(extension: 1x1, 3x3 stride-2 ConvTranspose, 1x1; main: 1x1 conv then 2x nearest upsampling in
place of ENet's max-unpooling with the encoder's pooling indices, which lwnn does not have) with
ReLU; a final 2x2 stride-2 ConvTranspose to 11 class scores (background + 10 Fashion-MNIST
classes). BatchNorm folded into the convolutions at export; spatial dropout only in training.

Training: cross-entropy weighted as ENet does (w_c = 1 / ln(1.02 + p_c), p_c the class's pixel
share in the training masks), AdamW with a one-cycle schedule, fixed seed, one thread.
Metric: mIoU over the 11 classes (lwnn.zoo.scenes.mean_iou) of lwnn's run on held-out test scenes.
"""

from __future__ import annotations

import argparse
import json
import sys
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
    versions,
    write_artefacts,
)

from lwnn.zoo.famous import SCENE_CLASSES, SCENE_SIZE  # noqa: E402
from lwnn.zoo.scenes import make_scenes, mean_iou  # noqa: E402

NAME = "enet"
COMMAND = ".venv/bin/python scripts/train_enet.py"
CLASSES = SCENE_CLASSES + 1
TEST_SUBSET = 64
REAL_SIZE, REAL_CLASSES = 512, 20  # ENet's Cityscapes-style output (19 classes + void)


def bn_act(c: int, relu: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.ReLU() if relu else nn.PReLU(c)]


class Initial(nn.Module):
    def __init__(self, cin: int = 1, cout: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, 2, 1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn, self.act = bn_act(cout, relu=False)

    def forward(self, x):
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class Bottleneck(nn.Module):
    """Regular (3x3), dilated (3x3 with ``dilation``) or asymmetric (``asym``x1 then 1x``asym``)."""

    def __init__(self, c: int, dilation: int = 1, asym: int = 0, relu: bool = False, dropout: float = 0.1):
        super().__init__()
        i = c // 4
        if asym:
            middle = [
                nn.Conv2d(i, i, (asym, 1), padding=(asym // 2, 0), bias=False),
                nn.Conv2d(i, i, (1, asym), padding=(0, asym // 2), bias=False),
            ]
        else:
            middle = [nn.Conv2d(i, i, 3, padding=dilation, dilation=dilation, bias=False)]
        self.ext = nn.Sequential(
            nn.Conv2d(c, i, 1, bias=False),
            *bn_act(i, relu),
            *middle,
            *bn_act(i, relu),
            nn.Conv2d(i, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.Dropout2d(dropout),
        )
        self.act = nn.ReLU() if relu else nn.PReLU(c)

    def forward(self, x):
        return self.act(x + self.ext(x))


class Down(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float = 0.1, internal: int | None = None):
        super().__init__()
        i = internal or (cin // 4 if cin >= 32 else cout // 4)
        self.extra = cout - cin
        self.pool = nn.MaxPool2d(2)
        self.ext = nn.Sequential(
            nn.Conv2d(cin, i, 2, 2, bias=False),
            *bn_act(i, False),
            nn.Conv2d(i, i, 3, padding=1, bias=False),
            *bn_act(i, False),
            nn.Conv2d(i, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(cout)

    def forward(self, x):
        main = F.pad(self.pool(x), (0, 0, 0, 0, 0, self.extra))  # zero channels, as ENet
        return self.act(main + self.ext(x))


class Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        i = cin // 4
        self.main = nn.Sequential(
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.Upsample(scale_factor=2, mode="nearest"),
        )
        self.ext = nn.Sequential(
            nn.Conv2d(cin, i, 1, bias=False),
            *bn_act(i, True),
            nn.ConvTranspose2d(i, i, 3, 2, 1, output_padding=1, bias=False),
            *bn_act(i, True),
            nn.Conv2d(i, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.main(x) + self.ext(x))


class ENet(nn.Module):
    def __init__(self):
        super().__init__()
        self.initial = Initial(1, 16)  # 48x48
        self.stage1 = nn.Sequential(
            Down(16, 32, 0.01), Bottleneck(32, dropout=0.01), Bottleneck(32, dropout=0.01)
        )  # 24x24
        self.stage2 = nn.Sequential(
            Down(32, 64),
            Bottleneck(64),
            Bottleneck(64, dilation=2),
            Bottleneck(64, asym=5),
            Bottleneck(64, dilation=4),
            Bottleneck(64),
            Bottleneck(64, dilation=8),
        )  # 12x12
        self.stage4 = nn.Sequential(Up(64, 32), Bottleneck(32, relu=True))  # 24x24
        self.stage5 = nn.Sequential(Up(32, 16), Bottleneck(16, relu=True))  # 48x48
        self.fullconv = nn.ConvTranspose2d(16, CLASSES, 2, 2)  # 96x96

    def forward(self, x):
        return self.fullconv(self.stage5(self.stage4(self.stage2(self.stage1(self.initial(x))))))


def _stage(c: int) -> list[nn.Module]:
    """ENet's stage 2/3 sequence of bottlenecks (after the downsampling one)."""
    return [
        Bottleneck(c),
        Bottleneck(c, dilation=2),
        Bottleneck(c, asym=5),
        Bottleneck(c, dilation=4),
        Bottleneck(c),
        Bottleneck(c, dilation=8),
        Bottleneck(c, asym=5),
        Bottleneck(c, dilation=16),
    ]


class RealENet(nn.Module):
    """ENet at its published size (Paszke et al. 2016, Table 1): 3-channel input, initial block,
    stage 1 (downsampling to 64 + 4 bottlenecks), stages 2 and 3 (128 channels, dilations 2-16,
    asymmetric 5), decoder stages 4 (64) and 5 (16), full convolution to ``classes``; internal
    channels = output / 4. As in the scaled model, nearest upsampling stands in for max-unpooling."""

    def __init__(self, classes: int = REAL_CLASSES):
        super().__init__()
        self.initial = Initial(3, 16)
        self.stage1 = nn.Sequential(
            Down(16, 64, 0.01, internal=16), *(Bottleneck(64, dropout=0.01) for _ in range(4))
        )
        self.stage2 = nn.Sequential(Down(64, 128, internal=32), *_stage(128))
        self.stage3 = nn.Sequential(*_stage(128))
        self.stage4 = nn.Sequential(Up(128, 64), Bottleneck(64, relu=True), Bottleneck(64, relu=True))
        self.stage5 = nn.Sequential(Up(64, 16), Bottleneck(16, relu=True))
        self.fullconv = nn.ConvTranspose2d(16, classes, 2, 2)

    def forward(self, x):
        for stage in (self.initial, self.stage1, self.stage2, self.stage3, self.stage4, self.stage5):
            x = stage(x)
        return self.fullconv(x)


def write_real(path: Path, seed: int) -> None:
    """The real-size ENet with seeded, untrained weights, its BatchNorm statistics measured on four
    512x512 scenes (so activations have realistic ranges), exported like the scaled model."""
    deterministic(seed)
    model = RealENet()
    images = make_scenes(4, REAL_SIZE, "train", seed, max_objects=6, scale=(0.1, 0.35)).images
    x = torch.from_numpy(np.repeat(images, 3, axis=1))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(x)
    onnx_bytes = export_onnx(
        model,
        (x[:1],),
        ["image"],
        ["scores"],
        {"image": {0: "batch"}, "scores": {0: "batch"}},
        "enet_real",
        "lwnn/scripts/train_enet.py --real",
    )
    with torch.no_grad():
        diff = max_abs_diff(
            {"scores": model.eval()(x[:1]).numpy()}, ort_run(onnx_bytes, {"image": x[:1].numpy()})
        )
    assert diff < 1e-3, diff
    params = sum(p.numel() for p in model.parameters())
    meta = {
        "model": path.name,
        "architecture": "ENet at its published size (3x512x512 input, 16/64/128 channels, stages 1-5), "
        "nearest upsampling instead of max-unpooling; untrained seeded weights, BatchNorm "
        "statistics from 4 lwnn.zoo.scenes images (grey repeated to 3 channels)",
        "input": {"name": "image", "shape": ["batch", 3, REAL_SIZE, REAL_SIZE], "dtype": "float32"},
        "output": {"name": "scores", "shape": ["batch", REAL_CLASSES, REAL_SIZE, REAL_SIZE]},
        "parameters": params,
        "seed": seed,
        "trained": False,
        "max_abs_diff": {"onnxruntime_vs_torch": diff},
        "versions": versions(),
        "onnx_opset": 13,
        "command": COMMAND + " --real",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_bytes)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes, {params} parameters); max |ort - torch| {diff:.2e}")


def predict(model_lwnn, images: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate(
        [
            model_lwnn.run({"image": images[i : i + batch]})["scores"].argmax(1)
            for i in range(0, len(images), batch)
        ]
    ).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-scenes", type=int, default=2000)
    parser.add_argument("--test-scenes", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument(
        "--real",
        action="store_true",
        help="write the real-size untrained ENet (enet_real.onnx) instead of training",
    )
    args = parser.parse_args()
    if args.real:
        write_real(args.out / "enet_real.onnx", args.seed)
        return
    deterministic(args.seed)

    with Timer() as t_data:
        train = make_scenes(args.train_scenes, SCENE_SIZE, "train", args.seed)
        test = make_scenes(args.test_scenes, SCENE_SIZE, "test", args.seed)
    share = np.bincount(train.masks.reshape(-1), minlength=CLASSES) / train.masks.size
    weights = torch.tensor(1.0 / np.log(1.02 + share), dtype=torch.float32)
    print(
        f"{train}; {test}; class weights {np.round(weights.numpy(), 2)}; data in {t_data.seconds:.0f} s",
        flush=True,
    )
    x, y = torch.from_numpy(train.images), torch.from_numpy(train.masks.astype(np.int64))

    model = ENet()
    steps = args.epochs * (len(x) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=2e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps, pct_start=0.15)
    rng = np.random.default_rng(args.seed)
    with Timer() as t_train:
        for epoch in range(args.epochs):
            model.train()
            order = torch.from_numpy(rng.permutation(len(x)))
            total = 0.0
            with Timer() as t_epoch:
                for i in range(len(x) // args.batch):
                    idx = order[i * args.batch : (i + 1) * args.batch]
                    loss = F.cross_entropy(model(x[idx]), y[idx], weight=weights)
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
        ["scores"],
        {"image": {0: "batch"}, "scores": {0: "batch"}},
        NAME,
        f"lwnn/scripts/train_{NAME}.py",
    )
    with torch.no_grad():
        ref = {"scores": model(example).numpy()}
    got_ort = ort_run(onnx_bytes, {"image": test.images[:8]})
    write_artefacts(NAME, onnx_bytes, {}, args.out)
    import lwnn

    full = lwnn.load(args.out / f"{NAME}.onnx")
    got_lwnn = full.run({"image": test.images[:8]})
    diff_ort = max_abs_diff(ref, got_ort)
    diff_lwnn = max_abs_diff(got_ort, got_lwnn)
    print(f"max |ort - torch| {diff_ort:.2e}; max |lwnn - ort| {diff_lwnn:.2e}")
    assert diff_ort < 1e-3 and diff_lwnn < 1e-3, "the exported model disagrees with torch"

    with Timer() as t_eval:
        score = mean_iou(predict(full, test.images), test.masks, CLASSES)
    subset = make_scenes(TEST_SUBSET, SCENE_SIZE, "test", args.seed)
    score_subset = mean_iou(predict(full, subset.images), subset.masks, CLASSES)
    print(
        f"held-out mIoU (lwnn, {len(test)} test scenes): {score.miou:.4f}, pixel accuracy "
        f"{score.pixel_accuracy:.4f}; first {TEST_SUBSET}: {score_subset.miou:.4f} ({t_eval.seconds:.0f} s)"
    )
    meta = {
        "model": f"{NAME}.onnx",
        "architecture": "ENet, scaled (16/32/64 channels): initial block, "
        "downsampling/regular/dilated/asymmetric "
        "bottlenecks with PReLU, upsampling bottlenecks (nearest upsampling instead of max-unpool), "
        "final ConvTranspose",
        "input": {
            "name": "image",
            "shape": ["batch", 1, SCENE_SIZE, SCENE_SIZE],
            "dtype": "float32",
            "preprocessing": "lwnn.zoo.scenes images: grey level in [0, 1]",
        },
        "output": {
            "name": "scores",
            "shape": ["batch", CLASSES, SCENE_SIZE, SCENE_SIZE],
            "meaning": "class scores (argmax over axis 1 = mask: 0 background, 1 + Fashion-MNIST class)",
        },
        "data": {
            "train": f"lwnn.zoo.scenes.make_scenes({args.train_scenes}, {SCENE_SIZE}, 'train', "
                     f"seed={args.seed})",
            "test": f"lwnn.zoo.scenes.make_scenes({args.test_scenes}, {SCENE_SIZE}, 'test', "
                    f"seed={args.seed})",
        },
        "metric": "mIoU over 11 classes (background included), confusion summed over all test pixels",
        "test_miou": round(score.miou, 4),
        "test_pixel_accuracy": round(score.pixel_accuracy, 4),
        "test_iou_per_class": {str(k): round(v, 4) for k, v in score.iou.items()},
        "test_subset": {"scenes": TEST_SUBSET, "miou": round(score_subset.miou, 6)},
    }
    finish_run(NAME, onnx_bytes, meta, args, t_train.seconds, diff_ort, diff_lwnn, COMMAND)


if __name__ == "__main__":
    main()
