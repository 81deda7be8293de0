"""Rewrites of a plan's layers for runs that do not record.

A recording must hold every source tensor, so recorded runs execute the layers as imported.
Runs that only want the outputs may skip intermediate tensors: there a Conv whose only
consumer is an inference BatchNorm becomes one Conv with scaled weights and shifted bias
(``w' = w * k``, ``b' = (b - mean) * k + beta`` with ``k = gamma / sqrt(var + eps)``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from lwnn.graph import Layer
from lwnn.ops.conv import Conv


def fold_batch_norms(
    steps: list[Layer], constants: dict[str, np.ndarray], outputs: list[str]
) -> tuple[list[Layer], dict[str, np.ndarray]]:
    """Steps with Conv -> BatchNorm pairs merged, and the new constants they read."""
    consumers = Counter(name for layer in steps for name in layer.inputs if name)
    consumers.update(outputs)
    fused: list[Layer] = []
    new_constants: dict[str, np.ndarray] = {}
    skip = set()
    for i, layer in enumerate(steps):
        if i in skip:
            continue
        bn = steps[i + 1] if i + 1 < len(steps) else None
        if bn is not None and _foldable(layer, bn, constants, consumers):
            w_name, b_name = f"{layer.name}/bn_folded_weight", f"{layer.name}/bn_folded_bias"
            new_constants[w_name], new_constants[b_name] = _folded_params(layer, bn, constants)
            inputs = (layer.inputs[0], w_name, b_name)
            fused.append(Layer(f"{layer.name}+{bn.name}", layer.op, inputs, bn.outputs))
            skip.add(i + 1)
            continue
        fused.append(layer)
    return fused, new_constants


def _foldable(conv: Layer, bn: Layer, constants: dict, consumers: Counter) -> bool:
    if not isinstance(conv.op, Conv) or bn.op_type != "BatchNorm":
        return False
    if bn.inputs[0] != conv.outputs[0] or consumers[conv.outputs[0]] != 1:
        return False
    params = [conv.inputs[1], *(conv.inputs[2:3] if len(conv.inputs) > 2 else ()), *bn.inputs[1:5]]
    if not all(n and n in constants and constants[n].dtype.kind == "f" for n in params):
        return False
    return constants[conv.inputs[1]].dtype == np.float32


def _folded_params(conv: Layer, bn: Layer, constants: dict) -> tuple[np.ndarray, np.ndarray]:
    w = constants[conv.inputs[1]].astype(np.float64)
    m = w.shape[0]
    has_bias = len(conv.inputs) > 2 and conv.inputs[2]
    b = constants[conv.inputs[2]].astype(np.float64) if has_bias else np.zeros(m)
    gamma, beta, mean, var = (constants[n].astype(np.float64) for n in bn.inputs[1:5])
    k = gamma / np.sqrt(var + bn.op.epsilon)
    weight = (w * k.reshape((m,) + (1,) * (w.ndim - 1))).astype(np.float32)
    bias = ((b - mean) * k + beta).astype(np.float32)
    return weight, bias
