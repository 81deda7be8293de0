"""Write a darknet ``.weights`` file for a cfg, in darknet's binary layout, from seeded weights.

    python -m lwnn.zoo.darknet_weights lwnn/data/darknet/yolov3-tiny.cfg /tmp/tiny.weights

Layout written (darknet's save_weights): int32 major, minor, revision; images seen as int64 when
major*10+minor >= 2 else int32; then per [convolutional] section in cfg order: float32 biases,
then when batch_normalize scales, rolling means, rolling variances, then the weights
[filters, channels/groups, size, size].

This walks the cfg on its own (it does not use lwnn's importer), so a test can check that lwnn
reads back exactly the arrays written here. Weights are normals of variance 1/fan_in (halved
again by each leaky ReLU, so the 23 residual additions of YOLOv3 do not blow up) so activations
of the written network keep a sensible range.
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import numpy as np


def _sections(cfg: Path) -> list[tuple[str, dict[str, str]]]:
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in cfg.read_text().splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if line.startswith("["):
            sections.append((line.strip("[]").lower(), {}))
        elif "=" in line:
            key, value = line.split("=", 1)
            sections[-1][1][key.strip()] = value.strip()
    return sections


def conv_shapes(cfg: Path) -> list[dict]:
    """Per [convolutional] section, in order: filters, input channels, size, groups, batch_normalize."""
    sections = _sections(cfg)
    channels = [int(sections[0][1].get("channels", 3))]  # output channels per layer, input first
    convs = []
    for index, (name, opts) in enumerate(sections[1:]):
        if name == "convolutional":
            filters = int(opts.get("filters", 1))
            convs.append(dict(filters=filters, channels=channels[-1], size=int(opts.get("size", 1)),
                              groups=int(opts.get("groups", 1)), bn=int(opts.get("batch_normalize", 0)) == 1))
            channels.append(filters)
        elif name == "route":
            refs = [int(v) for v in opts["layers"].split(",")]
            channels.append(sum(channels[(index + r if r < 0 else r) + 1] for r in refs))
        else:  # shortcut, upsample, maxpool, yolo keep the channel count
            channels.append(channels[-1])
    return convs


def seeded_weights(cfg: Path, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """The arrays of every [convolutional] section, drawn from a fixed seed."""
    rng = np.random.default_rng(seed)
    arrays = []
    for conv in conv_shapes(cfg):
        f, k = conv["filters"], conv["size"]
        fan_in = conv["channels"] // conv["groups"] * k * k
        layer = {"biases": rng.normal(0, 0.1, f).astype(np.float32)}
        if conv["bn"]:
            layer["scales"] = rng.normal(1, 0.1, f).astype(np.float32)
            layer["rolling_mean"] = rng.normal(0, 0.1, f).astype(np.float32)
            layer["rolling_variance"] = rng.uniform(0.5, 1.5, f).astype(np.float32)
        shape = (f, conv["channels"] // conv["groups"], k, k)
        layer["weights"] = rng.normal(0, np.sqrt(1.0 / fan_in), shape).astype(np.float32)
        arrays.append(layer)
    return arrays


def write_weights(cfg: Path, out: Path, seed: int = 0, version: tuple[int, int, int] = (0, 2, 0),
                  seen: int = 32013312) -> list[dict[str, np.ndarray]]:
    """Write ``out`` for ``cfg``; return the arrays written (per conv, in file order)."""
    arrays = seeded_weights(cfg, seed)
    major, minor, revision = version
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    with open(out, "wb") as fh:
        fh.write(struct.pack("<iii", major, minor, revision))
        fh.write(struct.pack("<q" if wide else "<i", seen))
        for layer in arrays:
            for key in ("biases", "scales", "rolling_mean", "rolling_variance", "weights"):
                if key in layer:
                    fh.write(layer[key].astype("<f4").tobytes())
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cfg", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    arrays = write_weights(args.cfg, args.out, args.seed)
    count = sum(a.size for layer in arrays for a in layer.values())
    print(f"{args.out}: {len(arrays)} convolutional layers, {count} floats")


if __name__ == "__main__":
    main()
