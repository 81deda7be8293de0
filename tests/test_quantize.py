"""lwnn.quantize and QuantizedModel: parameters, integer execution with fallback, mixed
precision, raw tensors, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest

import lwnn

CONV1 = "/conv1/conv/Conv"
BN1 = "/conv1/bn/BatchNormalization"
RELU1 = "/conv1/relu/Relu"
FC = "/fc/Gemm"


@pytest.fixture(scope="module")
def q_s8(bundled_model, bundled_samples):
    images, _ = bundled_samples
    return lwnn.quantize(bundled_model, {"image": images[:128]}, "s8", "minmax", progress=False)


def top1(probs, labels):
    return float((probs.argmax(axis=1) == labels).mean())


def test_s8_runs_on_the_integer_runtime_and_keeps_accuracy(bundled_model, bundled_samples, q_s8):
    images, labels = bundled_samples
    rec = q_s8.run({"image": images}, record=True)
    plan = {p.layer: p for p in q_s8.plan()}
    for layer in bundled_model.layers:
        assert rec.executed_by[layer.name] == plan[layer.name].runtime
    integer = [p for p in plan.values() if p.runtime == "cpu/s8"]
    assert len(integer) >= len(plan) - 1  # at most the softmax falls back
    float_acc = top1(bundled_model.run({"image": images})["probs"], labels)
    assert abs(top1(rec["probs"], labels) - float_acc) <= 0.02


def test_raw_weights_are_per_channel_int8(bundled_model, q_s8):
    w_name = CONV1 + "/folded_weight"  # conv1's weights with its BatchNorm folded in
    w = q_s8.constants[w_name]
    params = q_s8.tensor_params(w_name)
    raw = q_s8.raw(w_name)
    assert raw.dtype == np.int8 and params.axis == 0 and params.scale.shape == (w.shape[0],)
    assert np.all(params.zero_point == 0) and np.abs(raw).max() == 127
    v = w.astype(np.float64) / params.scale.reshape(-1, 1, 1, 1)
    expected = np.clip(np.trunc(v) + np.sign(v) * (np.abs(v - np.trunc(v)) >= 0.5), -127, 127)  # ties away
    assert np.array_equal(raw, expected)


def test_raw_activations_after_a_recorded_run(bundled_model, bundled_samples, q_s8):
    images, _ = bundled_samples
    # conv1 + BatchNorm + ReLU, folded, write the ReLU's output
    out = bundled_model.graph.layer(RELU1).outputs[0]
    with pytest.raises(lwnn.LwnnError, match="record=True"):
        lwnn.quantize(bundled_model, {"image": images[:32]}, "s8", progress=False).raw(out)
    rec = q_s8.run({"image": images[:8]}, record=True)
    raw = q_s8.raw(out)
    assert raw.dtype == np.int8 and raw.shape == rec[out].shape
    np.testing.assert_array_equal(q_s8.tensor_params(out).dequantize(raw), rec[out])


def test_activation_params_are_affine_int8(bundled_model, bundled_samples, q_s8):
    params = q_s8.tensor_params("image")
    assert params.qmin == -128 and params.qmax == 127
    # Calibrated on images in [0, max]: zero maps exactly to the lowest code, and the scale spreads
    # the observed range over the 255 steps (stored in float32).
    images, _ = bundled_samples
    assert images[:128].min() == 0
    assert int(params.zero_point) == -128
    assert float(params.scale) == float(np.float32(float(images[:128].max()) / 255))


def test_mixed_precision_keeps_a_layer_float(bundled_model, bundled_samples):
    images, _ = bundled_samples
    q = lwnn.quantize(bundled_model, {"image": images[:64]}, "s8", layers={FC: "float"}, progress=False)
    plan = {p.layer: p for p in q.plan()}
    assert plan[FC].mode == "float" and plan[FC].runtime == "cpu/float" and not plan[FC].fallback
    rec = q.run({"image": images[:16]}, record=True)
    assert rec.executed_by[FC] == "cpu/float"
    assert rec.executed_by[CONV1] == "cpu/s8"


def test_save_and_load_reproduce_the_run(bundled_model, bundled_samples, q_s8, tmp_path):
    images, _ = bundled_samples
    path = tmp_path / "q.json"
    q_s8.save(path)
    again = lwnn.QuantizedModel.load(path, bundled_model)
    a = q_s8.run({"image": images[:32]})["probs"]
    b = again.run({"image": images[:32]})["probs"]
    np.testing.assert_array_equal(a, b)
    w_name = CONV1 + "/folded_weight"
    np.testing.assert_array_equal(again.raw(w_name), q_s8.raw(w_name))


def test_generator_calibration(bundled_model, bundled_samples):
    images, _ = bundled_samples

    def batches():
        for i in range(0, 96, 32):
            yield {"image": images[i : i + 32]}

    q = lwnn.quantize(bundled_model, batches(), "s8", "percentile", progress=False)
    whole = lwnn.quantize(bundled_model, {"image": images[:96]}, "s8", "percentile", batch_size=32,
                          progress=False)
    assert len(whole.params()) > 10 and q.params() == whole.params()  # streamed or not: the same


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scheme="s4"), "Unknown scheme 's4'"),
        (dict(method="median"), "Unknown calibration method 'median'"),
        (dict(layers={"nope": "float"}), "No layer named 'nope'"),
        (dict(layers={FC: "q4"}), r"unknown mode 'q4'. Expected one of \('float', 's8', 'q8', 'q16'\)"),
        (dict(q16_headroom="half"), "q16_headroom"),
    ],
)
def test_bad_arguments(bundled_model, bundled_samples, kwargs, match):
    images, _ = bundled_samples
    with pytest.raises(lwnn.LwnnError, match=match):
        lwnn.quantize(bundled_model, {"image": images[:8]}, progress=False, **kwargs)


def test_empty_and_nonfinite_calibration_sets(bundled_model, bundled_samples):
    images, _ = bundled_samples
    with pytest.raises(lwnn.CalibrationError, match="no batches"):
        lwnn.quantize(bundled_model, iter([]), progress=False)
    bad = images[:8].copy()
    bad[3, 0, 5, 5] = np.nan
    with pytest.raises(lwnn.CalibrationError, match="image"):
        lwnn.quantize(bundled_model, {"image": bad}, progress=False)


def test_s8_bias_stays_in_int32_for_a_near_dead_channel():
    """A channel whose weights are ~0 but whose bias is not would need a bias code beyond int32;
    the weight scale is widened so the bias fits (as TFLite's quantizer does)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    w[1] *= 1e-9  # a dead channel
    b = np.array([0.5, 3.0], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = lwnn.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    q = lwnn.quantize(model, {"x": x}, "s8", progress=False)
    assert np.abs(q.raw("b").astype(np.int64)).max() <= 2**30
    y, ref = q.run({"x": x[:1]})["y"], model.run({"x": x[:1]})["y"]
    assert q.overflow == {}
    np.testing.assert_allclose(y[0, 1], 3.0, atol=float(q.tensor_params("y").scale))
    assert np.abs(y - ref).max() <= 2 * float(q.tensor_params("y").scale) + 0.05 * np.abs(ref).max()
