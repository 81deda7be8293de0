"""Graph rewrites, in one place. Each pass takes layers in execution order and returns layers
with some of them merged into one; a merged layer's op is a ``lwnn.ops.base.MergedOp`` (it
computes its float value from its members' CPU kernels, ``evaluate``).

- ``convolutions``: a Conv absorbs the BatchNorm / per-channel affine layers after it (float runs
  that do not record; quantized models with ``fold=True``).
- ``activations``: a weighted layer and the ReLU/Clip after it (quantized models, as TFLite and
  CMSIS-NN fuse activations).
- ``chains``: a chain of element-wise layers of one tensor as one function (quantized models:
  one lookup table).
- ``epilogues``: element-wise chains as the epilogue of the OpenCL kernel before them
  (unrecorded OpenCL float runs).

Every pass finds the readers of a tensor with ``readers``. See docs/architecture.md ("Passes").
"""

from __future__ import annotations

from lwnn.graph import Layer


def readers(layers: list[Layer]) -> dict[str, list[int]]:
    """Tensor -> the indices of the layers that read it, in order, each layer once."""
    found: dict[str, list[int]] = {}
    for i, layer in enumerate(layers):
        for name in dict.fromkeys(n for n in layer.inputs if n):
            found.setdefault(name, []).append(i)
    return found
