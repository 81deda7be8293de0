"""Real pretrained models shipped in wheels (rapidocr), run on a real text image: every tensor
lwnn records equals onnxruntime's intermediate tensor of the same name."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import lwnn
from lwnn import zoo

REL_TOL = 1e-4


def ort_intermediates(path, feeds) -> dict[str, np.ndarray]:
    """Every node output of an ONNX model, computed by onnxruntime (exposed as graph outputs)."""
    model = onnx.load(str(path))
    declared = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in declared and node.op_type != "Constant":
                model.graph.output.append(onnx.ValueInfoProto(name=name))
                declared.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| over max |ref| (the tensor's own scale)."""
    if ref.dtype.kind in "iub":
        return 0.0 if np.array_equal(got, ref) else float("inf")
    scale = max(float(np.abs(ref).max()), 1e-12)
    return float(np.abs(got.astype(np.float64) - ref).max()) / scale


@pytest.mark.parametrize("kind", ["det", "cls", "rec"])
def test_rapidocr_every_recorded_tensor_matches_onnxruntime(kind):
    path = zoo.rapidocr_model(kind)
    feeds = zoo.rapidocr_input(kind)
    model = lwnn.load(path)
    rec = model.run(feeds, record=True)
    ref = ort_intermediates(path, feeds)

    executed = [out for layer in model.layers for out in layer.outputs if layer.name in rec.executed_by]
    assert executed, "nothing was executed"
    missing = [n for n in executed if n not in ref]
    assert not missing, f"lwnn tensors without an onnxruntime counterpart: {missing[:5]}"
    errors = {n: relative_error(rec[n], ref[n]) for n in executed}
    for n in executed:
        assert rec[n].shape == ref[n].shape, n
    worst = max(errors, key=errors.get)
    assert errors[worst] <= REL_TOL, f"{worst}: relative error {errors[worst]:.2e} > {REL_TOL}"
    # The final outputs are among the compared tensors, and the model ran on the CPU float runtime.
    assert set(model.outputs) <= set(executed)
    assert {v for v in rec.executed_by.values()} <= {"cpu/float", "folded"}


@pytest.mark.parametrize("kind", ["det", "cls", "rec"])
def test_rapidocr_fast_path_outputs_match_onnxruntime(kind):
    """Runs without recording fold BatchNorm into convolutions; outputs stay within 1e-4."""
    path = zoo.rapidocr_model(kind)
    feeds = zoo.rapidocr_input(kind)
    model = lwnn.load(path)
    plan = model.plan({"x": feeds["x"].shape})
    if kind == "cls":
        assert len(plan.fast_steps) < len(plan.steps)  # the classifier has Conv -> BatchNorm pairs
    got = model.run(feeds)
    ref = dict(zip(model.outputs, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        list(model.outputs), feeds)))
    for name in model.outputs:
        assert relative_error(got[name], ref[name]) <= REL_TOL, name


def test_rapidocr_detector_finds_text_like_onnxruntime():
    """The detector's probability map thresholded like rapidocr (0.3) agrees with onnxruntime."""
    path = zoo.rapidocr_model("det")
    feeds = zoo.rapidocr_input("det")
    prob = lwnn.load(path).run(feeds)["sigmoid_0.tmp_0"]
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    mask, ref_mask = prob > 0.3, ref > 0.3
    assert ref_mask.mean() > 0.01, "the real text image should contain text pixels"
    assert (mask != ref_mask).mean() < 1e-4
