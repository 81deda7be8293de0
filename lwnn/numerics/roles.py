"""Which inputs of an op are quantized and how, and where an op's output parameters come from.

Input roles: ``act`` (quantized with its own calibrated parameters), ``weight`` (a constant
quantized symmetrically, per output channel for s8 convolutions and dense layers), ``bias``
(int32 / accumulator Q derived from the input and weight parameters), ``raw`` (used as is:
shapes, axes, BatchNorm statistics).
"""

from __future__ import annotations

from lwnn.graph import Layer
from lwnn.numerics.params import AffineParams, QFormat, scheme_of
from lwnn.ops import op_types

_ROLES = {
    "Conv": ("act", "weight", "bias"),
    "ConvTranspose": ("act", "weight", "bias"),
    "FusedActivation": ("act", "weight", "bias"),  # lwnn.passes.activations: a Conv/Dense + ReLU
    "Dense": ("act", "weight", "bias"),
    "MatMul": ("act", "weight"),
    "BatchNorm": ("act", "raw", "raw", "raw", "raw"),
    "Reshape": ("act", "raw"),
    "Expand": ("act", "raw"),
    "Slice": ("act", "raw", "raw", "raw", "raw"),
    "Pad": ("act", "raw", "raw", "raw"),
    "Resize": ("act", "raw", "raw", "raw"),
    "Gather": ("act", "raw"),
}

# Ops that only move or select values (``Op.moves_values``); their integer kernels are the float
# ones on codes (lwnn.backends.cpu_int.movement).
MOVEMENT_OPS = op_types(lambda op: op.moves_values)
# Outputs that keep input 0's parameters (moves and selections, and TFLite's int8 average pool).
SAME_AS_INPUT = {*MOVEMENT_OPS, "AveragePool", "GlobalAveragePool"}


def input_roles(layer: Layer, constants: dict) -> list[str]:
    """Role of each input; a weight that is not a constant is quantized as an activation."""
    roles = list(_ROLES.get(layer.op_type, ()))
    roles += ["act"] * (len(layer.inputs) - len(roles))
    for i, (name, role) in enumerate(zip(layer.inputs, roles)):
        if role in ("weight", "bias") and name and name not in constants:
            roles[i] = "act"
    return roles[: len(layer.inputs)]


def weight_channel_axis(layer: Layer) -> int:
    """Output-channel axis of a layer's weight tensor."""
    if layer.op_type == "FusedActivation":
        return weight_channel_axis(layer.op.inner)
    if layer.op_type == "ConvTranspose":
        return 1  # [C_in, C_out / group, *k]
    if layer.op_type == "Dense":
        return 0 if layer.op.trans_b else 1
    if layer.op_type == "MatMul":
        return -1
    return 0


def same_as_input(layer: Layer) -> bool:
    if layer.op_type == "Resize":
        return layer.op.mode == "nearest"
    return layer.op_type in SAME_AS_INPUT


def fixed_output(layer: Layer, scheme: str):
    """Parameters fixed by the scheme for this op's output (softmax, sigmoid, tanh), or None."""
    spec = scheme_of(scheme)
    if spec.affine:
        fixed = {"Softmax": (1 / 256, -128), "Sigmoid": (1 / 256, -128), "Tanh": (1 / 128, 0)}
        if layer.op_type in fixed:
            scale, zp = fixed[layer.op_type]
            return AffineParams(scale, zp)
        return None
    if layer.op_type in ("Softmax", "Sigmoid", "Tanh"):
        return QFormat(spec.bits - 1, spec.bits)  # Q7 / Q15, as CMSIS
    return None
