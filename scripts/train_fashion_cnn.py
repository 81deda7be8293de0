"""Train lwnn's bundled default model: a small mobile-style CNN on Fashion-MNIST.

    .venv/bin/python scripts/train_fashion_cnn.py

Writes, under lwnn/data/:
  fashion_cnn.onnx     the model (opset 13, input "image", output "probs", dynamic batch)
  fashion_samples.npz  the first 256 test images ("images", float32 [256, 1, 28, 28]) and "labels"
  fashion_cnn.json     seed, epochs, test accuracy (onnxruntime, 10k images), versions, command

Input: float32 [N, 1, 28, 28], grey level / 255 (so in [0, 1]), no mean/std normalisation.
Output: class probabilities [N, 10] (a separate Softmax layer after the logits), class names in
``lwnn.zoo.datasets.FASHION_MNIST_CLASSES``.

The layers are the ones the quantization work needs to see: conv + BatchNorm + ReLU, max pool,
depthwise conv, pointwise conv, average pool, flatten, dense, softmax. Training (AdamW, one-cycle
learning rate, random horizontal flips except in the last epoch) is deterministic: fixed seeds,
torch.use_deterministic_algorithms and 2 threads reproduce the three files byte for byte. It takes
about 80 s on 2 idle cores (8-10 s per epoch); much longer when other processes compete for the
cores, since torch's OpenMP threads then wait on each other.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lwnn  # noqa: E402
from lwnn.zoo.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist  # noqa: E402

OUT_DIR = REPO / "lwnn" / "data"
COMMAND = ".venv/bin/python scripts/train_fashion_cnn.py"
N_SAMPLES = 256


def conv_bn_relu(cin: int, cout: int, k: int, groups: int = 1) -> nn.Sequential:
    # No conv bias: the BatchNorm that follows has its own.
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False)),
        ("bn", nn.BatchNorm2d(cout)),
        ("relu", nn.ReLU()),
    ]))


class FashionCNN(nn.Module):
    """28x28 -> conv16 -> pool -> conv32 -> pool -> dw3x3 -> pw64 -> avgpool 3/2 -> dense 10 -> softmax.

    Attribute names become the ONNX node names (``/conv1/conv/Conv``, ``/fc/Gemm``, ...).
    """

    def __init__(self):
        super().__init__()
        self.conv1 = conv_bn_relu(1, 16, 3)             # 16 x 28 x 28
        self.pool1 = nn.MaxPool2d(2)                    # 16 x 14 x 14
        self.conv2 = conv_bn_relu(16, 32, 3)            # 32 x 14 x 14
        self.pool2 = nn.MaxPool2d(2)                    # 32 x 7 x 7
        self.dw3 = conv_bn_relu(32, 32, 3, groups=32)   # depthwise 3x3
        self.pw3 = conv_bn_relu(32, 64, 1)              # pointwise 1x1, 64 x 7 x 7
        self.avgpool = nn.AvgPool2d(3, stride=2)        # 64 x 3 x 3
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64 * 3 * 3, 10)
        self.softmax = nn.Softmax(dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        for layer in (self.conv1, self.pool1, self.conv2, self.pool2, self.dw3, self.pw3,
                      self.avgpool, self.flatten, self.fc):
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.softmax(self.logits(x))


def to_input(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] -> the model's input, float32 [N, 1, 28, 28] in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[:, None]


def train(model: FashionCNN, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, seed: int,
          x_test: torch.Tensor, y_test: torch.Tensor) -> None:
    rng = np.random.default_rng(seed)
    steps = epochs * (len(x) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for i in range(len(x) // batch):  # drop the last partial batch
            idx = order[i * batch : (i + 1) * batch]
            xb, yb = x[idx], y[idx]
            if epoch < epochs - 1:  # random horizontal flips, except in the last epoch
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = loss_fn(model.logits(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        acc = accuracy_torch(model, x_test, y_test)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / (len(x) // batch):.4f}, "
              f"test top-1 {acc:.2%} ({time.perf_counter() - start:.0f} s)", flush=True)


@torch.no_grad()
def accuracy_torch(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model.logits(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return float((pred == y).float().mean())


def export_onnx(model: FashionCNN) -> bytes:
    model.eval()
    buf = io.BytesIO()
    # TrainingMode.PRESERVE on an eval-mode model keeps BatchNormalization as its own node
    # (EVAL would fold it into the conv) while still exporting inference semantics.
    torch.onnx.export(
        model, (torch.zeros(1, 1, 28, 28),), buf, dynamo=False, opset_version=13,
        input_names=["image"], output_names=["probs"],
        dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}},
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    import onnx

    proto = onnx.load_from_string(buf.getvalue())
    proto.graph.name = "fashion_cnn"
    proto.producer_name = "lwnn/scripts/train_fashion_cnn.py"
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def ort_session(onnx_bytes: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    # Speed should not depend on how many values are denormal floats.
    torch.set_flush_denormal(True)

    train_images, train_labels = load_fashion_mnist("train")
    test_images, test_labels = load_fashion_mnist("test")
    x, y = torch.from_numpy(to_input(train_images)), torch.from_numpy(train_labels.astype(np.int64))
    x_test_np = to_input(test_images)
    x_test, y_test = torch.from_numpy(x_test_np), torch.from_numpy(test_labels.astype(np.int64))

    model = FashionCNN()
    start = time.perf_counter()
    train(model, x, y, args.epochs, args.batch, args.seed, x_test, y_test)
    train_s = time.perf_counter() - start
    model.eval()

    onnx_bytes = export_onnx(model)
    sess = ort_session(onnx_bytes)
    probs_ort = np.concatenate([sess.run(["probs"], {"image": x_test_np[i : i + 1000]})[0]
                                for i in range(0, len(x_test_np), 1000)])
    with torch.no_grad():
        probs_torch = model(x_test).numpy()
    acc_ort = float((probs_ort.argmax(1) == test_labels).mean())
    acc_torch = float((probs_torch.argmax(1) == test_labels).mean())
    max_diff = float(np.abs(probs_ort - probs_torch).max())
    print(f"torch test top-1 {acc_torch:.4f}; onnxruntime {acc_ort:.4f}; "
          f"max |p_ort - p_torch| {max_diff:.2e}")
    assert max_diff < 1e-4, "the exported model disagrees with torch"

    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / "fashion_cnn.onnx"
    model_path.write_bytes(onnx_bytes)
    m = lwnn.load(model_path)
    probs_lwnn = np.concatenate([m.run({"image": x_test_np[i : i + 500]})["probs"]
                                 for i in range(0, len(x_test_np), 500)])
    acc_lwnn = float((probs_lwnn.argmax(1) == test_labels).mean())
    print(f"lwnn test top-1 {acc_lwnn:.4f}; max |p_lwnn - p_ort| {np.abs(probs_lwnn - probs_ort).max():.2e}")

    np.savez_compressed(args.out / "fashion_samples.npz", images=x_test_np[:N_SAMPLES],
                        labels=test_labels[:N_SAMPLES])
    meta = {
        "model": "fashion_cnn.onnx",
        "dataset": "Fashion-MNIST (Debian dataset-fashion-mnist), 60k train / 10k test",
        "input": {"name": "image", "shape": ["batch", 1, 28, 28], "dtype": "float32",
                  "preprocessing": "grey level / 255, in [0, 1]; no mean/std normalisation"},
        "output": {"name": "probs", "shape": ["batch", 10], "meaning": "softmax class probabilities"},
        "classes": list(FASHION_MNIST_CLASSES),
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch,
        "test_accuracy_onnxruntime": round(acc_ort, 4),
        "test_accuracy_torch": round(acc_torch, 4),
        "test_images": int(len(test_labels)),
        "samples": {"file": "fashion_samples.npz", "count": N_SAMPLES, "first_test_images": True},
        "train_seconds": round(train_s, 1),
        "torch_version": torch.__version__,
        "onnx_opset": 13,
        "command": COMMAND,
    }
    (args.out / "fashion_cnn.json").write_text(json.dumps(meta, indent=2) + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(args.out.glob("fashion_*"))}
    print(f"trained in {train_s:.0f} s; wrote {sizes}")


if __name__ == "__main__":
    main()
