"""ReLU/Clip fused into the weighted layer before it, as TFLite's fused activations and
CMSIS-NN's in-place ReLU after a convolution: the convolution requantizes straight to the
activation's output parameters and clamps there, so its own output never exists on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwnn.graph import Layer
from lwnn.ops.base import MergedOp
from lwnn.passes import readers

FUSABLE_PRODUCERS = ("Conv", "ConvTranspose", "Dense")
FUSABLE_ACTIVATIONS = ("Relu", "Clip")


@dataclass(frozen=True)
class FusedActivation(MergedOp):
    """A weighted layer (``inner``) followed by ReLU or Clip to ``[lo, hi]`` (infinite: open)."""

    type: ClassVar[str] = "FusedActivation"
    const_inputs: ClassVar[tuple[int, ...]] = ()
    inner: Layer
    lo: float
    hi: float

    def infer(self, shapes, values):
        return self.inner.op.infer(shapes, values)

    def evaluate(self, *args) -> np.ndarray:
        """The float value: the inner layer's float kernel, then the clamp."""
        from lwnn.backends.cpu import run_cpu_kernel

        return np.clip(run_cpu_kernel(self.inner, list(args))[0], self.lo, self.hi)


def fuse_activations(layers: list[Layer], constants: dict, outputs: list[str],
                     can_join) -> tuple[list[Layer], dict[str, tuple[str, str]]]:
    """Layers with each weighted layer + single-consumer ReLU/Clip merged, and {merged name:
    (producer name, activation name)}."""
    consumers = readers(layers)
    out_names = set(outputs)
    merged_at: dict[int, Layer] = {}
    dropped: set[int] = set()
    pairs: dict[str, tuple[str, str]] = {}
    for i, layer in enumerate(layers):
        if layer.op_type not in FUSABLE_PRODUCERS or len(layer.outputs) != 1:
            continue
        y = layer.outputs[0]
        users = consumers.get(y, [])
        if y in out_names or len(users) != 1:
            continue
        act = layers[users[0]]
        bounds = _bounds(act, constants)
        if bounds is None or act.inputs[0] != y or not can_join(layer, act):
            continue
        name = f"{layer.name}+{act.name}"
        merged_at[users[0]] = Layer(name, FusedActivation(layer, *bounds), layer.inputs, act.outputs)
        dropped.add(i)
        pairs[name] = (layer.name, act.name)
    result = [merged_at.get(i, layer) for i, layer in enumerate(layers) if i not in dropped]
    return result, pairs


def _bounds(layer: Layer, constants: dict) -> tuple[float, float] | None:
    if layer.op_type == "Relu":
        return 0.0, float("inf")
    if layer.op_type == "Clip" and all(not n or n == layer.inputs[0] for n in layer.inputs):
        return float(layer.op.min), float(layer.op.max)
    return None
