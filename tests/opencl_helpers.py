"""Shared by the OpenCL tests: compare a model's OpenCL run with its CPU float run."""

from __future__ import annotations

import numpy as np
from helpers import RTOL, make_node_model

import lwnn
from lwnn.backends.opencl.layers import LAYERS

DEVICE_NAME = "opencl/float"
# Layer configurations the OpenCL runtime hands to the CPU on purpose (3-D windows).
SPATIAL_3D_FALLBACK = {"Conv", "ConvTranspose", "MaxPool", "AveragePool"}


def expected_runtime(model, plan, layer) -> str:
    """Where a layer must run: on the device when it has a kernel for its configuration and every
    run-time input is float32, otherwise on the CPU."""
    if layer.op_type not in LAYERS:
        return "cpu/float"
    if layer.op_type in SPATIAL_3D_FALLBACK and len(plan.shapes[layer.inputs[0]]) == 5:
        return "cpu/float"
    return DEVICE_NAME


def bound(ref: np.ndarray, rtol: float) -> float:
    """The float bound (docs/architecture.md, "Float accuracy"): rtol relative to the tensor's
    magnitude, absolute below magnitude 1."""
    return rtol * max(1.0, float(np.max(np.abs(ref.astype(np.float64)))) if ref.size else 1.0)


def assert_same(got: np.ndarray, ref: np.ndarray, rtol: float, where: str) -> None:
    assert got.shape == ref.shape, f"{where}: OpenCL shape {got.shape}, CPU {ref.shape}"
    assert got.dtype == ref.dtype, f"{where}: OpenCL dtype {got.dtype}, CPU {ref.dtype}"
    if ref.size == 0:
        return
    if ref.dtype.kind != "f":
        assert np.array_equal(got, ref), f"{where}: integer tensors differ"
        return
    g, r = got.astype(np.float64), ref.astype(np.float64)
    nan = np.isnan(r)
    assert np.array_equal(np.isnan(g), nan), f"{where}: NaN positions differ"
    g, r = g[~nan], r[~nan]
    if r.size == 0:
        return
    finite = np.isfinite(r)
    assert np.array_equal(g[~finite], r[~finite]), f"{where}: infinities differ"
    err = float(np.max(np.abs(g[finite] - r[finite]), initial=0.0))
    limit = bound(r[finite], rtol)
    assert err <= limit, f"{where}: max |OpenCL - CPU| = {err:.3g} > {limit:.3g}"


def check_model_on_opencl(model, feeds: dict, rtol: float, relative_to_tensor: bool = False):
    """Run ``model`` recorded on the CPU and on OpenCL; every recorded tensor agrees within ``rtol``
    and every layer ran where ``expected_runtime`` says; the unrecorded (fused) run's outputs agree
    too. ``relative_to_tensor``: the bound is rtol * max|ref| (no absolute floor)."""
    ref = model.run(feeds, record=True)
    got = model.run(feeds, backend="opencl", record=True)
    plan = model.plan({n: np.asarray(v).shape for n, v in feeds.items()})
    assert set(got) == set(ref)
    for name in ref:
        if relative_to_tensor and ref[name].dtype.kind == "f":
            scale = max(float(np.abs(ref[name]).max(initial=0.0)), 1e-12)
            err = float(np.abs(got[name].astype(np.float64) - ref[name]).max(initial=0.0))
            assert got[name].shape == ref[name].shape, name
            assert err <= rtol * scale, f"{name}: relative error {err / scale:.2e} > {rtol}"
        else:
            assert_same(got[name], ref[name], rtol, f"tensor {name!r}")
    for layer in plan.steps:
        want = expected_runtime(model, plan, layer)
        if want == DEVICE_NAME and any(
            ref[n].dtype != np.float32 for n in layer.inputs if n and n not in plan.constants
        ):
            want = "cpu/float"
        assert got.executed_by[layer.name] == want, (
            f"layer {layer.name!r} ({layer.op_type}) ran on {got.executed_by[layer.name]}, expected {want}"
        )
    fast_ref = model.run(feeds)
    fast = model.run(feeds, backend="opencl")
    for name in fast_ref:
        assert_same(fast[name], fast_ref[name], rtol, f"output {name!r} (fused run)")
    return got, fast


def check_op_on_opencl(op_type, inputs, attrs=None, *, const=(), opset=17, num_outputs=1, rtol=RTOL):
    """``helpers.check_op(..., backend="opencl")``: one ONNX node on OpenCL against lwnn's CPU float
    backend (itself checked against onnxruntime by the "cpu" runs of test_ops), within the float
    bound of docs/architecture.md, "Float accuracy"; every layer ran where ``expected_runtime``
    says. Returns the OpenCL outputs."""
    model = make_node_model(op_type, inputs, attrs, const=const, opset=opset, num_outputs=num_outputs)
    const = set(const)
    feeds = {n: v for n, v in inputs.items() if v is not None and n not in const}
    _, outputs = check_model_on_opencl(lwnn.load(model), feeds, rtol)
    return [outputs[f"y{i}"] for i in range(num_outputs)]
