"""Caffe importer: a deploy ``.prototxt`` plus its ``.caffemodel`` -> Graph (NCHW as Caffe).

Layers: Input (or the net's input/input_shape/input_dim), Convolution, Deconvolution,
BatchNorm (mean and variance divided by the stored scale factor, as Caffe does), Scale,
ReLU (negative_slope), PReLU, Sigmoid, TanH, Pooling (MAX/AVE, Caffe's ceil rounding, global),
Eltwise (SUM with coefficients, PROD, MAX), Concat, Permute, Flatten, Reshape, Softmax,
InnerProduct, Dropout (identity), Split, and SSD's PriorBox and DetectionOutput. Layers
restricted to the TRAIN phase are left out. Not supported: the V1 ``layers`` format, data and
loss layers, and layers outside that list (each reported with the list).

Caffe computes in place (``top`` equal to ``bottom``); lwnn needs one name per tensor, so an
in-place layer's output is named after the layer. Weights are matched to layers by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lwnn.errors import ModelFormatError, UnsupportedOpError
from lwnn.graph import Graph, Layer, TensorSpec
from lwnn.ops import conv as c
from lwnn.ops import detection as d
from lwnn.ops import elementwise as e
from lwnn.ops import pool as p
from lwnn.ops import shape as s


def bundled_prototxt(name: str = "mobilenet_ssd_deploy.prototxt") -> Path:
    """Path of a Caffe deploy prototxt shipped with lwnn (written by lwnn.zoo.mobilenet_ssd_caffe)."""
    from importlib import resources

    path = resources.files("lwnn.data") / "caffe" / name
    if not path.is_file():
        shipped = sorted(f.name for f in (resources.files("lwnn.data") / "caffe").iterdir())
        raise ModelFormatError(f"No bundled Caffe prototxt {name!r}. Bundled: {', '.join(shipped)}.")
    return Path(str(path))


def _parse_prototxt(path: Path):
    from google.protobuf import text_format

    from lwnn.importers.caffe_proto import messages

    if not path.is_file():
        raise ModelFormatError(f"No Caffe prototxt at {str(path)!r}.")
    net = messages()["NetParameter"]()
    try:
        text_format.Parse(path.read_text(), net, allow_unknown_field=True)
    except (text_format.ParseError, UnicodeDecodeError) as err:
        raise ModelFormatError(f"{str(path)!r} is not a readable Caffe prototxt: {err}") from None
    if len(net.layers):
        raise UnsupportedOpError(
            f"{str(path)!r} uses Caffe's deprecated V1 'layers' format; upgrade it with Caffe's "
            "upgrade_net_proto_text tool. Supported: the 'layer' format."
        )
    return net


def _parse_caffemodel(path: Path) -> dict[str, list[np.ndarray]]:
    from google.protobuf.message import DecodeError

    from lwnn.importers.caffe_proto import messages

    if not path.is_file():
        raise ModelFormatError(f"No caffemodel at {str(path)!r}.")
    net = messages()["NetParameter"]()
    try:
        net.ParseFromString(path.read_bytes())
    except DecodeError as err:
        raise ModelFormatError(
            f"{str(path)!r} is not a readable caffemodel (corrupt or truncated): {err}"
        ) from None
    if len(net.layers):
        raise UnsupportedOpError(f"{str(path)!r} stores weights in the deprecated V1 format; not supported.")
    return {layer.name: [_blob(b, layer.name) for b in layer.blobs] for layer in net.layer}


def _blob(blob, layer: str) -> np.ndarray:
    data = np.asarray(blob.data, np.float32) if len(blob.data) else np.asarray(blob.double_data, np.float32)
    if blob.HasField("shape"):
        shape = tuple(int(v) for v in blob.shape.dim)
    else:  # legacy 4-D num/channels/height/width
        shape = tuple(int(v) for v in (blob.num, blob.channels, blob.height, blob.width))
    if int(np.prod(shape)) != data.size:
        raise ModelFormatError(
            f"Caffe layer {layer!r}: a blob of shape {shape} holds {data.size} values; expected "
            f"{int(np.prod(shape))}."
        )
    return data.reshape(shape)


def _in_test_phase(layer) -> bool:
    if any(rule.HasField("phase") and rule.phase == 1 for rule in layer.exclude):
        return False
    if layer.include:
        return any(not rule.HasField("phase") or rule.phase == 1 for rule in layer.include)
    return not (layer.HasField("phase") and layer.phase == 0)


def _pair(values, single_h, single_w, default: int, what: str, layer: str) -> tuple[int, int]:
    """(h, w) from a repeated field of 0, 1 or 2 values or from the *_h/*_w fields."""
    if single_h is not None and single_w is not None:
        return int(single_h), int(single_w)
    values = [int(v) for v in values]
    if not values:
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise UnsupportedOpError(f"Caffe layer {layer!r}: {what} {values} is not 2-D; lwnn imports 2-D layers.")


def _opt(param, field: str):
    return getattr(param, field) if param.HasField(field) else None


class _Builder:
    def __init__(self, net, weights: dict[str, list[np.ndarray]]):
        self.net, self.weights = net, weights
        self.layers: list[Layer] = []
        self.constants: dict[str, np.ndarray] = {}
        self.inputs: dict[str, TensorSpec] = {}
        self.current: dict[str, str] = {}  # Caffe blob name -> lwnn tensor holding it now
        self.names: set[str] = set()
        self.consumed: set[str] = set()

    def build(self) -> Graph:
        net = self.net
        shapes = [tuple(int(v) for v in sh.dim) for sh in net.input_shape]
        dims = [int(v) for v in net.input_dim]
        for i, name in enumerate(net.input):
            shape = shapes[i] if i < len(shapes) else tuple(dims[4 * i: 4 * i + 4]) or None
            self._input(name, shape)
        for layer in net.layer:
            if not _in_test_phase(layer):
                continue
            convert = _CONVERTERS.get(layer.type)
            if convert is None:
                raise UnsupportedOpError(
                    f"Caffe layer {layer.name!r}: type {layer.type!r} is not supported. Supported: "
                    f"{', '.join(sorted(_CONVERTERS))}."
                )
            for bottom in layer.bottom:
                if bottom not in self.current:
                    raise ModelFormatError(
                        f"Caffe layer {layer.name!r} reads blob {bottom!r}, which no earlier layer or input "
                        "produces."
                    )
            convert(self, layer)
        if not self.inputs:
            raise ModelFormatError("The Caffe net declares no input (an Input layer or input/input_shape).")
        outputs = [t for t in self.current.values() if t not in self.consumed and t not in self.inputs]
        return Graph(self.inputs, list(dict.fromkeys(outputs)), self.layers, self.constants,
                     name=net.name or "caffe_model")

    # --- helpers ---------------------------------------------------------------------------

    def _input(self, blob: str, shape) -> None:
        self.inputs[blob] = TensorSpec(blob, np.float32, tuple(shape) if shape else None)
        self.current[blob] = blob
        self.names.add(blob)

    def bottoms(self, layer) -> list[str]:
        tensors = [self.current[b] for b in layer.bottom]
        self.consumed.update(tensors)
        return tensors

    def blobs(self, layer, count: int) -> list[np.ndarray]:
        found = self.weights.get(layer.name)
        if found is None or len(found) < count:
            have = 0 if found is None else len(found)
            raise ModelFormatError(
                f"Caffe layer {layer.name!r} ({layer.type}) needs {count} weight blob(s) from the "
                f"caffemodel. Received {have}."
            )
        return found

    def const(self, name: str, value: np.ndarray) -> str:
        self.constants[name] = np.asarray(value, np.float32)
        return name

    def add(self, layer, op, inputs: list[str], suffix: str = "") -> str:
        """Append an lwnn layer computing Caffe ``layer``'s top (or an inner step, with ``suffix``)."""
        top = layer.top[0] if layer.top else layer.name
        name = f"{layer.name}{suffix}"
        tensor = top if not suffix and top not in self.names else name
        while tensor in self.names:
            tensor += "_"
        self.layers.append(Layer(name, op, tuple(inputs), (tensor,)))
        self.names.add(tensor)
        if not suffix:
            self.current[top] = tensor
        return tensor


# --- converters, one per Caffe layer type ----------------------------------------------------

def _input_layer(b: _Builder, layer) -> None:
    shapes = [tuple(int(v) for v in sh.dim) for sh in layer.input_param.shape]
    for i, top in enumerate(layer.top):
        b._input(top, shapes[i] if i < len(shapes) else (shapes[0] if shapes else None))


def _convolution(b: _Builder, layer) -> None:
    cp = layer.convolution_param
    if cp.axis != 1:
        raise UnsupportedOpError(f"Caffe layer {layer.name!r}: convolution axis {cp.axis} (only 1).")
    kernel = _pair(cp.kernel_size, _opt(cp, "kernel_h"), _opt(cp, "kernel_w"), 1, "kernel_size", layer.name)
    stride = _pair(cp.stride, _opt(cp, "stride_h"), _opt(cp, "stride_w"), 1, "stride", layer.name)
    pad = _pair(cp.pad, _opt(cp, "pad_h"), _opt(cp, "pad_w"), 0, "pad", layer.name)
    dilation = _pair(cp.dilation, None, None, 1, "dilation", layer.name)
    blobs = b.blobs(layer, 2 if cp.bias_term else 1)
    inputs = [*b.bottoms(layer), b.const(f"{layer.name}.weight", blobs[0])]
    if cp.bias_term:
        inputs.append(b.const(f"{layer.name}.bias", blobs[1].reshape(-1)))
    common = dict(strides=stride, pads=(pad[0], pad[1], pad[0], pad[1]), dilations=dilation,
                  group=int(cp.group))
    if blobs[0].shape[2:] != kernel:
        raise ModelFormatError(
            f"Caffe layer {layer.name!r}: kernel {kernel} but weights of shape {blobs[0].shape}."
        )
    op = c.ConvTranspose(**common) if layer.type == "Deconvolution" else c.Conv(**common)
    b.add(layer, op, inputs)


def _batch_norm(b: _Builder, layer) -> None:
    mean, var, factor = b.blobs(layer, 3)[:3]
    scale = 0.0 if float(factor.reshape(-1)[0]) == 0 else 1.0 / float(factor.reshape(-1)[0])
    channels = mean.size
    inputs = [
        *b.bottoms(layer), b.const(f"{layer.name}.gamma", np.ones(channels)),
        b.const(f"{layer.name}.beta", np.zeros(channels)),
        b.const(f"{layer.name}.mean", mean.reshape(-1) * scale),
        b.const(f"{layer.name}.var", var.reshape(-1) * scale),
    ]
    b.add(layer, e.BatchNorm(epsilon=float(layer.batch_norm_param.eps)), inputs)


def _scale(b: _Builder, layer) -> None:
    sp = layer.scale_param
    if len(layer.bottom) != 1 or sp.axis != 1 or sp.num_axes != 1:
        raise UnsupportedOpError(
            f"Caffe layer {layer.name!r}: Scale with {len(layer.bottom)} bottoms, axis {sp.axis}, num_axes "
            f"{sp.num_axes}. Supported: one bottom, a learned per-channel scale (axis 1, num_axes 1)."
        )
    blobs = b.blobs(layer, 2 if sp.bias_term else 1)
    gamma = blobs[0].reshape(-1)
    beta = blobs[1].reshape(-1) if sp.bias_term else np.zeros_like(gamma)
    # y = gamma * x + beta as an inference BatchNorm with mean 0, variance 1, epsilon 0.
    inputs = [*b.bottoms(layer), b.const(f"{layer.name}.gamma", gamma), b.const(f"{layer.name}.beta", beta),
              b.const(f"{layer.name}.mean", np.zeros_like(gamma)),
              b.const(f"{layer.name}.var", np.ones_like(gamma))]
    b.add(layer, e.BatchNorm(epsilon=0.0), inputs)


def _relu(b: _Builder, layer) -> None:
    slope = float(layer.relu_param.negative_slope)
    b.add(layer, e.LeakyRelu(alpha=slope) if slope else e.Relu(), b.bottoms(layer))


def _prelu(b: _Builder, layer) -> None:
    slope = b.blobs(layer, 1)[0].reshape(-1)
    # One slope per channel (or one for all): broadcast over [N, C, H, W] as ONNX PRelu does.
    shape = (1,) if layer.prelu_param.channel_shared else (slope.size, 1, 1)
    b.add(layer, e.PRelu(), [*b.bottoms(layer), b.const(f"{layer.name}.slope", slope.reshape(shape))])


def _pooling(b: _Builder, layer) -> None:
    pp = layer.pooling_param
    method = {0: "MAX", 1: "AVE"}.get(pp.pool)
    if method is None:
        raise UnsupportedOpError(
            f"Caffe layer {layer.name!r}: STOCHASTIC pooling is not supported. Supported: MAX, AVE."
        )
    if pp.global_pooling:
        b.add(layer, p.GlobalMaxPool() if method == "MAX" else p.GlobalAveragePool(), b.bottoms(layer))
        return
    kernel = _pair([pp.kernel_size] if pp.HasField("kernel_size") else [], _opt(pp, "kernel_h"),
                   _opt(pp, "kernel_w"), 0, "kernel_size", layer.name)
    stride = _pair([pp.stride], _opt(pp, "stride_h"), _opt(pp, "stride_w"), 1, "stride", layer.name)
    pad = _pair([pp.pad], _opt(pp, "pad_h"), _opt(pp, "pad_w"), 0, "pad", layer.name)
    # Caffe rounds the output size up (ceil_mode) and drops a last window that starts in the padding.
    args = dict(kernel_shape=kernel, strides=stride, pads=(pad[0], pad[1], pad[0], pad[1]), ceil_mode=True)
    op = p.MaxPool(**args) if method == "MAX" else p.AveragePool(count_include_pad=True, **args)
    b.add(layer, op, b.bottoms(layer))


def _eltwise(b: _Builder, layer) -> None:
    ep = layer.eltwise_param
    xs = b.bottoms(layer)
    op_type = {0: e.Mul, 1: e.Add, 2: e.Max}[ep.operation]
    coeffs = list(ep.coeff)
    if coeffs and (ep.operation != 1 or len(coeffs) != len(xs)):
        raise UnsupportedOpError(f"Caffe layer {layer.name!r}: Eltwise coeff needs SUM and one per bottom.")
    if coeffs and any(v != 1 for v in coeffs):
        xs = [x if v == 1 else b.add(layer, e.Mul(), [x, b.const(f"{layer.name}.coeff{i}", np.float32(v))],
                                     f".scale{i}") for i, (x, v) in enumerate(zip(xs, coeffs))]
    y = xs[0]
    for i, x in enumerate(xs[1:], start=1):
        last = i == len(xs) - 1
        y = b.add(layer, op_type(), [y, x], "" if last else f".step{i}")
    if len(xs) == 1:
        b.add(layer, e.Identity(), [y])


def _concat(b: _Builder, layer) -> None:
    cp = layer.concat_param
    axis = cp.axis if cp.HasField("axis") or not cp.HasField("concat_dim") else cp.concat_dim
    b.add(layer, s.Concat(axis=int(axis)), b.bottoms(layer))


def _permute(b: _Builder, layer) -> None:
    order = [int(v) for v in layer.permute_param.order]
    b.add(layer, s.Transpose(perm=tuple(order)), b.bottoms(layer))


def _flatten(b: _Builder, layer) -> None:
    fp = layer.flatten_param
    if fp.end_axis != -1 or fp.axis < 0:
        raise UnsupportedOpError(
            f"Caffe layer {layer.name!r}: Flatten with end_axis {fp.end_axis} is not supported (only -1)."
        )
    # Keep the leading axes (0 copies a dimension), flatten the rest: Caffe's output rank axis + 1.
    shape = f"{layer.name}.shape"
    b.constants[shape] = np.array([0] * fp.axis + [-1], np.int64)
    b.add(layer, s.Reshape(), [*b.bottoms(layer), shape])


def _reshape(b: _Builder, layer) -> None:
    rp = layer.reshape_param
    if rp.axis != 0 or rp.num_axes != -1:
        raise UnsupportedOpError(
            f"Caffe layer {layer.name!r}: Reshape with axis/num_axes is not supported (only the whole shape)."
        )
    dims = np.array([int(v) for v in rp.shape.dim], np.int64)
    shape = f"{layer.name}.shape"
    b.constants[shape] = dims
    b.add(layer, s.Reshape(), [*b.bottoms(layer), shape])


def _softmax(b: _Builder, layer) -> None:
    b.add(layer, e.Softmax(axis=int(layer.softmax_param.axis)), b.bottoms(layer))


def _inner_product(b: _Builder, layer) -> None:
    ip = layer.inner_product_param
    blobs = b.blobs(layer, 2 if ip.bias_term else 1)
    x = b.add(layer, s.Flatten(axis=int(ip.axis)), b.bottoms(layer), ".flatten")
    weight = blobs[0].reshape(blobs[0].shape[-2:]) if blobs[0].ndim > 2 else blobs[0]
    inputs = [x, b.const(f"{layer.name}.weight", weight)]
    if ip.bias_term:
        inputs.append(b.const(f"{layer.name}.bias", blobs[1].reshape(-1)))
    b.add(layer, c.Dense(trans_b=not ip.transpose), inputs)


def _identity(b: _Builder, layer) -> None:
    x = b.bottoms(layer)[0]
    for i, top in enumerate(layer.top):
        name = layer.name if i == 0 else f"{layer.name}.{i}"
        tensor = top if top not in b.names else name
        b.layers.append(Layer(name, e.Identity(), (x,), (tensor,)))
        b.names.add(tensor)
        b.current[top] = tensor


def _unary(op_cls):
    return lambda b, layer: b.add(layer, op_cls(), b.bottoms(layer))


def _prior_box(b: _Builder, layer) -> None:
    pb = layer.prior_box_param
    img_h = pb.img_h if pb.HasField("img_h") else pb.img_size if pb.HasField("img_size") else 0
    img_w = pb.img_w if pb.HasField("img_w") else pb.img_size if pb.HasField("img_size") else 0
    step_h = pb.step_h if pb.HasField("step_h") else pb.step if pb.HasField("step") else 0.0
    step_w = pb.step_w if pb.HasField("step_w") else pb.step if pb.HasField("step") else 0.0
    op = d.PriorBox(
        min_sizes=tuple(float(v) for v in pb.min_size), max_sizes=tuple(float(v) for v in pb.max_size),
        aspect_ratios=tuple(float(v) for v in pb.aspect_ratio), flip=bool(pb.flip), clip=bool(pb.clip),
        variances=tuple(float(v) for v in pb.variance) or (0.1,), img_h=int(img_h), img_w=int(img_w),
        step_h=float(step_h), step_w=float(step_w), offset=float(pb.offset),
    )
    b.add(layer, op, b.bottoms(layer)[:2])


def _detection_output(b: _Builder, layer) -> None:
    dp = layer.detection_output_param
    if len(layer.bottom) != 3:
        raise UnsupportedOpError(
            f"Caffe layer {layer.name!r}: DetectionOutput with {len(layer.bottom)} bottoms is not supported "
            "(only loc, conf, priors)."
        )
    code = {1: "CORNER", 2: "CENTER_SIZE", 3: "CORNER_SIZE"}[dp.code_type]
    threshold = _opt(dp, "confidence_threshold")  # none given: Caffe considers every box
    threshold = -np.inf if threshold is None else float(threshold)
    op = d.DetectionOutput(
        num_classes=int(dp.num_classes), share_location=bool(dp.share_location),
        background_label_id=int(dp.background_label_id), nms_threshold=float(dp.nms_param.nms_threshold),
        top_k=int(dp.nms_param.top_k) if dp.nms_param.HasField("top_k") else -1,
        keep_top_k=int(dp.keep_top_k), eta=float(dp.nms_param.eta),
        confidence_threshold=threshold,
        variance_encoded_in_target=bool(dp.variance_encoded_in_target), code_type=code,
    )
    b.add(layer, op, b.bottoms(layer))


_CONVERTERS = {
    "Input": _input_layer, "Convolution": _convolution, "Deconvolution": _convolution,
    "BatchNorm": _batch_norm, "Scale": _scale, "ReLU": _relu, "PReLU": _prelu, "Sigmoid": _unary(e.Sigmoid),
    "TanH": _unary(e.Tanh), "Pooling": _pooling, "Eltwise": _eltwise, "Concat": _concat,
    "Permute": _permute, "Flatten": _flatten, "Reshape": _reshape, "Softmax": _softmax,
    "InnerProduct": _inner_product, "Dropout": _identity, "Split": _identity,
    "PriorBox": _prior_box, "DetectionOutput": _detection_output,
}


def import_caffe(prototxt: str | os.PathLike, caffemodel: str | os.PathLike | None) -> Graph:
    """A Caffe net (deploy prototxt + caffemodel weights) as an lwnn Graph."""
    if caffemodel is None:
        raise ModelFormatError(
            f"Caffe model {str(prototxt)!r} needs its weights: lwnn.load(prototxt, weights=caffemodel)."
        )
    net = _parse_prototxt(Path(prototxt))
    graph = _Builder(net, _parse_caffemodel(Path(caffemodel))).build()
    return graph
