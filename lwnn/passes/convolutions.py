"""Rewrites of a plan's layers for runs that do not record.

A recording must hold every source tensor, so recorded runs execute the layers as imported.
Runs that only want the outputs may skip intermediate tensors: there a Conv (or an ungrouped
ConvTranspose) with constant weights absorbs the per-output-channel affine layers that follow it
alone — an inference BatchNorm (``w * k``, ``(b - mean) * k + beta`` with
``k = gamma / sqrt(var + eps)``), or an Add/Sub/Mul/Div by a constant that is a scalar or one
value per output channel (exporters often emit the bias or a folded BatchNorm this way).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lwnn.graph import Layer
from lwnn.ops.conv import Conv, ConvTranspose
from lwnn.passes import readers


def fold_into_convolutions(
    steps: list[Layer], constants: dict[str, np.ndarray], outputs: list[str]
) -> tuple[list[Layer], dict[str, np.ndarray]]:
    """Steps with Conv -> affine chains merged into the Conv, and the new constants they read."""
    fused, new_constants, _ = fold_chains(steps, constants, outputs)
    return fused, new_constants


def fold_chains(
    steps: list[Layer],
    constants: dict[str, np.ndarray],
    outputs: list[str],
    can_join: Callable[[Layer, Layer], bool] | None = None,
) -> tuple[list[Layer], dict[str, np.ndarray], dict[str, tuple[Layer, ...]]]:
    """``fold_into_convolutions`` plus, per merged layer name, the source layers it replaces.

    ``can_join(conv, layer)`` may refuse to extend a chain (a quantized model keeps layers that
    run under different schemes apart). The merged Conv is named ``"+".join(member names)``,
    reads ``<conv>/folded_weight`` and ``<conv>/folded_bias`` and writes the last member's output.
    """
    reads = readers(steps)
    graph_outputs = set(outputs)
    producer_index = {out: i for i, layer in enumerate(steps) for out in layer.outputs}
    fused: list[Layer] = []
    new_constants: dict[str, np.ndarray] = {}
    groups: dict[str, tuple[Layer, ...]] = {}
    absorbed: set[int] = set()
    for i, layer in enumerate(steps):
        if i in absorbed:
            continue
        if not _conv_with_constant_params(layer, constants):
            fused.append(layer)
            continue
        w, b = _conv_params(layer, constants)
        out, members = layer.outputs[0], [layer]
        axis = _channel_axis(layer)
        while out not in graph_outputs and len(reads.get(out, ())) == 1:
            j = reads[out][0]
            affine = _per_channel_affine(steps[j], out, w.shape[axis], constants, rank=w.ndim)
            if affine is None or producer_index.get(out) is None:
                break
            if can_join is not None and not can_join(layer, steps[j]):
                break
            scale, shift = affine
            w = w * scale.reshape([-1 if d == axis else 1 for d in range(w.ndim)])
            b = b * scale + shift
            absorbed.add(j)
            out, members = steps[j].outputs[0], [*members, steps[j]]
        if len(members) == 1:
            fused.append(layer)
            continue
        w_name, b_name = f"{layer.name}/folded_weight", f"{layer.name}/folded_bias"
        new_constants[w_name] = w.astype(np.float32)
        new_constants[b_name] = b.astype(np.float32)
        name = "+".join(m.name for m in members)
        fused.append(Layer(name, layer.op, (layer.inputs[0], w_name, b_name), (out,)))
        groups[name] = tuple(members)
    return fused, new_constants, groups


def _channel_axis(layer: Layer) -> int:
    """Output-channel axis of the weights: [M, C/g, *k] for Conv, [C, M, *k] for ConvTranspose."""
    return 1 if isinstance(layer.op, ConvTranspose) else 0


def _conv_with_constant_params(layer: Layer, constants: dict) -> bool:
    if not isinstance(layer.op, Conv | ConvTranspose):
        return False
    if isinstance(layer.op, ConvTranspose) and layer.op.group != 1:
        return False  # a grouped deconv's weight axis 1 holds M/group channels, not M
    params = [layer.inputs[1], *(n for n in layer.inputs[2:3] if n)]
    return all(n in constants and constants[n].dtype == np.float32 for n in params)


def _conv_params(layer: Layer, constants: dict) -> tuple[np.ndarray, np.ndarray]:
    w = constants[layer.inputs[1]].astype(np.float64)
    has_bias = len(layer.inputs) > 2 and layer.inputs[2]
    channels = w.shape[_channel_axis(layer)]
    b = constants[layer.inputs[2]].astype(np.float64) if has_bias else np.zeros(channels)
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
