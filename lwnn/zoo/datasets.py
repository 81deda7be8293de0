"""Real data sets shipped by Debian packages, read with NumPy only.

Fashion-MNIST (package ``dataset-fashion-mnist``): 60,000 training and 10,000 test images of
clothing, 28x28 grey levels, 10 classes, stored as gzip-compressed IDX files.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# IDX header: two zero bytes, a type code, the number of dims, then one big-endian uint32 per dim.
_IDX_UBYTE = 0x08


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file of unsigned bytes (optionally gzip-compressed) into a uint8 array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        raise ValueError(f"{str(path)!r} is not an IDX file of unsigned bytes (header {data[:4].hex()}).")
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise ValueError(
            f"{str(path)!r}: header declares shape {dims} ({int(np.prod(dims))} bytes) but the file "
            f"holds {len(data) - offset} bytes of data."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims).copy()  # writable


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None):
    """Fashion-MNIST ``split`` ("train" or "test") as (images uint8 [N, 28, 28], labels uint8 [N]).

    Class names are ``FASHION_MNIST_CLASSES[label]``. ``root`` defaults to Debian's install folder.
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"Fashion-MNIST split must be 'train' or 'test'. Received {split!r}.")
    folder = Path(root) if root is not None else FASHION_MNIST_DIR
    paths = [folder / name for name in _FASHION_FILES[split]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found: {', '.join(missing)}. "
            "Install them with `apt-get install dataset-fashion-mnist`."
        )
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise ValueError(
            f"Fashion-MNIST {split}: expected images [N, 28, 28] and labels [N]. "
            f"Received {images.shape} and {labels.shape}."
        )
    return images, labels


def fashion_feeds(split: str = "train", n: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Feeds of the bundled Fashion-MNIST CNN (``lwnn.data.default_model_path``) for the first ``n``
    images of ``split`` (all when None): ``{"image": float32 [n, 1, 28, 28] in [0, 1]}``, and
    their labels."""
    images, labels = load_fashion_mnist(split)
    return {"image": (images[:n, None] / 255).astype(np.float32)}, labels[:n]
