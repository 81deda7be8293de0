"""One converter per ONNX op: ONNX node attributes (and constant inputs that later opsets moved
out of attributes) -> an lwnn op and its runtime inputs.

A converter returns ``(op, inputs)``; ``inputs`` are the node's tensor names the layer keeps.

Every converter runs behind the same checks (``_checked``), made against the node's ONNX schema
at the model's opset (``onnx.defs.get_schema``, the one source of what an op defines), as
onnxruntime makes them when it loads a model: no attribute the schema does not define, each
attribute of its declared type, the required attributes present, the number of inputs and
outputs in the schema's range and no required input left empty (''). Then the op checks its
attributes (``Op.check_attributes``), and a node whose inputs are all constants (folded at
import) gets its shapes inferred before its kernel runs. Each failure is an ``LwnnError`` naming
the node, the attribute or input, and expected versus received.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lwnn.errors import LwnnError, ModelFormatError, ShapeError, UnsupportedOpError
from lwnn.ops import conv as c
from lwnn.ops import elementwise as e
from lwnn.ops import pool as p
from lwnn.ops import recurrent as rnn
from lwnn.ops import shape as s


@dataclass
class Node:
    """An ONNX node as converters see it."""

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict
    opset: int
    const: Callable[[str], np.ndarray | None]  # constant value of a tensor, or None
    # Where a converter stores a constant it makes from attributes (older opsets kept inputs
    # such as Upsample's scales as attributes); None when the caller gives nowhere to store it.
    constants: dict[str, np.ndarray] | None = None

    def attr(self, key: str, default=None):
        """The raw value of attribute ``key`` (as ``onnx.helper.get_attribute_value`` gives it)."""
        return self.attrs.get(key, default)

    def ints(self, key: str) -> tuple[int, ...]:
        """Attribute ``key`` as a tuple of ints (empty when absent); ModelFormatError otherwise."""
        value = self.attrs.get(key, ())
        if not isinstance(value, list | tuple) or not all(_is_int(v) for v in value):
            raise self.wrong_type(key, "INTS (a list of integers)", value)
        return tuple(int(v) for v in value)

    def floats(self, key: str) -> tuple[float, ...]:
        value = self.attrs.get(key, ())
        if not isinstance(value, list | tuple) or not all(_is_float(v) for v in value):
            raise self.wrong_type(key, "FLOATS (a list of floats)", value)
        return tuple(float(v) for v in value)

    def int_attr(self, key: str, default: int | None = None) -> int | None:
        if key not in self.attrs:
            return default
        value = self.attrs[key]
        if not _is_int(value):
            raise self.wrong_type(key, "INT (an integer)", value)
        return int(value)

    def float_attr(self, key: str, default: float | None = None) -> float | None:
        if key not in self.attrs:
            return default
        value = self.attrs[key]
        if not _is_float(value):
            raise self.wrong_type(key, "FLOAT (a float)", value)
        return float(value)

    def str_attr(self, key: str, default: str | None = None) -> str | None:
        if key not in self.attrs:
            return default
        value = self.attrs[key]
        if isinstance(value, bytes):
            try:
                return value.decode()
            except UnicodeDecodeError:
                raise self.wrong_type(key, "STRING (UTF-8 text)", value) from None
        if not isinstance(value, str):
            raise self.wrong_type(key, "STRING (text)", value)
        return value

    def strs(self, key: str) -> tuple[str, ...]:
        value = self.attrs.get(key, ())
        if not isinstance(value, list | tuple) or not all(isinstance(v, bytes | str) for v in value):
            raise self.wrong_type(key, "STRINGS (a list of strings)", value)
        try:
            return tuple(v.decode() if isinstance(v, bytes) else v for v in value)
        except UnicodeDecodeError:
            raise self.wrong_type(key, "STRINGS (UTF-8 text)", value) from None

    def where(self) -> str:
        return f"Node {self.name!r} ({self.op_type})"

    def wrong_type(self, key: str, expected: str, value) -> ModelFormatError:
        return ModelFormatError(
            f"{self.where()}: attribute {key!r} must be {expected}. Received {_describe(value)}."
        )

    def const_input(self, index: int, what: str) -> np.ndarray | None:
        """Constant value of optional input ``index``; None when omitted; error if not constant."""
        if index >= len(self.inputs) or not self.inputs[index]:
            return None
        value = self.const(self.inputs[index])
        if value is None:
            raise UnsupportedOpError(
                f"Node {self.name!r} ({self.op_type}): {what} (input {self.inputs[index]!r}) must be "
                "a constant; lwnn does not support data-dependent values here."
            )
        return value

    def new_constant(self, suffix: str, value: np.ndarray) -> str:
        """Store ``value`` as a graph constant named after this node; return its name."""
        if self.constants is None:
            raise self.unsupported(f"{suffix} given as an attribute", "the input form of later opsets")
        name = f"{self.name}/{suffix}"
        self.constants[name] = value
        return name

    def unsupported(self, what: str, supported: str) -> UnsupportedOpError:
        return UnsupportedOpError(
            f"Node {self.name!r} ({self.op_type}): {what} is not supported. Supported: {supported}."
        )


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_float(v) -> bool:
    return isinstance(v, float | np.floating)


def _kind(v) -> str:
    """The ONNX attribute type of a value as ``onnx.helper.get_attribute_value`` returns it."""
    import onnx

    if isinstance(v, bool):
        return "BOOL"
    if _is_int(v):
        return "INT"
    if _is_float(v):
        return "FLOAT"
    if isinstance(v, bytes | str):
        return "STRING"
    for name, cls in (("TENSOR", onnx.TensorProto), ("GRAPH", onnx.GraphProto),
                      ("SPARSE_TENSOR", onnx.SparseTensorProto), ("TYPE_PROTO", onnx.TypeProto)):
        if isinstance(v, cls):
            return name
    if isinstance(v, list | tuple):
        if not v:
            return "an empty list"
        kinds = {_kind(e) for e in v}
        return f"{kinds.pop()}S" if len(kinds) == 1 else "a list of mixed or unknown types"
    return type(v).__name__


def _describe(value) -> str:
    import onnx

    if isinstance(value, onnx.TensorProto):
        return f"a TENSOR (dims {list(value.dims)})"
    if isinstance(value, onnx.GraphProto):
        return f"a GRAPH ({value.name!r})"
    text = repr(value)
    return f"{_kind(value)} {text if len(text) <= 60 else text[:57] + '...'}"


_LIST_TYPES = ("INTS", "FLOATS", "STRINGS", "TENSORS", "GRAPHS", "SPARSE_TENSORS", "TYPE_PROTOS")


def _matches(value, attr_type: str) -> bool:
    """Whether a value (as ``get_attribute_value`` gives it) is of schema attribute type
    ``attr_type`` ("INT", "FLOATS", ...). An empty list is any list type: ONNX cannot tell."""
    if attr_type in _LIST_TYPES:
        return isinstance(value, list | tuple) and all(_matches(v, attr_type[:-1]) for v in value)
    return _kind(value) == attr_type


@functools.lru_cache(maxsize=512)
def onnx_schema(op_type: str, opset: int):
    """The ONNX schema of ``op_type`` in effect at ``opset`` (domain ai.onnx); None where
    ``op_type`` is not an ONNX op at all. ModelFormatError where ONNX has the op, but not yet
    at this opset (onnxruntime rejects such a node too)."""
    from onnx import defs

    if not defs.has(op_type):
        return None
    try:
        return defs.get_schema(op_type, opset, "")
    except defs.SchemaError:
        first = min(s.since_version for s in defs.get_all_schemas_with_history()
                    if s.name == op_type and s.domain == "")
        raise ModelFormatError(
            f"ONNX op {op_type} is not defined at opset {opset}: it was added in opset {first}."
        ) from None


def check_against_schema(node: Node) -> None:
    """The node against its ONNX schema: attribute names, types and required attributes, input
    and output counts, no required input empty. ModelFormatError naming the node."""
    try:
        schema = onnx_schema(node.op_type, node.opset)
    except ModelFormatError as err:
        raise ModelFormatError(f"{node.where()}: {err}") from None
    if schema is None:
        return
    where = f"{node.where()}, opset {node.opset}"
    known = schema.attributes
    for key, value in node.attrs.items():
        if key not in known:
            names = ", ".join(sorted(known)) or "none"
            raise ModelFormatError(
                f"{where}: unknown attribute {key!r}. {node.op_type}-{schema.since_version} defines: {names}."
            )
        attr_type = known[key].type.name
        if not _matches(value, attr_type):
            raise node.wrong_type(key, attr_type, value)
    missing = [key for key, a in known.items() if a.required and key not in node.attrs]
    if missing:
        raise ModelFormatError(f"{where}: required attribute {missing[0]!r} is missing.")
    n_in, n_out = len(node.inputs), len(node.outputs)
    if not schema.min_input <= n_in <= schema.max_input:
        raise ModelFormatError(
            f"{where}: expects {_count(schema.min_input, schema.max_input)} inputs. Received {n_in}."
        )
    if not schema.min_output <= n_out <= schema.max_output:
        raise ModelFormatError(
            f"{where}: expects {_count(schema.min_output, schema.max_output)} outputs. Received {n_out}."
        )
    from onnx.defs import OpSchema

    formal = schema.inputs
    for i, name in enumerate(node.inputs):
        param = formal[min(i, len(formal) - 1)] if formal else None
        if name or param is None or param.option == OpSchema.FormalParameterOption.Optional:
            continue
        raise ModelFormatError(
            f"{where}: input {i} ({param.name}) is required but given as '' (no tensor)."
        )


def _count(low: int, high: int) -> str:
    if low == high:
        return str(low)
    return f"at least {low}" if high >= 2**31 - 1 else f"{low} to {high}"


def _checked(convert: Callable[[Node], tuple]) -> Callable[[Node], tuple]:
    """``convert`` behind the schema checks, the op's own attribute checks, and shape inference
    of a node that import folds (all inputs constant), each error naming the node."""

    @functools.wraps(convert)
    def run(node: Node) -> tuple:
        check_against_schema(node)
        op, inputs = convert(node)
        try:
            op.check_attributes()
            values = [node.const(n) if n else None for n in inputs]
            if all(v is not None for n, v in zip(inputs, values) if n):
                op.infer([None if v is None else tuple(np.shape(v)) for v in values], values)
        except LwnnError as err:
            raise type(err)(f"{node.where()}: {err}") from None
        return op, inputs

    return run


class _Converters(dict):
    """op type -> converter; each registered converter runs behind ``_checked``."""

    def __setitem__(self, op_type: str, convert) -> None:
        super().__setitem__(op_type, _checked(convert))


CONVERTERS: dict[str, Callable[[Node], tuple]] = _Converters()

# ONNX inputs that lwnn needs as constants (initializers, Constant nodes or sub-graphs folded
# once input shapes are known), by op type and input index: lwnn plans every shape before a run.
CONST_INPUTS: dict[str, tuple[int, ...]] = {
    "Clip": (1, 2), "ConstantOfShape": (0,), "Dropout": (1, 2), "Expand": (1,), "Pad": (1, 2, 3),
    "ReduceMax": (1,), "ReduceMean": (1,), "ReduceMin": (1,), "ReduceSum": (1,), "Reshape": (1,),
    "Resize": (1, 2, 3), "Slice": (1, 2, 3, 4), "Split": (1,), "Squeeze": (1,), "Unsqueeze": (1,),
    "Upsample": (1,),
}


def converter(*op_types: str):
    def register(fn):
        for t in op_types:
            CONVERTERS[t] = fn
        return fn

    return register


def _plain(op_cls):
    """Converter for ops without attributes (besides opset 1-6's legacy ones): keep all inputs."""

    def convert(node):
        # Opsets 1-6 broadcast a binary op's B onto A from ``axis`` (with broadcast=1), not
        # NumPy's way from the last axis; lwnn implements only the latter.
        if "axis" in node.attrs and node.int_attr("broadcast", 0):
            raise node.unsupported(f"legacy broadcasting from axis={node.int_attr('axis')}",
                                   "NumPy-style broadcasting (opset 7 and later, or no axis)")
        return op_cls(), node.inputs

    return convert


for _t, _cls in {
    "Add": e.Add, "Sub": e.Sub, "Mul": e.Mul, "Div": e.Div, "Pow": e.Pow, "Max": e.Max,
    "Min": e.Min, "Relu": e.Relu, "PRelu": e.PRelu, "Sigmoid": e.Sigmoid, "HardSwish": e.HardSwish,
    "Tanh": e.Tanh, "Sqrt": e.Sqrt, "Exp": e.Exp, "Log": e.Log, "Neg": e.Neg, "Abs": e.Abs,
    "Reciprocal": e.Reciprocal, "Erf": e.Erf, "Identity": e.Identity, "MatMul": c.MatMul,
    "GlobalAveragePool": p.GlobalAveragePool, "GlobalMaxPool": p.GlobalMaxPool,
    "Expand": s.Expand,
}.items():
    CONVERTERS[_t] = _plain(_cls)


def _auto_pad(node: Node) -> str:
    return node.str_attr("auto_pad", "NOTSET")


def _kernel_shape(node: Node) -> None:
    """Conv/ConvTranspose: kernel_shape, where given, must be the weight's (onnxruntime checks
    it); checked here where the weight is a constant."""
    kernel = node.ints("kernel_shape")
    w = node.const(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else None
    if kernel and w is not None and tuple(np.shape(w)[2:]) != kernel:
        raise ShapeError(
            f"{node.where()}: kernel_shape {list(kernel)} is not the kernel of weight "
            f"{node.inputs[1]!r} of shape {tuple(np.shape(w))}."
        )


@converter("Conv")
def _conv(node):
    _kernel_shape(node)
    return c.Conv(
        strides=node.ints("strides"), pads=node.ints("pads"), dilations=node.ints("dilations"),
        group=node.int_attr("group", 1), auto_pad=_auto_pad(node),
    ), node.inputs


@converter("ConvTranspose")
def _conv_transpose(node):
    _kernel_shape(node)
    return c.ConvTranspose(
        strides=node.ints("strides"), pads=node.ints("pads"), dilations=node.ints("dilations"),
        group=node.int_attr("group", 1), output_padding=node.ints("output_padding"),
        output_shape=node.ints("output_shape"), auto_pad=_auto_pad(node),
    ), node.inputs


@converter("Gemm")
def _gemm(node):
    return c.Dense(
        alpha=node.float_attr("alpha", 1.0), beta=node.float_attr("beta", 1.0),
        trans_a=bool(node.int_attr("transA", 0)), trans_b=bool(node.int_attr("transB", 0)),
    ), node.inputs


def _pool_args(node):
    storage_order = node.int_attr("storage_order", 0)
    if storage_order not in (0, 1):
        raise ShapeError(f"{node.where()}: storage_order must be 0 or 1. Received {storage_order}.")
    if storage_order:
        raise node.unsupported("storage_order=1", "storage_order=0")
    if len(node.outputs) > 1 and node.outputs[1]:
        raise node.unsupported("the Indices output", "the pooled output only")
    ceil_mode = node.int_attr("ceil_mode", 0)
    if ceil_mode not in (0, 1):
        raise ShapeError(f"{node.where()}: ceil_mode must be 0 or 1. Received {ceil_mode}.")
    return dict(
        kernel_shape=node.ints("kernel_shape"), strides=node.ints("strides"), pads=node.ints("pads"),
        dilations=node.ints("dilations"), ceil_mode=bool(ceil_mode),
        auto_pad=_auto_pad(node),
    )


@converter("MaxPool")
def _max_pool(node):
    return p.MaxPool(**_pool_args(node)), node.inputs[:1]


@converter("AveragePool")
def _average_pool(node):
    count_include_pad = bool(node.int_attr("count_include_pad", 0))
    return p.AveragePool(count_include_pad=count_include_pad, **_pool_args(node)), node.inputs


def _reduce(cls, axes_input_from: int):
    def convert(node):
        axes = node.ints("axes")
        if node.opset >= axes_input_from and len(node.inputs) > 1:
            value = node.const_input(1, "axes")
            axes = tuple(int(a) for a in value) if value is not None else ()
        return cls(
            axes=axes, keepdims=bool(node.int_attr("keepdims", 1)),
            noop_with_empty_axes=bool(node.int_attr("noop_with_empty_axes", 0)),
        ), node.inputs[:1]

    return convert


CONVERTERS["ReduceMean"] = _reduce(p.ReduceMean, 18)
CONVERTERS["ReduceMax"] = _reduce(p.ReduceMax, 18)
CONVERTERS["ReduceMin"] = _reduce(p.ReduceMin, 18)
CONVERTERS["ReduceSum"] = _reduce(p.ReduceSum, 13)


@converter("BatchNormalization")
def _batch_norm(node):
    if node.int_attr("training_mode", 0) or len([o for o in node.outputs if o]) > 1:
        raise node.unsupported("training mode", "inference mode (one output)")
    if node.int_attr("is_test", 1) == 0:  # opsets 1-6
        raise node.unsupported("is_test=0 (training mode)", "is_test=1")
    if node.int_attr("spatial", 1) == 0:  # opsets 1-8: statistics per activation, not per channel
        raise node.unsupported("spatial=0", "spatial=1 (one mean and variance per channel)")
    return e.BatchNorm(epsilon=node.float_attr("epsilon", 1e-5)), node.inputs


@converter("Softmax")
def _softmax(node):
    legacy = node.opset < 13
    return e.Softmax(axis=node.int_attr("axis", 1 if legacy else -1), coerce_2d=legacy), node.inputs


@converter("LeakyRelu")
def _leaky_relu(node):
    return e.LeakyRelu(alpha=node.float_attr("alpha", 0.01)), node.inputs


@converter("Elu")
def _elu(node):
    return e.Elu(alpha=node.float_attr("alpha", 1.0)), node.inputs


@converter("HardSigmoid")
def _hard_sigmoid(node):
    alpha, beta = node.float_attr("alpha", 0.2), node.float_attr("beta", 0.5)
    return e.HardSigmoid(alpha=alpha, beta=beta), node.inputs


@converter("Clip")
def _clip(node):
    if node.opset < 11:
        lo, hi = node.float_attr("min", float("-inf")), node.float_attr("max", float("inf"))
    else:
        lo_v, hi_v = node.const_input(1, "min"), node.const_input(2, "max")
        for what, v in (("min", lo_v), ("max", hi_v)):
            if v is not None and np.size(v) != 1:
                raise ModelFormatError(f"Node {node.name!r} (Clip): {what} must be one value (a scalar). "
                                       f"Received shape {np.shape(v)}.")
        lo = float(np.asarray(lo_v).reshape(-1)[0]) if lo_v is not None else float("-inf")
        hi = float(np.asarray(hi_v).reshape(-1)[0]) if hi_v is not None else float("inf")
    return e.Clip(min=float(lo), max=float(hi)), node.inputs[:1]


@converter("Dropout")
def _dropout(node):
    if len(node.outputs) > 1 and node.outputs[1]:
        raise node.unsupported("the mask output", "inference Dropout (one output)")
    # Training mode drops at random, unless the ratio is 0: then it is the identity too.
    training = bool(node.int_attr("is_test", 1) == 0) if node.opset < 7 else False
    mode = node.const_input(2, "training_mode")
    if mode is not None:
        training = bool(np.asarray(mode).reshape(-1)[0])
    ratio = node.const_input(1, "ratio") if training else None
    if training and (ratio is None or float(np.asarray(ratio).reshape(-1)[0]) != 0.0):
        raise node.unsupported("training mode with a non-zero ratio", "inference mode, or ratio 0")
    return e.Identity(), node.inputs[:1]


@converter("Reshape")
def _reshape(node):
    if node.opset < 5:
        raise node.unsupported("opset < 5 Reshape", "opset 5 and later")
    return s.Reshape(allowzero=bool(node.int_attr("allowzero", 0))), node.inputs


@converter("Transpose")
def _transpose(node):
    return s.Transpose(perm=node.ints("perm")), node.inputs


@converter("Flatten")
def _flatten(node):
    return s.Flatten(axis=node.int_attr("axis", 1)), node.inputs


def _axes_from_attr_or_input(node, input_from: int) -> tuple[int, ...]:
    if node.opset >= input_from:
        value = node.const_input(1, "axes")
        return tuple(int(a) for a in value) if value is not None else ()
    return node.ints("axes")


@converter("Squeeze")
def _squeeze(node):
    return s.Squeeze(axes=_axes_from_attr_or_input(node, 13)), node.inputs[:1]


@converter("Unsqueeze")
def _unsqueeze(node):
    return s.Unsqueeze(axes=_axes_from_attr_or_input(node, 13)), node.inputs[:1]


@converter("Concat")
def _concat(node):
    axis = node.int_attr("axis")
    if axis is None:
        raise ModelFormatError(f"{node.where()}: required attribute 'axis' is missing.")
    return s.Concat(axis=axis), node.inputs


@converter("Split")
def _split(node):
    sizes = node.ints("split")
    if node.opset >= 13:
        value = node.const_input(1, "split")
        sizes = tuple(int(v) for v in value) if value is not None else ()
    n = node.int_attr("num_outputs", len(node.outputs))
    if n != len(node.outputs):
        raise ShapeError(
            f"{node.where()}: num_outputs={n} but the node has {len(node.outputs)} outputs."
        )
    return s.Split(axis=node.int_attr("axis", 0), sizes=sizes, num_outputs=n), node.inputs[:1]


@converter("Slice")
def _slice(node):
    if node.opset < 10:
        # Attributes became inputs in opset 10; turn them into constant inputs of the layer.
        raise node.unsupported("opset < 10 Slice", "opset 10 and later")
    return s.Slice(), node.inputs


@converter("Pad")
def _pad(node):
    mode = node.str_attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise node.unsupported(f"mode {mode!r}", "constant, reflect, edge, wrap")
    if node.opset < 11:
        raise node.unsupported("opset < 11 Pad", "opset 11 and later")
    return s.Pad(mode=mode), node.inputs


@converter("Resize", "Upsample")
def _resize(node):
    mode = node.str_attr("mode", "nearest")
    # "bilinear" is Upsample-1's spelling of linear; ONNX's Resize never defined it.
    legacy = ("bilinear",) if node.op_type == "Upsample" and node.opset < 9 else ()
    if mode not in ("nearest", "linear", *legacy):
        raise node.unsupported(f"mode {mode!r}", ", ".join(s.Resize.MODES))
    if node.int_attr("antialias", 0):
        raise node.unsupported("antialias=1", "antialias=0")
    if node.attr("axes") is not None:
        raise node.unsupported(f"axes={list(node.ints('axes'))}", "no axes (every axis resized)")
    policy = node.str_attr("keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        raise node.unsupported(f"keep_aspect_ratio_policy {policy!r}", "stretch")
    if node.op_type == "Upsample" or node.opset < 11:
        # Upsample and Resize-10: asymmetric coordinates, onnxruntime's "simple" rounding (the
        # spec does not say); scales as input 1, or (Upsample-7/8) as the attribute "scales".
        op = s.Resize(
            mode="linear" if mode == "bilinear" else mode,
            coordinate_transformation_mode="asymmetric", nearest_mode="simple",
        )
        if node.op_type == "Upsample" and node.opset < 9:
            scales = node.floats("scales") if "scales" in node.attrs else None
            if scales is None:  # Upsample-1 (experimental): height_scale/width_scale
                raise node.unsupported("Upsample-1 (height_scale/width_scale)", "opset 7 and later")
            return op, [node.inputs[0], "", node.new_constant("scales", np.array(scales, np.float32))]
        return op, [node.inputs[0], "", node.inputs[1]]
    ctm = node.str_attr("coordinate_transformation_mode", "half_pixel")
    if ctm not in s.Resize.COORDINATE_MODES:
        supported = ", ".join(s.Resize.COORDINATE_MODES)
        raise node.unsupported(f"coordinate_transformation_mode {ctm!r}", supported)
    nearest = node.str_attr("nearest_mode", "round_prefer_floor")
    if nearest not in s.Resize.NEAREST_MODES[:-1]:
        raise node.unsupported(f"nearest_mode {nearest!r}", ", ".join(s.Resize.NEAREST_MODES[:-1]))
    return s.Resize(mode=mode, coordinate_transformation_mode=ctm, nearest_mode=nearest), node.inputs


@converter("Shape")
def _shape(node):
    return s.Shape(start=node.int_attr("start", 0), end=node.int_attr("end")), node.inputs


@converter("Gather")
def _gather(node):
    return s.Gather(axis=node.int_attr("axis", 0)), node.inputs


# ONNX element types lwnn computes with; the others (string, bfloat16, float8, int4, complex)
# have no NumPy arithmetic or no use on lwnn's targets.
ELEMENT_TYPES = ("FLOAT", "DOUBLE", "FLOAT16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
              "UINT32", "UINT64", "BOOL")


@converter("Cast")
def _cast(node):
    from onnx import TensorProto
    from onnx.helper import tensor_dtype_to_np_dtype

    to = node.int_attr("to")
    if to is None:
        raise ModelFormatError(f"{node.where()}: required attribute 'to' is missing.")
    name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else str(to)
    if name not in ELEMENT_TYPES:
        raise node.unsupported(f"to={name}", ", ".join(ELEMENT_TYPES))
    return s.Cast(to=np.dtype(tensor_dtype_to_np_dtype(to)).name), node.inputs


@converter("ConstantOfShape")
def _constant_of_shape(node):
    import onnx
    from onnx.numpy_helper import to_array

    tensor = node.attr("value")
    if tensor is not None and not isinstance(tensor, onnx.TensorProto):
        raise node.wrong_type("value", "TENSOR (a one-element tensor)", tensor)
    value = to_array(tensor).reshape(-1) if tensor is not None else np.zeros(1, np.float32)
    if value.size != 1:
        raise ShapeError(f"{node.where()}: attribute 'value' must hold one element. Received {value.size}.")
    return s.ConstantOfShape(value=value[0].item(), dtype=value.dtype.name), node.inputs


@converter("LSTM")
def _lstm(node):
    direction = node.str_attr("direction", "forward")
    if direction not in rnn.DIRECTIONS:
        raise node.unsupported(f"direction {direction!r}", ", ".join(rnn.DIRECTIONS))
    activations = node.strs("activations")
    for a in activations:
        if a.lower() not in {k.lower() for k in rnn.RNN_ACTIVATIONS}:
            raise node.unsupported(f"activation {a!r}", ", ".join(rnn.RNN_ACTIVATIONS))
    hidden_size = node.int_attr("hidden_size", 0)
    if hidden_size < 1:  # onnxruntime requires it too, rather than reading it off R's shape
        raise ModelFormatError(f"{node.where()}: hidden_size must be given and >= 1. Received "
                               f"{hidden_size if 'hidden_size' in node.attrs else 'none'}.")
    op = rnn.LSTM(
        hidden_size=hidden_size, direction=direction,
        activations=tuple(rnn.canonical_activation(a) for a in activations),
        activation_alpha=node.floats("activation_alpha"), activation_beta=node.floats("activation_beta"),
        clip=node.float_attr("clip", 0.0), input_forget=bool(node.int_attr("input_forget", 0)),
        layout=node.int_attr("layout", 0),
    )
    return op, node.inputs
