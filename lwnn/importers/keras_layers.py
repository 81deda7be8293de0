"""One converter per Keras layer class: a Keras layer call -> lwnn layers (see ``lwnn.importers.keras``).

A converter receives a ``Call``: the layer, its inputs as the importer holds them (each in some
layout ``perm``, ``lwnn_tensor == keras_tensor.transpose(perm)``) and helpers to add weight
constants, helper layers and the layer that carries the call's output name. Spatial layers ask
for their input channels-first (``channels_first(rank)``) and produce channels-first outputs;
element-wise layers keep whatever layout their input has.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lwnn.errors import ShapeError, UnsupportedOpError
from lwnn.ops import conv as c
from lwnn.ops import elementwise as e
from lwnn.ops import pool as p
from lwnn.ops import shape as s
from lwnn.ops.base import Op

Perm = tuple[int, ...]


def ident(rank: int) -> Perm:
    return tuple(range(rank))


def channels_first(rank: int) -> Perm:
    """The perm that views a channels-last tensor as channels-first (NHWC -> NCHW)."""
    return (0, rank - 1, *range(1, rank - 1)) if rank >= 3 else ident(rank)


def relative(have: Perm, want: Perm) -> Perm:
    """Transpose perm turning a tensor held as ``have`` into one held as ``want``."""
    return tuple(have.index(a) for a in want)


_TAGS = {
    (0, 2, 1): "ncw", (0, 1, 2): "nwc", (0, 3, 1, 2): "nchw", (0, 1, 2, 3): "nhwc",
    (0, 4, 1, 2, 3): "ncdhw", (0, 1, 2, 3, 4): "ndhwc",
}


def layout_tag(perm: Perm) -> str:
    return _TAGS.get(perm, "t" + "".join(str(a) for a in perm))


@dataclass
class Call:
    """One Keras layer call as a converter sees it."""

    b: Any  # the importer's builder: add(), view(), define(), constants
    layer: Any
    name: str  # name of the call's output tensor
    prefix: str  # nested-model prefix of constant names
    ins: list  # the input tensors as held (name, rank, perm, views)
    node: Any  # the keras Node of this call

    def rank(self, i: int = 0) -> int:
        return self.ins[i].rank

    def perm(self, i: int = 0) -> Perm:
        """Layout input ``i`` is held in now (converters that do not care keep it)."""
        return self.ins[i].perm

    def x(self, i: int = 0, perm: Perm | None = None) -> str:
        """Input ``i`` in layout ``perm`` (any layout if None)."""
        return self.b.view(self.ins[i], perm)

    def in_shape(self, i: int = 0) -> tuple:
        return tuple(self.node.input_tensors[i].shape)

    def const(self, key: str, value) -> str:
        """Add a weight constant named ``"{layer.name}/{key}"`` (shared by calls of the layer)."""
        value = np.asarray(value)
        for name in (f"{self.prefix}{self.layer.name}/{key}", f"{self.name}/{key}"):
            have = self.b.constants.get(name)
            if have is None or (have.shape == value.shape and np.array_equal(have, value)):
                self.b.constants[name] = value
                return name
        raise AssertionError(f"constant name clash for {self.name}/{key}")

    def weight(self, variable) -> np.ndarray:
        import keras

        value = getattr(variable, "value", variable)  # the backend tensor behind a Variable
        if hasattr(value, "detach"):  # torch: np.array(tensor) warns about copy= under NumPy 2
            return value.detach().cpu().numpy().astype(np.float32)
        return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float32)

    def emit(self, op: Op, inputs: list[str], suffix: str, perm: Perm) -> str:
        """A helper layer whose output is named ``"{name}/{suffix}"``."""
        return self.b.add(op, inputs, f"{self.name}/{suffix}", perm)

    def output(self, op: Op, inputs: list[str], perm: Perm) -> None:
        """The layer producing the call's output tensor, held in layout ``perm``."""
        self.b.define(self.node.outputs[0], self.name, op, inputs, perm)

    def finish(self, op: Op, inputs: list[str], perm: Perm, activation=None) -> None:
        """``op`` then the layer's fused activation (if any); the last one carries the name."""
        kind = _activation_kind(self, activation)
        if kind in (None, "linear"):
            self.output(op, inputs, perm)
            return
        _activate(self, kind, self.emit(op, inputs, "preact", perm), perm)

    def unsupported(self, what: str, supported: str) -> UnsupportedOpError:
        return UnsupportedOpError(
            f"Keras layer {self.layer.name!r} ({type(self.layer).__name__}): {what} is not "
            f"supported. Supported: {supported}."
        )


def converter_for(layer) -> Callable[[Call], None]:
    """The converter of a Keras layer; only Keras's own classes (not subclasses, not keras.ops
    operations, which reuse layer class names such as Add) are recognised."""
    import keras

    cls = type(layer)
    is_layer = isinstance(layer, keras.layers.Layer)
    own = cls.__module__.startswith("keras.")
    if is_layer and own and cls.__name__ in CONVERTERS:
        if getattr(layer, "quantization_mode", None):
            raise UnsupportedOpError(
                f"Keras layer {layer.name!r} ({cls.__name__}) is quantized by Keras "
                f"({layer.quantization_mode}); import the float model and quantize it with lwnn."
            )
        return CONVERTERS[cls.__name__]
    kind = "layer" if is_layer else "operation"
    what = "" if own else f" (defined in module {cls.__module__!r})"
    if not is_layer:
        what = " (a keras.ops call; use the equivalent layer)"
    raise UnsupportedOpError(
        f"Keras {kind} {layer.name!r} of class {cls.__name__}{what} is not supported by the lwnn "
        f"Keras importer. Supported layer classes: {', '.join(sorted([*CONVERTERS, 'InputLayer']))}."
    )


# ---------------------------------------------------------------------------------------------
# Activations


def _activation_kind(cv: Call, fn) -> str | None:
    """Name of a Keras activation function (None when there is none)."""
    if fn is None:
        return None
    import keras

    name = getattr(fn, "__name__", repr(fn))
    if getattr(keras.activations, name, None) is not fn or name not in _ACTIVATIONS:
        raise cv.unsupported(f"activation {name!r}", ", ".join(sorted(_ACTIVATIONS)))
    return name


def _softmax_axis(perm: Perm) -> Op:
    return e.Softmax(axis=perm.index(len(perm) - 1))


_ACTIVATIONS: dict[str, Callable[[Perm], Op] | None] = {
    "linear": lambda perm: e.Identity(),
    "relu": lambda perm: e.Relu(),
    "relu6": lambda perm: e.Clip(min=0.0, max=6.0),
    "leaky_relu": lambda perm: e.LeakyRelu(alpha=0.2),
    "elu": lambda perm: e.Elu(alpha=1.0),
    "sigmoid": lambda perm: e.Sigmoid(),
    "hard_sigmoid": lambda perm: e.HardSigmoid(alpha=1 / 6, beta=0.5),
    "hard_silu": lambda perm: e.HardSwish(),  # also keras.activations.hard_swish
    "tanh": lambda perm: e.Tanh(),
    "exponential": lambda perm: e.Exp(),
    "softmax": _softmax_axis,
    "silu": None,  # x * sigmoid(x); also keras.activations.swish
}


def _activate(cv: Call, kind: str, x: str, perm: Perm) -> None:
    if kind == "silu":
        cv.output(e.Mul(), [x, cv.emit(e.Sigmoid(), [x], "sigmoid", perm)], perm)
    else:
        cv.output(_ACTIVATIONS[kind](perm), [x], perm)


def _activation_layer(cv: Call) -> None:
    _activate(cv, _activation_kind(cv, cv.layer.activation), cv.x(), cv.perm())


def _relu(cv: Call) -> None:
    layer = cv.layer
    slope, top, threshold = float(layer.negative_slope), layer.max_value, float(layer.threshold)
    if threshold != 0.0 or (top is not None and float(top) < 0):
        raise cv.unsupported(
            f"ReLU(threshold={threshold}, max_value={top})", "threshold=0 and max_value >= 0 or None"
        )
    x, perm = cv.x(), cv.perm()
    if slope == 0.0:
        cv.output(e.Relu() if top is None else e.Clip(min=0.0, max=float(top)), [x], perm)
    elif top is None:
        cv.output(e.LeakyRelu(alpha=slope), [x], perm)
    else:
        leaky = cv.emit(e.LeakyRelu(alpha=slope), [x], "leaky", perm)
        cv.output(e.Clip(max=float(top)), [leaky], perm)


def _leaky_relu(cv: Call) -> None:
    cv.output(e.LeakyRelu(alpha=float(cv.layer.negative_slope)), [cv.x()], cv.perm())


def _elu(cv: Call) -> None:
    cv.output(e.Elu(alpha=float(cv.layer.alpha)), [cv.x()], cv.perm())


def _broadcast_in(value: np.ndarray, perm: Perm) -> np.ndarray:
    """A constant that broadcasts against a Keras tensor, laid out for the tensor held as ``perm``."""
    value = np.asarray(value, dtype=np.float32)
    return value.reshape((1,) * (len(perm) - value.ndim) + value.shape).transpose(perm)


def _prelu(cv: Call) -> None:
    slope = _broadcast_in(cv.weight(cv.layer.alpha), cv.perm())
    cv.output(e.PRelu(), [cv.x(), cv.const("alpha", slope)], cv.perm())


def _softmax(cv: Call) -> None:
    axis = cv.layer.axis
    if isinstance(axis, list | tuple):
        if len(axis) != 1:
            raise cv.unsupported(f"softmax over several axes {tuple(axis)}", "one axis")
        axis = axis[0]
    perm = cv.perm()
    cv.output(e.Softmax(axis=perm.index(axis % len(perm))), [cv.x()], perm)


# ---------------------------------------------------------------------------------------------
# Convolutions and Dense


def _spatial_perm(layer, rank: int) -> Perm:
    """Layout with channels at axis 1 for this layer's data_format."""
    return ident(rank) if layer.data_format == "channels_first" else channels_first(rank)


def _onnx_kernel(kernel: np.ndarray) -> np.ndarray:
    """Keras [*k, A, B] -> ONNX [B, A, *k] (Conv [*k, C/g, M] -> [M, C/g, *k]; ConvTranspose
    [*k, M, C] -> [C, M, *k])."""
    n = kernel.ndim - 2
    return np.ascontiguousarray(kernel.transpose(n + 1, n, *range(n)))


def _depthwise_kernel(kernel: np.ndarray) -> np.ndarray:
    """Keras depthwise [*k, C, mult] -> ONNX grouped [C*mult, 1, *k] (channel c*mult + m)."""
    n = kernel.ndim - 2
    flat = kernel.reshape(*kernel.shape[:n], -1)
    return np.ascontiguousarray(np.moveaxis(flat, -1, 0)[:, None])


def _conv_padding(cv: Call) -> dict:
    layer = cv.layer
    padding = layer.padding.lower()
    if padding == "valid":
        return {}
    if padding == "same":  # TF/Keras "same" puts the odd pixel at the end: SAME_UPPER
        return {"auto_pad": "SAME_UPPER"}
    if padding == "causal":
        (k,), (d,) = layer.kernel_size, layer.dilation_rate
        return {"pads": ((k - 1) * d, 0)}
    raise cv.unsupported(f"padding={padding!r}", "valid, same, causal")


def _conv_op(cv: Call, group: int = 1) -> c.Conv:
    layer = cv.layer
    return c.Conv(
        strides=tuple(layer.strides), dilations=tuple(layer.dilation_rate), group=group, **_conv_padding(cv)
    )


def _bias(cv: Call, key: str = "bias") -> list[str]:
    bias = cv.layer.bias
    return [] if bias is None else [cv.const(key, cv.weight(bias))]


def _conv(cv: Call) -> None:
    layer = cv.layer
    perm = _spatial_perm(layer, cv.rank())
    w = cv.const("kernel", _onnx_kernel(cv.weight(layer.kernel)))
    cv.finish(_conv_op(cv, layer.groups), [cv.x(0, perm), w, *_bias(cv)], perm, layer.activation)


def _depthwise(cv: Call) -> None:
    layer = cv.layer
    perm = _spatial_perm(layer, cv.rank())
    kernel = cv.weight(layer.kernel)
    w = cv.const("kernel", _depthwise_kernel(kernel))
    op = _conv_op(cv, group=kernel.shape[-2])
    cv.finish(op, [cv.x(0, perm), w, *_bias(cv)], perm, layer.activation)


def _separable(cv: Call) -> None:
    layer = cv.layer
    perm = _spatial_perm(layer, cv.rank())
    depthwise = cv.weight(layer.depthwise_kernel)
    dw = cv.const("depthwise_kernel", _depthwise_kernel(depthwise))
    mid = cv.emit(_conv_op(cv, group=depthwise.shape[-2]), [cv.x(0, perm), dw], "depthwise", perm)
    pw = cv.const("pointwise_kernel", _onnx_kernel(cv.weight(layer.pointwise_kernel)))
    cv.finish(c.Conv(), [mid, pw, *_bias(cv)], perm, layer.activation)


def _conv_transpose(cv: Call) -> None:
    layer = cv.layer
    perm = _spatial_perm(layer, cv.rank())
    padding = layer.padding.lower()
    n = len(layer.kernel_size)
    out_padding = layer.output_padding or (None,) * n
    begins, ends, extra = [], [], []
    for k, st, d, op_ in zip(layer.kernel_size, layer.strides, layer.dilation_rate, out_padding, strict=True):
        # Keras: the full transposed convolution, cropped by (k_eff - 1 - left, k_eff - 1 - right)
        # with (left, right) the padding Keras gives the equivalent dilated convolution.
        k_eff = (k - 1) * d + 1
        if padding == "valid":
            op_ = max(k_eff, st) - k_eff if op_ is None else op_
            left, right = k_eff - 1, k_eff - 1 + op_
        elif padding == "same":
            total = st + k_eff - 2 if op_ is None else k_eff + k_eff % 2 - 2 + op_
            left = min(total // 2 + total % 2, k_eff - 1)
            right = total - left
        else:
            raise cv.unsupported(f"padding={padding!r}", "valid, same")
        crop_left, crop_right = k_eff - 1 - left, k_eff - 1 - right
        begins.append(crop_left)
        ends.append(max(crop_right, 0))
        extra.append(max(-crop_right, 0))  # a negative crop extends the output with zeros
    op = c.ConvTranspose(
        strides=tuple(layer.strides), dilations=tuple(layer.dilation_rate), pads=tuple(begins + ends),
        output_padding=tuple(extra),
    )
    w = cv.const("kernel", _onnx_kernel(cv.weight(layer.kernel)))
    cv.finish(op, [cv.x(0, perm), w, *_bias(cv)], perm, layer.activation)


def _dense(cv: Call) -> None:
    layer = cv.layer
    kernel = cv.weight(layer.kernel)  # [K, U]
    rank, perm = cv.rank(), cv.perm()
    if rank == 2:
        w = cv.const("kernel", np.ascontiguousarray(kernel.T))
        cv.finish(c.Dense(trans_b=True), [cv.x(), w, *_bias(cv)], perm, layer.activation)
    elif rank in (3, 4) and perm[1] == rank - 1:
        # Dense acts on the last (channel) axis: on a channels-first tensor it is a 1x1 Conv.
        w = cv.const("kernel", np.ascontiguousarray(kernel.T).reshape(*kernel.T.shape, *(1,) * (rank - 2)))
        cv.finish(c.Conv(), [cv.x(), w, *_bias(cv)], perm, layer.activation)
    else:
        keras_order = ident(rank)
        w = cv.const("kernel", kernel)
        if layer.bias is None:
            cv.finish(c.MatMul(), [cv.x(0, keras_order), w], keras_order, layer.activation)
            return
        y = cv.emit(c.MatMul(), [cv.x(0, keras_order), w], "matmul", keras_order)
        cv.finish(e.Add(), [y, *_bias(cv)], keras_order, layer.activation)


def _batch_norm(cv: Call) -> None:
    layer = cv.layer
    rank, perm = cv.rank(), cv.perm()
    axis = layer.axis % rank
    if perm[1] != axis:
        perm = (0, axis, *[a for a in range(1, rank) if a != axis])  # channels-first for axis -1
    mean, var = cv.weight(layer.moving_mean), cv.weight(layer.moving_variance)
    gamma = cv.weight(layer.gamma) if layer.gamma is not None else np.ones_like(mean)
    beta = cv.weight(layer.beta) if layer.beta is not None else np.zeros_like(mean)
    params = [cv.const(k, v) for k, v in
              (("gamma", gamma), ("beta", beta), ("moving_mean", mean), ("moving_variance", var))]
    cv.output(e.BatchNorm(epsilon=float(layer.epsilon)), [cv.x(0, perm), *params], perm)


# ---------------------------------------------------------------------------------------------
# Pooling


def _pool(cv: Call) -> None:
    import keras

    layer = cv.layer
    perm = _spatial_perm(layer, cv.rank())
    kernel, strides = tuple(layer.pool_size), tuple(layer.strides)
    cls = p.MaxPool if "Max" in type(layer).__name__ else p.AveragePool
    padding = layer.padding.lower()
    x = cv.x(0, perm)
    if padding == "valid":
        cv.output(cls(kernel_shape=kernel, strides=strides), [x], perm)
        return
    if padding != "same":
        raise cv.unsupported(f"padding={padding!r}", "valid, same")
    sizes = [cv.in_shape()[a] for a in perm[2:]]
    pads = _same_pads(sizes, kernel, strides)
    torch_avg = cls is p.AveragePool and keras.backend.backend() == "torch"
    if torch_avg and pads is None:
        warnings.warn(
            f"Keras layer {layer.name!r}: input size unknown at import; AveragePooling 'same' is "
            "imported with TF semantics (pads not counted), which differs from Keras's torch backend "
            "where the padding is uneven. Give keras.Input a static spatial shape to match it.",
            stacklevel=2,
        )
    if torch_avg and pads is not None:
        begins, ends = pads[: len(kernel)], pads[len(kernel):]
        if begins != ends:
            # Keras's torch backend pads unevenly by edge replication, and the copies count.
            widths = np.array([0, 0, *begins, 0, 0, *ends], dtype=np.int64)
            x = cv.emit(s.Pad(mode="edge"), [x, cv.const("pads", widths)], "pad", perm)
            cv.output(cls(kernel_shape=kernel, strides=strides), [x], perm)
            return
    cv.output(cls(kernel_shape=kernel, strides=strides, auto_pad="SAME_UPPER"), [x], perm)


def _same_pads(sizes: list, kernel: tuple, strides: tuple) -> tuple | None:
    """Explicit SAME_UPPER pads for static spatial ``sizes`` (None if a size is unknown)."""
    if any(d is None for d in sizes):
        return None
    from lwnn.ops.base import window_pads

    return window_pads("SAME_UPPER", (), tuple(sizes), kernel, strides, (1,) * len(kernel))


def _global_pool(cv: Call) -> None:
    layer = cv.layer
    rank = cv.rank()
    perm = _spatial_perm(layer, rank)
    op = p.GlobalMaxPool() if "Max" in type(layer).__name__ else p.GlobalAveragePool()
    if layer.keepdims:
        cv.output(op, [cv.x(0, perm)], perm)
        return
    pooled = cv.emit(op, [cv.x(0, perm)], "keepdims", perm)
    cv.output(s.Flatten(axis=1), [pooled], (0, 1))


# ---------------------------------------------------------------------------------------------
# Shape, merge and resampling layers


def _identity(cv: Call) -> None:
    cv.output(e.Identity(), [cv.x()], cv.perm())


def _flatten(cv: Call) -> None:
    rank = cv.rank()
    order = ident(rank)
    if getattr(cv.layer, "data_format", "channels_last") == "channels_first" and rank > 2:
        order = (0, *range(2, rank), 1)  # Keras flattens channels_first inputs channels-last
    cv.output(s.Flatten(axis=1), [cv.x(0, order)], (0, 1))


def _reshape(cv: Call) -> None:
    target = np.array([0, *cv.layer.target_shape], dtype=np.int64)  # 0 keeps the batch dim
    rank = len(target)
    cv.output(s.Reshape(), [cv.x(0, ident(cv.rank())), cv.const("shape", target)], ident(rank))


def _permute(cv: Call) -> None:
    want = (0, *cv.layer.dims)
    cv.output(s.Transpose(perm=relative(cv.perm(), want)), [cv.x()], ident(len(want)))


def _common_perm(cv: Call) -> Perm:
    ranks = {t.rank for t in cv.ins}
    if len(ranks) != 1:
        raise cv.unsupported(f"inputs of different ranks {sorted(ranks)}", "inputs of equal rank")
    perms = [t.perm for t in cv.ins]
    return max(perms, key=perms.count)


_MERGE_OPS = {"Add": e.Add, "Subtract": e.Sub, "Multiply": e.Mul, "Average": e.Add}


def _merge(cv: Call) -> None:
    cls = type(cv.layer).__name__
    perm = _common_perm(cv)
    xs = [cv.x(i, perm) for i in range(len(cv.ins))]
    if cls in ("Maximum", "Minimum"):
        cv.output(e.Max() if cls == "Maximum" else e.Min(), xs, perm)
        return
    op = _MERGE_OPS[cls]()
    acc = xs[0]
    for i, x in enumerate(xs[1:], 1):  # lwnn's arithmetic ops are binary
        if i == len(xs) - 1 and cls != "Average":
            cv.output(op, [acc, x], perm)
            return
        acc = cv.emit(op, [acc, x], f"partial{i}", perm)
    scale = cv.const("scale", np.array(1.0 / len(xs), dtype=np.float32))
    cv.output(e.Mul(), [acc, scale], perm)


def _concat(cv: Call) -> None:
    perm = _common_perm(cv)
    xs = [cv.x(i, perm) for i in range(len(cv.ins))]
    cv.output(s.Concat(axis=perm.index(cv.layer.axis % len(perm))), xs, perm)


def _keras_spatial_axes(cv: Call) -> tuple[int, ...]:
    rank = cv.rank()
    first = getattr(cv.layer, "data_format", "channels_last") == "channels_first"
    return tuple(range(2, rank)) if first else tuple(range(1, rank - 1))


def _zero_pad(cv: Call) -> None:
    padding = cv.layer.padding
    padding = [padding] if isinstance(padding[0], int) else padding  # ZeroPadding1D: (left, right)
    widths = {a: tuple(w) for a, w in zip(_keras_spatial_axes(cv), padding, strict=True)}
    perm = cv.perm()
    held = [widths.get(a, (0, 0)) for a in perm]
    pads = np.array([b for b, _ in held] + [e_ for _, e_ in held], dtype=np.int64)
    cv.output(s.Pad(), [cv.x(), cv.const("pads", pads)], perm)


def _crop(cv: Call) -> None:
    cropping = cv.layer.cropping
    cropping = [cropping] if isinstance(cropping[0], int) else cropping  # Cropping1D
    perm = cv.perm()
    axes = [perm.index(a) for a in _keras_spatial_axes(cv)]
    starts = np.array([b for b, _ in cropping], dtype=np.int64)
    ends = np.array([-e_ if e_ else np.iinfo(np.int64).max for _, e_ in cropping], dtype=np.int64)
    params = [cv.const(k, v) for k, v in (("starts", starts), ("ends", ends), ("axes", np.array(axes)))]
    cv.output(s.Slice(), [cv.x(), *params], perm)


def _upsample(cv: Call) -> None:
    layer = cv.layer
    size = layer.size if isinstance(layer.size, tuple | list) else (layer.size,)
    factors = dict(zip(_keras_spatial_axes(cv), size, strict=True))
    perm = cv.perm()
    scales = np.array([factors.get(a, 1) for a in perm], dtype=np.float32)
    mode = getattr(layer, "interpolation", "nearest")
    if mode == "nearest":  # Keras repeats pixels: source index = floor(out / factor)
        op = s.Resize(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif mode == "bilinear":
        op = s.Resize(mode="linear", coordinate_transformation_mode="half_pixel")
    else:
        raise cv.unsupported(f"interpolation={mode!r}", "nearest, bilinear")
    cv.output(op, [cv.x(), "", cv.const("scales", scales)], perm)


def _rescaling(cv: Call) -> None:
    import keras

    layer, perm = cv.layer, cv.perm()
    scale, offset = np.asarray(layer.scale, np.float32), np.asarray(layer.offset, np.float32)
    if (scale.ndim or offset.ndim) and keras.config.image_data_format() != "channels_last":
        raise cv.unsupported("array scale/offset with image_data_format channels_first", "scalars")
    if scale.ndim > cv.rank() or offset.ndim > cv.rank():
        raise ShapeError(f"Keras layer {layer.name!r}: scale/offset of higher rank than its input.")
    y = cv.emit(e.Mul(), [cv.x(), cv.const("scale", _broadcast_in(scale, perm))], "scaled", perm)
    cv.output(e.Add(), [y, cv.const("offset", _broadcast_in(offset, perm))], perm)


CONVERTERS: dict[str, Callable[[Call], None]] = {
    "Conv1D": _conv, "Conv2D": _conv,
    "DepthwiseConv1D": _depthwise, "DepthwiseConv2D": _depthwise,
    "SeparableConv1D": _separable, "SeparableConv2D": _separable,
    "Conv1DTranspose": _conv_transpose, "Conv2DTranspose": _conv_transpose,
    "Dense": _dense, "BatchNormalization": _batch_norm,
    "Activation": _activation_layer, "ReLU": _relu, "LeakyReLU": _leaky_relu, "PReLU": _prelu,
    "ELU": _elu, "Softmax": _softmax,
    "MaxPooling1D": _pool, "MaxPooling2D": _pool, "AveragePooling1D": _pool, "AveragePooling2D": _pool,
    "GlobalAveragePooling1D": _global_pool, "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling1D": _global_pool, "GlobalMaxPooling2D": _global_pool,
    "Flatten": _flatten, "Reshape": _reshape, "Permute": _permute,
    "Add": _merge, "Subtract": _merge, "Multiply": _merge, "Average": _merge,
    "Maximum": _merge, "Minimum": _merge, "Concatenate": _concat,
    "ZeroPadding1D": _zero_pad, "ZeroPadding2D": _zero_pad,
    "Cropping1D": _crop, "Cropping2D": _crop,
    "UpSampling1D": _upsample, "UpSampling2D": _upsample,
    "Rescaling": _rescaling,
    # Identity at inference time.
    "Dropout": _identity, "SpatialDropout1D": _identity, "SpatialDropout2D": _identity,
    "GaussianNoise": _identity, "GaussianDropout": _identity, "AlphaDropout": _identity,
    "ActivityRegularization": _identity, "Identity": _identity,
}
