"""Keras 3 importer: a built Sequential or functional ``keras.Model`` -> Graph.

The importer walks the model's functional graph (each ``KerasTensor`` records the layer call
that made it) and converts every layer call with one converter per Keras layer class.
Nested models are inlined; their layers are named ``"{outer call}/{inner layer}"``.

Layout. Keras is channels-last, lwnn's ops are NCHW as ONNX. The graph's inputs take exactly
what the Keras model takes (NHWC arrays, named as the Keras ``Input`` layers) and its outputs
have Keras's layout and Keras's output layer names. Inside, spatial tensors are held
channels-first and ``Transpose`` layers are inserted only where order matters (graph inputs and
outputs, before Flatten, Reshape, Permute, ...). Each Keras tensor may therefore be held in a
permuted layout: ``graph.layouts[name] = perm`` means ``lwnn_tensor == keras_tensor.transpose(perm)``
(tensors absent from ``layouts`` have Keras's layout). ``keras_layout(model, name, array)`` undoes it.

Naming. The tensor a Keras layer outputs is named exactly ``layer.name`` (so
``m.run(feeds, record=True)[layer.name]`` is that layer's output, channels-first for rank >= 3,
except for model outputs, which are in Keras layout). A shared layer's later calls are named
``"{layer.name}/call{k}"``. Helper tensors get derived names: ``"{name}/preact"`` before a fused
activation, ``"{name}/depthwise"`` inside SeparableConv, ``"{name}/nchw"`` or ``"{name}/nhwc"`` for
inserted transposes. Weights are constants ``"{layer.name}/kernel"``, ``"{layer.name}/bias"``, ...

Semantics follow the active Keras backend where backends differ (AveragePooling with
``padding="same"`` and uneven padding counts the edge-replicated pads on the torch backend).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lwnn.errors import ModelFormatError
from lwnn.graph import Graph, Layer, TensorSpec
from lwnn.importers.keras_layers import CONVERTERS, Call, Perm, converter_for, ident, layout_tag, relative
from lwnn.ops import elementwise as e
from lwnn.ops import shape as s
from lwnn.ops.base import Op

__all__ = ["CONVERTERS", "KerasGraph", "import_keras", "keras_layout"]


@dataclass
class KerasGraph(Graph):
    """A Graph imported from Keras, with the layout of each permuted tensor.

    ``layouts[name] = perm`` means the lwnn tensor ``name`` is the Keras tensor transposed by
    ``perm`` (``(0, 3, 1, 2)`` for an NCHW view of an NHWC tensor); other tensors have Keras's layout.
    """

    layouts: dict[str, Perm] = field(default_factory=dict)


def keras_layout(model_or_graph, name: str, array: np.ndarray) -> np.ndarray:
    """Tensor ``name`` of a run or recording of an imported Keras model, in Keras's layout."""
    graph = getattr(model_or_graph, "graph", model_or_graph)
    perm = getattr(graph, "layouts", {}).get(name)
    array = np.asarray(array)
    return array if perm is None else np.transpose(array, np.argsort(perm))


def import_keras(model) -> KerasGraph:
    """Convert a built Keras 3 Sequential or functional model into a Graph (see module doc)."""
    inputs, outputs = _graph_ends(model)
    b = _Builder()
    for kt in inputs:
        layer = kt._keras_history.operation
        b.graph_inputs[layer.name] = TensorSpec(layer.name, np.dtype(kt.dtype), tuple(kt.shape))
        b.tensors[id(kt)] = _Tensor(layer.name, len(kt.shape), {ident(len(kt.shape)): layer.name})
    b.output_ids = {id(kt) for kt in outputs}
    b.convert(inputs, outputs, prefix="")
    names, specs = [], {}
    for kt in outputs:  # in Keras layout under their own name (see _Builder.define)
        t = b.tensors[id(kt)]
        if t.name not in names:
            names.append(t.name)
            specs[t.name] = TensorSpec(t.name, np.dtype(kt.dtype), tuple(kt.shape))
    return KerasGraph(
        b.graph_inputs, names, b.layers, b.constants, name=model.name, output_specs=specs,
        layouts=b.layouts,
    )


def _graph_ends(model) -> tuple[list, list]:
    """The flat input and output KerasTensors of a functional (or built Sequential) model."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ModelFormatError(
            f"Keras model {model.name!r} ({type(model).__name__}) has no functional graph to import. "
            "Expected a functional keras.Model or a Sequential model built with keras.Input (or "
            "called once). Subclassed models with a custom call() cannot be imported; export them "
            "to ONNX instead."
        )
    return list(inputs), list(outputs)


@dataclass
class _Tensor:
    """A Keras tensor as lwnn holds it: its Keras-facing name and its views, by layout."""

    name: str
    rank: int
    views: dict[Perm, str]  # perm -> lwnn tensor name; the first entry is where it was computed

    @property
    def perm(self) -> Perm:
        return next(iter(self.views))


class _Builder:
    """Accumulates layers, constants and layouts while the graph is walked."""

    def __init__(self):
        self.graph_inputs: dict[str, TensorSpec] = {}
        self.layers: list[Layer] = []
        self.constants: dict[str, np.ndarray] = {}
        self.layouts: dict[str, Perm] = {}
        self.tensors: dict[int, _Tensor] = {}  # id(KerasTensor) -> _Tensor
        self.output_ids: set[int] = set()
        self.calls: dict[tuple[str, int], int] = {}  # (prefix, id(layer)) -> calls converted

    def add(self, op: Op, inputs: list[str], out: str, perm: Perm) -> str:
        self.layers.append(Layer(out, op, tuple(inputs), (out,)))
        if perm != ident(len(perm)):
            self.layouts[out] = perm
        return out

    def view(self, t: _Tensor, perm: Perm | None, name: str | None = None) -> str:
        """Name of ``t`` held in layout ``perm`` (any layout if None), transposing if needed."""
        if perm is None:
            return t.views[t.perm]
        if perm not in t.views:
            out = name or f"{t.name}/{layout_tag(perm)}"
            src = t.views[t.perm]
            t.views[perm] = self.add(s.Transpose(perm=relative(t.perm, perm)), [src], out, perm)
        return t.views[perm]

    def define(self, kt, name: str, op: Op, inputs: list[str], perm: Perm) -> None:
        """Add the layer computing Keras tensor ``kt`` (named ``name``), held in layout ``perm``.

        A model output is also made available in Keras layout under ``name`` itself; its
        permuted original then gets a derived name.
        """
        out = name
        if id(kt) in self.output_ids and perm != ident(len(perm)):
            out = f"{name}/{layout_tag(perm)}"
        self.add(op, inputs, out, perm)
        t = self.tensors[id(kt)] = _Tensor(name, len(perm), {perm: out})
        if out != name:
            self.view(t, ident(len(perm)), name=name)

    def convert(self, inputs: list, outputs: list, prefix: str) -> None:
        """Convert every layer call between ``inputs`` (already bound) and ``outputs``."""
        import keras

        bound = {id(kt) for kt in inputs}
        for node in _ordered_nodes(outputs, bound):
            layer = node.operation
            key = (prefix, id(layer))
            k = self.calls[key] = self.calls.get(key, -1) + 1
            name = f"{prefix}{layer.name}" + (f"/call{k}" if k else "")
            ins = [self.tensors[id(kt)] for kt in node.input_tensors]
            if isinstance(layer, keras.Model):
                self._inline(layer, node, ins, name)
                continue
            converter_for(layer)(Call(self, layer, name, prefix, ins, node))

    def _inline(self, sub, node, ins: list[_Tensor], name: str) -> None:
        """Convert a nested model in place; its single output is also named ``name``."""
        sub_inputs, sub_outputs = _graph_ends(sub)
        for kt, t in zip(sub_inputs, ins, strict=True):
            self.tensors[id(kt)] = t
        self.convert(sub_inputs, sub_outputs, prefix=f"{name}/")
        for kt, inner in zip(node.outputs, sub_outputs, strict=True):
            self.tensors[id(kt)] = self.tensors[id(inner)]
        if len(node.outputs) == 1:  # a tensor named like the nested model, as for any layer
            t = self.tensors[id(sub_outputs[0])]
            self.define(node.outputs[0], name, e.Identity(), [self.view(t, None)], t.perm)


def _ordered_nodes(outputs: list, bound: set[int]) -> list:
    """Layer calls needed for ``outputs``, each after the calls it depends on (iterative DFS)."""

    def producer(kt):
        history = getattr(kt, "_keras_history", None)
        if history is None or history.operation is None:
            raise ModelFormatError(f"Keras tensor {kt.name!r} is not produced by any layer of the model.")
        node = history.operation._inbound_nodes[history.node_index]
        if node.is_input:
            raise ModelFormatError(
                f"Keras tensor {kt.name!r} comes from input {history.operation.name!r}, which is not "
                "an input of the model being imported."
            )
        return node

    order, done = [], set()
    stack = [(producer(kt), False) for kt in reversed(outputs) if id(kt) not in bound]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for kt in reversed(node.input_tensors):
            if id(kt) not in bound and id(producer(kt)) not in done:
                stack.append((producer(kt), False))
    return order


