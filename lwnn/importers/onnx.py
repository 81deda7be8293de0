"""ONNX importer: ModelProto -> Graph.

Constant nodes and initializers become graph constants; layers whose inputs are all constants
are folded at import (shape sub-graphs that depend on free input dims are folded later, when a
run fixes the input shapes). Tensor names are kept exactly as in the ONNX file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from lwnn.errors import ModelFormatError, UnsupportedOpError
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
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError, OSError) as err:
        raise ModelFormatError(
            f"{str(path)!r} is not a readable ONNX model (corrupt, truncated or another format): {err}"
        ) from None
    _check_structure(model, str(path))
    return model


def _check_structure(model, where: str) -> None:
    # Protobuf happily parses many non-ONNX byte strings into a near-empty message.
    problems = []
    if model.ir_version <= 0:
        problems.append("no IR version")
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import) and model.ir_version >= 3:
        problems.append("no ai.onnx opset")
    if not model.graph.output:
        problems.append("no graph outputs")
    if problems:
        raise ModelFormatError(
            f"{where} is not a valid ONNX model ({', '.join(problems)}); it may be corrupt, "
            "truncated or a file of another format."
        )
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        # The checker is stricter than runtimes (e.g. it wants shapes on graph outputs, which
        # exporters often omit); structural damage is caught above and by the parser.
        first = str(err).strip().splitlines()[0] if str(err).strip() else "validation failed"
        warnings.warn(f"{where}: onnx.checker reports: {first} Importing anyway.", stacklevel=3)


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
    from onnx import helper, numpy_helper

    _check_structure(model, f"ONNX model {model.graph.name!r}")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    g = model.graph
    constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for t in g.sparse_initializer:
        raise UnsupportedOpError(f"Sparse initializer {t.values.name!r} is not supported.")
    inputs = {vi.name: _spec(vi) for vi in g.input if vi.name not in constants}
    layers: list[Layer] = []
    used_names: set[str] = set()
    for index, proto in enumerate(g.node):
        if proto.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(
                f"Node {proto.name or proto.output[0]!r}: op {proto.domain}.{proto.op_type} from a "
                f"custom domain is not supported. Supported ai.onnx ops: {', '.join(sorted(CONVERTERS))}."
            )
        attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
        if proto.op_type == "Constant":
            constants[proto.output[0]] = _constant_value(proto, attrs)
            continue
        name = proto.name or proto.output[0] or f"{proto.op_type}_{index}"
        if name in used_names:
            name = f"{name}_{index}"
        used_names.add(name)
        node = Node(name, proto.op_type, list(proto.input), list(proto.output), attrs, opset, constants.get,
                    constants)
        if proto.op_type not in CONVERTERS:
            raise UnsupportedOpError(
                f"Node {name!r}: ONNX op {proto.op_type} is not supported. "
                f"Supported ONNX ops: {', '.join(sorted(CONVERTERS))}."
            )
        op, layer_inputs = CONVERTERS[proto.op_type](node)
        layer = Layer(name, op, tuple(layer_inputs), tuple(o for o in proto.output))
        if _fold(layer, constants):
            continue
        layers.append(layer)
    outputs = [o.name for o in g.output]
    output_specs = {o.name: _spec(o) for o in g.output if o.type.HasField("tensor_type")}
    return Graph(inputs, outputs, layers, constants, name=g.name or "onnx_model", output_specs=output_specs)


def _constant_value(proto, attrs) -> np.ndarray:
    from onnx import numpy_helper

    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dtype=dtype)
    raise UnsupportedOpError(
        f"Constant node {proto.output[0]!r}: only value, value_float(s) and value_int(s) are supported."
    )


def _fold(layer: Layer, constants: dict[str, np.ndarray]) -> bool:
    """Evaluate ``layer`` now if all its inputs are constants; store its outputs as constants."""
    if any(n and n not in constants for n in layer.inputs):
        return False
    from lwnn.backends.cpu import run_cpu_kernel

    args = [constants[n] if n else None for n in layer.inputs]
    for name, value in zip(layer.outputs, run_cpu_kernel(layer, args)):
        constants[name] = np.asarray(value)
    return True
