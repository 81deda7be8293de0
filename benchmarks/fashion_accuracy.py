"""Top-1 of the bundled Fashion-MNIST CNN on the 10,000 test images: float against s8, q8 and
q16 with every calibration method (calibrated on 1,000 training images).

    .venv/bin/python benchmarks/fashion_accuracy.py            # print the table
    .venv/bin/python benchmarks/fashion_accuracy.py --write    # ... and put it in README.md

Targets (Step 2): s8 within 1 point of float with the best method, q8 within 2, q16 within 0.3.
"""

from __future__ import annotations

import argparse
import re
import time
import warnings
from pathlib import Path

import numpy as np

import lwnn
from lwnn import data
from lwnn.zoo import datasets

README = Path(__file__).resolve().parents[1] / "README.md"
# (row label, scheme, extra quantize() arguments)
SCHEMES = (("s8", "s8", {}), ("q8", "q8", {}), ("q16", "q16", {}),
           ("q16, LWNN headroom", "q16", {"q16_headroom": "lwnn"}),
           ("s8, unfolded", "s8", {"fold": False}), ("q8, unfolded", "q8", {"fold": False}),
           ("q8, link_q", "q8", {"link_q": True}),
           ("q16, LWNN headroom, link_q", "q16", {"q16_headroom": "lwnn", "link_q": True}))
METHODS = ("minmax", "percentile", "kl", "mse")


def images(split: str, count: int | None = None):
    x, y = datasets.load_fashion_mnist(split)
    x = (x[:count, None].astype(np.float32) / 255.0) if count else x[:, None].astype(np.float32) / 255.0
    return x, y[: len(x)]


def top1(run, x, labels, batch: int = 1000) -> float:
    hits = 0
    for i in range(0, len(x), batch):
        hits += int((run({"image": x[i : i + batch]})["probs"].argmax(axis=1) == labels[i : i + batch]).sum())
    return 100.0 * hits / len(x)


def measure(rows=SCHEMES) -> tuple[float, dict, dict, tuple]:
    model = lwnn.load(data.default_model_path())
    calib, _ = images("train", 1000)
    test_x, test_y = images("test")
    float_acc = top1(model.run, test_x, test_y)
    results, overflow = {}, {}
    for label, scheme, extra in rows:
        for method in METHODS:
            start = time.perf_counter()
            q = lwnn.quantize(model, {"image": calib}, scheme, method, batch_size=250, progress=False,
                              **extra)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # overflow is reported in the table's last column
                results[label, method] = top1(q.run, test_x, test_y)
            overflow[label] = max(overflow.get(label, 0), sum(q.overflow.values()))
            integer = sum(p.runtime != "cpu/float" for p in q.plan())
            seconds = time.perf_counter() - start
            print(f"{label:18s} {method:10s} {results[label, method]:6.2f}%  "
                  f"({integer}/{len(q.plan())} layers integer, {seconds:.1f} s)", flush=True)
    return float_acc, results, overflow, rows


def markdown(float_acc: float, results: dict, overflow: dict, rows=SCHEMES) -> str:
    lines = ["| scheme | " + " | ".join(METHODS) + " | best - float | int32 overflows (max over methods) |",
             "| - |" + " -: |" * (len(METHODS) + 2)]
    lines.append(f"| float | {float_acc:.2f} |" + " |" * (len(METHODS) + 1))
    for label, _, _ in rows:
        row = [results[label, m] for m in METHODS]
        cells = " | ".join(f"{v:.2f}" for v in row)
        lines.append(f"| {label} | {cells} | {max(row) - float_acc:+.2f} | {overflow[label]} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="put the table in README.md")
    parser.add_argument("--only", nargs="+", help="row labels to measure (default: all)")
    args = parser.parse_args(argv)
    rows = tuple(r for r in SCHEMES if not args.only or r[0] in args.only)
    if args.write and len(rows) < len(SCHEMES):
        raise SystemExit("--write needs every row: leave out --only")
    table = markdown(*measure(rows))
    print("\n" + table)
    if args.write:
        text = README.read_text()
        new = re.sub(r"(<!-- fashion-accuracy:begin -->\n).*?(\n<!-- fashion-accuracy:end -->)",
                     lambda m: m[1] + table + m[2], text, flags=re.S)
        if new == text and "<!-- fashion-accuracy:begin -->" not in text:
            raise SystemExit("README.md lacks the <!-- fashion-accuracy:begin/end --> block")
        README.write_text(new)
        print("written to README.md")


if __name__ == "__main__":
    main()
