"""Rewrites of a plan's layers for runs that do not record.

A recording must hold every source tensor, so recorded runs execute the layers as imported.
Runs that only want the outputs may skip intermediate tensors: there a Conv with constant
weights absorbs the per-output-channel affine layers that follow it alone — an inference
BatchNorm (``w * k``, ``(b - mean) * k + beta`` with ``k = gamma / sqrt(var + eps)``), or an
Add/Sub/Mul/Div by a constant that is a scalar or one value per output channel (exporters often
emit the bias or a folded BatchNorm this way).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from lwnn.graph import Layer
from lwnn.ops.conv import Conv


def fold_into_convolutions(
    steps: list[Layer], constants: dict[str, np.ndarray], outputs: list[str]
) -> tuple[list[Layer], dict[str, np.ndarray]]:
    """Steps with Conv -> affine chains merged into the Conv, and the new constants they read."""
    consumers = Counter(name for layer in steps for name in layer.inputs if name)
    consumers.update(outputs)
    producer_index = {out: i for i, layer in enumerate(steps) for out in layer.outputs}
    consumer_of: dict[str, int] = {}
    for i, layer in enumerate(steps):
        for name in layer.inputs:
            consumer_of.setdefault(name, i)
    fused: list[Layer] = []
    new_constants: dict[str, np.ndarray] = {}
    absorbed: set[int] = set()
    for i, layer in enumerate(steps):
        if i in absorbed:
            continue
        if not _conv_with_constant_params(layer, constants):
            fused.append(layer)
            continue
        w, b = _conv_params(layer, constants)
        out, names = layer.outputs[0], [layer.name]
        while consumers[out] == 1 and out in consumer_of:
            j = consumer_of[out]
            affine = _per_channel_affine(steps[j], out, w.shape[0], constants, rank=w.ndim)
            if affine is None or producer_index.get(out) is None:
                break
            scale, shift = affine
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
            b = b * scale + shift
            absorbed.add(j)
            out, names = steps[j].outputs[0], [*names, steps[j].name]
        if len(names) == 1:
            fused.append(layer)
            continue
        w_name, b_name = f"{layer.name}/folded_weight", f"{layer.name}/folded_bias"
        new_constants[w_name] = w.astype(np.float32)
        new_constants[b_name] = b.astype(np.float32)
        fused.append(Layer("+".join(names), layer.op, (layer.inputs[0], w_name, b_name), (out,)))
    return fused, new_constants


def _conv_with_constant_params(layer: Layer, constants: dict) -> bool:
    if not isinstance(layer.op, Conv):
        return False
    params = [layer.inputs[1], *(n for n in layer.inputs[2:3] if n)]
    return all(n in constants and constants[n].dtype == np.float32 for n in params)


def _conv_params(layer: Layer, constants: dict) -> tuple[np.ndarray, np.ndarray]:
    w = constants[layer.inputs[1]].astype(np.float64)
    has_bias = len(layer.inputs) > 2 and layer.inputs[2]
    b = constants[layer.inputs[2]].astype(np.float64) if has_bias else np.zeros(w.shape[0])
    return w, b


def _channel_vector(value: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """``value`` as one float64 per channel if it broadcasts per channel onto [N, M, ...]."""
    if value.dtype.kind != "f" or value.ndim > rank:
        return None
    if value.size == 1:
        return np.full(channels, float(value.reshape(-1)[0]))
    full = (1,) * (rank - value.ndim) + value.shape
    if full[1] == channels and all(d == 1 for i, d in enumerate(full) if i != 1):
        return value.reshape(-1).astype(np.float64)
    return None


def _per_channel_affine(layer: Layer, x: str, channels: int, constants: dict, rank: int):
    """(scale, shift) if ``layer`` computes ``x * scale + shift`` per channel, else None."""
    op = layer.op_type
    if op == "BatchNorm":
        if layer.inputs[0] != x or not all(n in constants for n in layer.inputs[1:5]):
            return None
        gamma, beta, mean, var = (constants[n].astype(np.float64) for n in layer.inputs[1:5])
        k = gamma / np.sqrt(var + layer.op.epsilon)
        return k, beta - mean * k
    if op not in ("Add", "Sub", "Mul", "Div") or len(layer.inputs) != 2:
        return None
    other = layer.inputs[1] if layer.inputs[0] == x else layer.inputs[0]
    if other == x or other not in constants:
        return None
    c = _channel_vector(constants[other], channels, rank)
    if c is None:
        return None
    ones, zeros = np.ones(channels), np.zeros(channels)
    if op == "Add":
        return ones, c
    if op == "Mul":
        return c, zeros
    if layer.inputs[0] != x:  # c - x and c / x are not affine in the same form
        return None
    return (ones, -c) if op == "Sub" else (1 / c, zeros)
