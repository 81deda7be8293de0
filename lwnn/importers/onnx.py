"""ONNX importer: ModelProto -> Graph.

Constant nodes and initializers become graph constants; layers whose inputs are all constants
are folded at import (shape sub-graphs that depend on free input dims are folded later, when a
run fixes the input shapes). Tensor names are kept exactly as in the ONNX file.
"""

from __future__ import annotations

import heapq
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from lwnn.errors import LwnnError, ModelFormatError, UnsupportedOpError
from lwnn.graph import Graph, Layer, TensorSpec
from lwnn.importers.onnx_ops import CONVERTERS, ELEMENT_TYPES, Node


def read_onnx(path: str | os.PathLike):
    """Parse an ONNX file, turning every parse failure into a ModelFormatError."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"No model file at {str(path)!r}.")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError, OSError,
            onnx.checker.ValidationError) as err:  # the last: external data files that are missing
        raise ModelFormatError(
            f"{str(path)!r} is not a readable ONNX model (corrupt, truncated or another format): {err}"
        ) from None
    _check_structure(model, str(path))
    return model


def _check_structure(model, where: str) -> None:
    try:
        _check_versions_and_outputs(model, where)
        _check_names(model, where)
    except UnicodeDecodeError as err:  # protobuf decodes strings lazily: corrupt names fail here
        raise ModelFormatError(f"{where} is not a valid ONNX model: a name is not UTF-8 ({err}); the "
                               "file may be corrupt.") from None
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        # The checker is stricter than runtimes (e.g. it wants shapes on graph outputs, which
        # exporters often omit); structural damage is caught above and by the parser.
        first = str(err).strip().splitlines()[0] if str(err).strip() else "validation failed"
        warnings.warn(f"{where}: onnx.checker reports: {first} Importing anyway.", stacklevel=3)


def _check_versions_and_outputs(model, where: str) -> None:
    import onnx
    from onnx.defs import onnx_opset_version

    # Protobuf happily parses many non-ONNX byte strings into a near-empty message.
    problems = []
    if model.ir_version <= 0:
        problems.append("no IR version")
    elif model.ir_version > onnx.IR_VERSION:
        problems.append(f"IR version {model.ir_version}, newer than the {onnx.IR_VERSION} this onnx "
                        "package knows")
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import) and model.ir_version >= 3:
        problems.append("no ai.onnx opset")
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and not 1 <= o.version <= onnx_opset_version():
            problems.append(f"ai.onnx opset {o.version}, expected 1 to {onnx_opset_version()}")
    if not model.graph.output:
        problems.append("no graph outputs")
    if problems:
        raise ModelFormatError(
            f"{where} is not a valid ONNX model ({', '.join(problems)}); it may be corrupt, "
            "truncated or a file of another format."
        )


def _check_types(model, order: list) -> None:
    """ONNX's own type and shape inference in strict mode, as onnxruntime runs it when it loads a
    model: an input of a type the op does not take (weights relabelled as int32), attribute values
    the op's definition forbids (negative dilations), shapes that cannot meet. On the nodes in
    ``order`` (inference reads them in file order)."""
    from onnx.shape_inference import InferenceError, infer_shapes

    if model.ByteSize() >= 2**31 - 1:  # protobuf's limit; such models keep their weights outside
        return
    if [i for i, _ in order] != list(range(len(order))):
        import onnx

        sorted_model = onnx.ModelProto()
        sorted_model.CopyFrom(model)
        del sorted_model.graph.node[:]
        sorted_model.graph.node.extend(proto for _, proto in order)
        model = sorted_model
    try:
        infer_shapes(model, check_type=True, strict_mode=True)
    except (InferenceError, RuntimeError, ValueError) as err:
        message = " ".join(str(err).split())
        raise ModelFormatError(f"ONNX model {model.graph.name!r} fails ONNX's type and shape check "
                               f"(as onnxruntime would): {message}") from None


def _check_names(model, where: str) -> None:
    """Every name a string: protobuf hands back the bytes of a name that is not UTF-8."""
    g = model.graph
    names = [g.name, *(t.name for t in g.initializer), *(v.name for v in (*g.input, *g.output))]
    for node in g.node:
        names += [node.name, node.op_type, node.domain, *node.input, *node.output,
                  *(a.name for a in node.attribute)]
    bad = next((n for n in names if not isinstance(n, str)), None)
    if bad is not None:
        raise ModelFormatError(f"{where}: the name {bad!r} is not UTF-8 text; the file may be corrupt.")


def _np_dtype(elem_type: int) -> np.dtype:
    from onnx.helper import tensor_dtype_to_np_dtype

    return np.dtype(tensor_dtype_to_np_dtype(elem_type))


def _spec(value_info) -> TensorSpec:
    from onnx import TensorProto

    t = value_info.type.tensor_type
    known = t.elem_type in TensorProto.DataType.values()
    type_name = TensorProto.DataType.Name(t.elem_type) if known else str(t.elem_type)
    if type_name not in ELEMENT_TYPES:
        raise UnsupportedOpError(
            f"Tensor {value_info.name!r} has element type {type_name}. "
            f"Supported: {', '.join(ELEMENT_TYPES)}."
        )
    shape = None
    if t.HasField("shape"):
        # dim_param names and non-positive dim_values (some exporters write -1) are free dims.
        shape = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in t.shape.dim
        )
    return TensorSpec(value_info.name, _np_dtype(t.elem_type), shape)


def import_onnx(model) -> Graph:
    _check_structure(model, f"ONNX model {model.graph.name!r}")
    try:
        return _import(model)
    except UnicodeDecodeError as err:
        raise ModelFormatError(f"ONNX model: a name or string attribute is not UTF-8 ({err}); the file may "
                               "be corrupt.") from None


def _import(model) -> Graph:
    from onnx import helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    g = model.graph
    constants = _initializers(g)
    for t in g.sparse_initializer:
        raise UnsupportedOpError(f"Sparse initializer {t.values.name!r} is not supported.")
    # IR >= 4: an initializer that is also a graph input is that input's default value (the user
    # may feed it); before, every initializer was listed among the inputs and stayed constant.
    overridable = model.ir_version >= 4
    required, optional = {}, {}
    for vi in g.input:
        if vi.name in constants:
            if overridable:
                optional[vi.name] = replace(_spec(vi), default=constants.pop(vi.name))
        elif vi.name in required:
            raise ModelFormatError(f"Graph input {vi.name!r} is listed twice.")
        else:
            required[vi.name] = _spec(vi)
    inputs = {**required, **optional}
    _check_ops(g)
    _check_node_names(g)
    nodes = _topological_order(g, set(inputs) | set(constants))
    _check_types(model, nodes)
    layers: list[Layer] = []
    used_names: set[str] = set()
    for index, proto in nodes:
        if not any(proto.output):
            raise ModelFormatError(f"Node {_node_name(proto)!r} ({proto.op_type}) has no outputs.")
        attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
        if len(attrs) < len(proto.attribute):
            twice = next(a.name for i, a in enumerate(proto.attribute)
                         if any(b.name == a.name for b in proto.attribute[:i]))
            raise ModelFormatError(f"Node {_node_name(proto)!r} ({proto.op_type}) gives attribute {twice!r} "
                                   "twice.")
        if proto.op_type == "Constant":
            constants[proto.output[0]] = _constant_value(proto, attrs)
            continue
        name = proto.name or next(o for o in proto.output if o)
        if name in used_names:
            name = f"{name}_{index}"
        used_names.add(name)
        node = Node(name, proto.op_type, list(proto.input), list(proto.output), attrs, opset, constants.get,
                    constants)
        op, layer_inputs = CONVERTERS[proto.op_type](node)
        layer = Layer(name, op, tuple(layer_inputs), tuple(o for o in proto.output))
        if _fold(layer, constants):
            continue
        layers.append(layer)
    outputs = [o.name for o in g.output]
    output_specs = {o.name: _spec(o) for o in g.output if o.type.HasField("tensor_type")}
    return Graph(inputs, outputs, layers, constants, name=g.name or "onnx_model", output_specs=output_specs)


def _check_ops(g) -> None:
    """UnsupportedOpError for the first node lwnn has no converter for (before ONNX's checks, so
    that an unsupported op is named as such)."""
    for proto in g.node:
        if proto.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(
                f"Node {_node_name(proto)!r}: op {proto.domain}.{proto.op_type} from a "
                f"custom domain is not supported. Supported ai.onnx ops: {', '.join(sorted(CONVERTERS))}."
            )
        if proto.op_type not in CONVERTERS and proto.op_type != "Constant":
            raise UnsupportedOpError(
                f"Node {_node_name(proto)!r}: ONNX op {proto.op_type} is not supported. "
                f"Supported ONNX ops: {', '.join(sorted(CONVERTERS))}."
            )


def _initializers(g) -> dict[str, np.ndarray]:
    """The initializers by name; ModelFormatError for duplicates and for data that does not match
    its dims."""

    constants: dict[str, np.ndarray] = {}
    for t in g.initializer:
        if t.name in constants:
            raise ModelFormatError(f"Initializer {t.name!r} is listed twice; a tensor has one value.")
        constants[t.name] = _tensor_value(t, f"Initializer {t.name!r}")
    return constants


def _tensor_value(t, what: str) -> np.ndarray:
    """A TensorProto's data as an array; ModelFormatError (``what`` ...) for negative dims or data
    that does not match the dims and type."""
    from onnx import numpy_helper

    if any(d < 0 for d in t.dims):
        raise ModelFormatError(f"{what} has negative dims {list(t.dims)}.")
    try:
        value = numpy_helper.to_array(t)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ModelFormatError(
            f"{what} (dims {list(t.dims)}, {np.prod(t.dims, dtype=np.int64)} elements) does not hold "
            f"data of that shape and type: {err}") from None
    if value.dtype.kind == "f" and np.isnan(value).any():  # (inf is legitimate: attention masks)
        raise ModelFormatError(f"{what} holds {int(np.isnan(value).sum())} NaN values of {value.size}; "
                               "a model's constants are numbers.")
    return value


def _topological_order(g, available: set[str]) -> list[tuple[int, object]]:
    """The nodes in an order where every input is produced before it is read (the file's order
    where it already is one, as onnxruntime accepts any order); ModelFormatError for a tensor two
    nodes write, an input nothing produces, a cycle, or a graph output nothing writes."""
    producer: dict[str, int] = {}
    for i, proto in enumerate(g.node):
        for out in proto.output:
            if not out:
                continue
            if out in available:
                raise ModelFormatError(f"Node {_node_name(proto)!r} ({proto.op_type}) writes {out!r}, "
                                       "which is already a graph input or an initializer.")
            if out in producer:
                first = g.node[producer[out]]
                raise ModelFormatError(f"Tensor {out!r} is written by two nodes: {_node_name(first)!r} "
                                       f"and {_node_name(proto)!r}.")
            producer[out] = i
    for proto in g.node:
        for name in proto.input:
            if name and name not in available and name not in producer:
                raise ModelFormatError(f"Node {_node_name(proto)!r} ({proto.op_type}) reads {name!r}, which "
                                       "no node produces and no graph input or initializer provides.")
    for o in g.output:
        if o.name not in available and o.name not in producer:
            raise ModelFormatError(f"Graph output {o.name!r} is written by no node and is neither a graph "
                                   "input nor an initializer.")
    waiting = [sum(1 for n in dict.fromkeys(proto.input) if n and n not in available) for proto in g.node]
    readers: dict[str, list[int]] = {}
    for i, proto in enumerate(g.node):
        for n in dict.fromkeys(proto.input):
            if n and n not in available:
                readers.setdefault(n, []).append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)  # the earliest ready node: the file's order where it is valid
        order.append((i, g.node[i]))
        for out in g.node[i].output:
            for j in readers.get(out, ()):
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, j)
    if len(order) < len(g.node):
        stuck = next(proto for i, proto in enumerate(g.node) if waiting[i])
        raise ModelFormatError(f"The graph has a cycle: node {_node_name(stuck)!r} ({stuck.op_type}) "
                               "depends on its own output.")
    return order


def _check_node_names(g) -> None:
    """Node names, where given, are unique (onnxruntime refuses a graph that repeats one)."""
    seen: set[str] = set()
    for proto in g.node:
        if proto.name in seen:
            raise ModelFormatError(f"Node name {proto.name!r} is used by two nodes.")
        if proto.name:
            seen.add(proto.name)


def _node_name(proto) -> str:
    return proto.name or (proto.output[0] if proto.output else proto.op_type)


def _constant_value(proto, attrs) -> np.ndarray:
    if "value" in attrs:
        return _tensor_value(attrs["value"], f"Constant node {_node_name(proto)!r}: its value")
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dtype=dtype)
    raise UnsupportedOpError(
        f"Constant node {proto.output[0]!r}: only value, value_float(s) and value_int(s) are supported."
    )


def _fold(layer: Layer, constants: dict[str, np.ndarray]) -> bool:
    """Evaluate ``layer`` now if all its inputs are constants; store its outputs as constants
    (after the memory guard has seen their shapes)."""
    if any(n and n not in constants for n in layer.inputs):
        return False
    from lwnn.backends.cpu import run_cpu_kernel
    from lwnn.memory import check_size

    args = [constants[n] if n else None for n in layer.inputs]
    try:
        shapes = layer.op.infer([None if a is None else a.shape for a in args], args)
    except LwnnError as err:
        raise type(err)(f"Node {layer.name!r} ({layer.op_type}): {err}") from None
    first = next((a for a in args if a is not None), None)
    size = first.dtype.itemsize if first is not None and first.dtype.kind == "f" else 4
    for name, shape in zip(layer.outputs, shapes):
        check_size(layer.name, layer.op_type, name, shape, size)
    for name, value in zip(layer.outputs, run_cpu_kernel(layer, args)):
        constants[name] = np.asarray(value)
    return True
