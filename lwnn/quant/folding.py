"""The graph a quantized model runs: BatchNorms and per-channel affine constants folded into the
convolution before them, as TFLite and LWNN deploy a network, and chains of element-wise layers
folded into one lookup table (``lwnn.passes.chains``).

Folding happens before parameters are assigned, so the merged convolution's weights are quantized
as one tensor (one int8 weight per channel for s8) and the intermediate tensors it swallows never
exist on the device. The merged convolution writes the last folded layer's output name, so
recordings keep the source names of every tensor that does exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lwnn.backends.cpu_int import kernel_for
from lwnn.errors import LwnnError
from lwnn.graph import Layer
from lwnn.passes.activations import fuse_activations
from lwnn.passes.chains import fold_elementwise_chains
from lwnn.passes.convolutions import fold_chains


@dataclass(frozen=True)
class QuantGraph:
    """Layers to quantize and run, in order (merged convolutions in place of their chains)."""

    layers: list[Layer]
    constants: dict[str, np.ndarray]  # the model's constants plus folded weights and biases
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)  # merged name -> source layers
    folded_tensors: dict[str, str] = field(default_factory=dict)  # tensor gone -> merged layer name

    def merged_into(self, layer_name: str) -> str | None:
        """Name of the merged layer that executes source layer ``layer_name``, or None."""
        return self._member_of.get(layer_name)

    @property
    def _member_of(self) -> dict[str, str]:
        cache = self.__dict__.get("_member_cache")
        if cache is None:
            cache = {m: merged for merged, names in self.members.items() for m in names}
            object.__setattr__(self, "_member_cache", cache)
        return cache

    def check_exists(self, tensor: str) -> None:
        """Raise a clear error for a tensor that folding removed from the device."""
        if tensor in self.folded_tensors:
            merged = self.folded_tensors[tensor]
            head = self.members[merged][0]
            if merged in self._chains:
                into = f"the element-wise chain {merged!r} (one lookup table)"
            elif head + "/folded_weight" in self.constants:
                into = (f"convolution {head!r} (runs as {merged!r}, weights {head + '/folded_weight'!r}, "
                        f"bias {head + '/folded_bias'!r})")
            else:
                into = f"layer {head!r} (runs as {merged!r}, its activation fused)"
            raise LwnnError(f"Tensor {tensor!r} does not exist in the quantized model: it was folded into "
                            f"{into}. Quantize with fold=False to keep it.")

    @property
    def _chains(self) -> set[str]:
        return {layer.name for layer in self.layers if layer.op_type == "ElementwiseChain"}

    def steps(self, plan_steps: list[Layer]) -> list[Layer]:
        """A run plan's steps with each folded chain replaced by its merged convolution."""
        if not self.members:
            return plan_steps
        names = {layer.name for layer in plan_steps}
        merged_layers = {layer.name: layer for layer in self.layers if layer.name in self.members}
        out = []
        for layer in plan_steps:
            merged = self._member_of.get(layer.name)
            if merged is None:
                out.append(layer)
                continue
            members = self.members[merged]
            if layer.name == members[0]:
                if not all(m in names for m in members):
                    raise LwnnError(
                        f"Layers {list(members)} were folded into one convolution when quantizing, but "
                        "this input shape turns part of them into constants. Quantize with fold=False.")
                out.append(merged_layers[merged])
        return out


def quant_graph(model, modes: dict[str, str], fold: bool) -> QuantGraph:
    """The layers to quantize: source layers, with Conv -> affine chains merged when ``fold``.

    A chain only joins layers that run in the same mode (``modes``: layer name -> float/s8/q8/q16).
    """
    graph = model.graph
    if not fold:
        return QuantGraph(list(graph.layers), dict(graph.constants))

    def same_mode(first: Layer, layer: Layer) -> bool:
        return modes.get(first.name) == modes.get(layer.name)

    def same_integer_mode(first: Layer, layer: Layer) -> bool:  # a table only exists in integer runs
        return same_mode(first, layer) and modes.get(first.name) != "float"

    def fusable(producer: Layer, act: Layer) -> bool:  # integer layers of one mode, with a kernel
        mode = modes.get(groups.get(producer.name, (producer,))[0].name)
        return mode not in (None, "float") and modes.get(act.name) == mode \
            and kernel_for(mode, producer) is not None

    outputs = list(graph.outputs)
    layers, extra, groups = fold_chains(list(graph.layers), graph.constants, outputs, same_mode)
    constants = {**graph.constants, **extra}
    layers, pairs = fuse_activations(layers, constants, outputs, fusable)
    for name, (producer, act) in pairs.items():
        chain = groups.pop(producer) if producer in groups else (graph.layer(producer),)
        groups[name] = (*chain, graph.layer(act))
    layers, chains = fold_elementwise_chains(layers, constants, outputs, same_integer_mode)
    groups.update(chains)
    used = {n for layer in layers for n in layer.inputs if n}
    folded: dict[str, str] = {}
    for merged, chain in groups.items():
        for member in chain[:-1]:
            folded.update({o: merged for o in member.outputs})
        for member in chain:  # weights, biases and statistics the merged weights replace
            folded.update({n: merged for n in member.inputs if n in graph.constants and n not in used})
    members = {merged: tuple(m.name for m in chain) for merged, chain in groups.items()}
    return QuantGraph(layers, constants, members, folded)
