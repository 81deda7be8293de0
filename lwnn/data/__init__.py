"""The bundled default model and data, found through ``importlib.resources``.

``fashion_cnn.onnx`` is a small mobile-style CNN trained on Fashion-MNIST by
``scripts/train_fashion_cnn.py`` (fixed seed; ``fashion_cnn.json`` records how and how well).
Input ``image``: float32 [N, 1, 28, 28], grey level / 255 in [0, 1]. Output ``probs``: [N, 10]
softmax probabilities, classes named by ``lwnn.zoo.datasets.FASHION_MNIST_CLASSES``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

MODEL = "fashion_cnn.onnx"
SAMPLES = "fashion_samples.npz"
METADATA = "fashion_cnn.json"


def _file(name: str) -> Path:
    path = resources.files(__name__) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"Bundled file {name!r} is missing from the lwnn package; regenerate it with "
            "`python scripts/train_fashion_cnn.py`."
        )
    return Path(str(path))  # the package is installed as files, never zipped


def default_model_path() -> Path:
    """Path of the bundled Fashion-MNIST CNN (ONNX)."""
    return _file(MODEL)


def default_samples() -> tuple[np.ndarray, np.ndarray]:
    """The first 256 Fashion-MNIST test images, as the model takes them (float32
    [256, 1, 28, 28] in [0, 1]), and their labels (uint8 [256])."""
    with np.load(_file(SAMPLES)) as data:
        return data["images"], data["labels"]


def default_metadata() -> dict:
    """How the bundled model was trained and its test accuracy (``fashion_cnn.json``)."""
    return json.loads(_file(METADATA).read_text())
