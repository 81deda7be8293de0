"""Shared test helpers: ``check_op`` (lwnn versus onnxruntime on one ONNX node) and the
discovery of ONNX node conformance cases."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import lwnn

RTOL = 1e-5


def make_node_model(
    op_type: str,
    inputs: Mapping[str, np.ndarray | None],
    attrs: Mapping | None = None,
    *,
    const: Iterable[str] = (),
    opset: int = 17,
    num_outputs: int = 1,
):
    """A one-node ONNX model. ``inputs`` in node order; a ``None`` value is an omitted optional
    input; names in ``const`` become initializers, the others graph inputs."""
    import onnx
    from onnx import helper, numpy_helper

    const = set(const)
    node_inputs = [name if value is not None else "" for name, value in inputs.items()]
    outputs = [f"y{i}" for i in range(num_outputs)]
    graph_inputs, initializers = [], []
    for name, value in inputs.items():
        if value is None:
            continue
        if name in const:
            initializers.append(numpy_helper.from_array(np.asarray(value), name))
        else:
            elem = helper.np_dtype_to_tensor_dtype(value.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, elem, value.shape))
    graph = helper.make_graph(
        [helper.make_node(op_type, node_inputs, outputs, name=f"{op_type.lower()}0", **(attrs or {}))],
        f"{op_type}_test",
        graph_inputs,
        [onnx.ValueInfoProto(name=o) for o in outputs],
        initializer=initializers,
    )
    # IR 8 is accepted by every onnxruntime release that knows opset 17.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    # Output types come from ONNX shape inference; where it cannot tell a shape, the
    # output gets the first input's rank with free dims (the checker requires a shape).
    model = onnx.shape_inference.infer_shapes(model)
    first = np.asarray(next(v for v in inputs.values() if v is not None))
    for out in model.graph.output:
        tensor = out.type.tensor_type
        if not tensor.elem_type:
            tensor.elem_type = helper.np_dtype_to_tensor_dtype(first.dtype)
        if not tensor.HasField("shape"):
            free = [onnx.TensorShapeProto.Dimension(dim_param=f"d{i}") for i in range(first.ndim)]
            tensor.shape.dim.extend(free)
    onnx.checker.check_model(model)
    return model


def check_op(
    op_type: str,
    inputs: Mapping[str, np.ndarray | None],
    attrs: Mapping | None = None,
    *,
    const: Iterable[str] = (),
    opset: int = 17,
    num_outputs: int = 1,
    rtol: float = RTOL,
    oracle: str = "onnxruntime",
    backend: str = "cpu",
) -> list[np.ndarray]:
    """Run one ONNX node in onnxruntime (CPUExecutionProvider) and in lwnn; assert they agree.

    ``inputs`` maps input names to arrays in the node's input order (``None`` omits an optional
    input); names listed in ``const`` become initializers (weights, shapes, pads, scales, ...),
    the rest are fed at run time. Agreement means same shape, same dtype and
    ``max|lwnn - ref| <= rtol * max(1, max|ref|)`` per output: a relative error bound that turns
    absolute for outputs of magnitude below 1. Returns lwnn's outputs.

    ``oracle="reference"`` compares with ONNX's reference evaluator instead, for the few corners
    where onnxruntime departs from the ONNX specification (each such test says which).

    ``backend="opencl"`` runs the node on OpenCL instead, and the oracle is lwnn's CPU float
    backend (``opencl_helpers.check_op_on_opencl``; ``oracle`` is not used there).
    """
    if backend == "opencl":
        from opencl_helpers import check_op_on_opencl

        return check_op_on_opencl(op_type, inputs, attrs, const=const, opset=opset, num_outputs=num_outputs,
                                  rtol=rtol)
    if backend != "cpu":
        raise ValueError(f"backend must be 'cpu' or 'opencl'. Received {backend!r}.")
    model = make_node_model(op_type, inputs, attrs, const=const, opset=opset, num_outputs=num_outputs)
    const = set(const)
    feeds = {n: v for n, v in inputs.items() if v is not None and n not in const}
    if oracle == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        expected = session.run(None, feeds)
    elif oracle == "reference":
        from onnx.reference import ReferenceEvaluator

        expected = ReferenceEvaluator(model).run(None, feeds)
    else:
        raise ValueError(f"oracle must be 'onnxruntime' or 'reference'. Received {oracle!r}.")
    got = lwnn.load(model).run(feeds)
    outs = [got[f"y{i}"] for i in range(num_outputs)]
    for i, (ref, out) in enumerate(zip(expected, outs)):
        where = f"{op_type} output {i} (attrs {dict(attrs or {})}, opset {opset})"
        assert out.shape == ref.shape, f"{where}: shape {out.shape}, {oracle} gives {ref.shape}"
        assert out.dtype == ref.dtype, f"{where}: dtype {out.dtype}, {oracle} gives {ref.dtype}"
        if ref.size == 0:
            continue
        ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
        err = float(np.max(np.abs(out64 - ref64)))
        bound = rtol * max(1.0, float(np.max(np.abs(ref64))))
        assert err <= bound, f"{where}: max |lwnn - {oracle}| = {err:.3g} > {bound:.3g}"
    return outs


# --- ONNX node conformance cases -------------------------------------------------------------

NODE_DIR = Path("/usr/share/libonnx-testdata/data/node")


@dataclass(frozen=True)
class Case:
    """One conformance case directory, with the op group it is reported under."""

    name: str
    path: Path
    group: str


@dataclass(frozen=True)
class Cases:
    runnable: tuple[Case, ...]  # every op supported and every input/output a plain tensor
    not_tensor: tuple[str, ...]  # supported ops, but sequence/optional/map inputs or outputs
    unsupported_ops: tuple[str, ...]  # some op lwnn does not convert


def supported_onnx_ops() -> set[str]:
    from lwnn.importers.onnx_ops import CONVERTERS

    return set(CONVERTERS) | {"Constant"}


def _group(ops: set[str]) -> str:
    """Report a case under its op; a multi-op (function-expanded) case under all of them."""
    ops = ops - {"Constant"} or ops
    return next(iter(ops)) if len(ops) == 1 else "expanded: " + "+".join(sorted(ops))


@functools.cache
def conformance_cases(root: Path = NODE_DIR) -> Cases:
    import onnx

    runnable, not_tensor, unsupported = [], [], []
    supported = supported_onnx_ops()
    for path in sorted(p for p in root.iterdir() if (p / "model.onnx").is_file()):
        graph = onnx.load(str(path / "model.onnx"), load_external_data=False).graph
        ops = {n.op_type for n in graph.node}
        if not ops <= supported:
            unsupported.append(path.name)
        elif not all(v.type.HasField("tensor_type") for v in [*graph.input, *graph.output]):
            not_tensor.append(path.name)
        else:
            runnable.append(Case(path.name, path, _group(ops)))
    return Cases(tuple(runnable), tuple(not_tensor), tuple(unsupported))


def keras_cnn(keras, input_hw: tuple[int, int]):
    """A small Keras CNN touching the layers the importer maps to conv, depthwise, BN, deconv,
    dilated/grouped conv, pools and dense (Dropout included: inference makes it an identity)."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((*input_hw, 3), name="image"),
        L.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        L.DepthwiseConv2D(3, padding="same", depth_multiplier=2),
        L.BatchNormalization(),
        L.ReLU(max_value=6.0),
        L.Conv2DTranspose(6, 3, strides=2, padding="same"),
        L.MaxPooling2D(2),
        L.Conv2D(4, 3, dilation_rate=2, padding="same", groups=2),
        L.AveragePooling2D(2),
        L.Flatten(),
        L.Dropout(0.5),
        L.Dense(10),
        L.Softmax(),
    ])


def randomize_keras_weights(model, seed: int = 0) -> None:
    """Random weights everywhere (non-zero biases, non-trivial BatchNorm statistics)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.path.endswith(("moving_variance", "gamma")):
            value = rng.uniform(0.5, 1.5, v.shape)
        else:
            value = rng.normal(0.0, 0.4, v.shape)
        v.assign(value.astype(np.float32))
