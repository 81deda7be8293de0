"""``lwnn.load``: dispatch on what the user gives (a path, an onnx.ModelProto, a keras.Model)."""

from __future__ import annotations

import os
from pathlib import Path

from lwnn.errors import ModelFormatError
from lwnn.model import Model


def load(source, weights: str | os.PathLike | None = None) -> Model:
    """Load a model: a ``.onnx`` path, an ``onnx.ModelProto`` or a Keras 3 model."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix == ".cfg":
            raise ModelFormatError(
                f"{str(path)!r}: darknet .cfg import is not available in this version of lwnn yet. "
                "Supported now: .onnx files, onnx.ModelProto, keras.Model."
            )
        from lwnn.importers.onnx import import_onnx, read_onnx

        return Model(import_onnx(read_onnx(path)))
    kind = f"{type(source).__module__}.{type(source).__name__}"
    if kind.startswith("onnx") and type(source).__name__ == "ModelProto":
        from lwnn.importers.onnx import import_onnx

        return Model(import_onnx(source))
    if _is_keras_model(source):
        from lwnn.importers.keras import import_keras

        return Model(import_keras(source))
    raise ModelFormatError(
        f"lwnn.load cannot read a {kind}. Expected a path to a .onnx file, an onnx.ModelProto "
        "or a keras.Model."
    )


def _is_keras_model(obj) -> bool:
    return any(c.__module__.startswith("keras") and c.__name__ == "Model" for c in type(obj).__mro__)
