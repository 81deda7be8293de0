"""Quantized-model execution modes: isolated runs, mixed integer schemes, folding before
quantization. Integer results are checked against straightforward int64 references written here
(the q-format dense formula of docs/architecture.md, "Quantization schemes"), against independent
conversions, and across save/load."""

from __future__ import annotations

import numpy as np
import pytest

import lwnn
from lwnn.numerics.params import AffineParams, QFormat

CONV1 = "/conv1/conv/Conv"
BN1 = "/conv1/bn/BatchNormalization"
RELU1 = "/conv1/relu/Relu"
PW3 = "/pw3/conv/Conv"
FC = "/fc/Gemm"
SOFTMAX = "/softmax/Softmax"


@pytest.fixture(scope="module")
def images(bundled_samples):
    return bundled_samples[0]


@pytest.fixture(scope="module")
def labels(bundled_samples):
    return bundled_samples[1]


@pytest.fixture(scope="module")
def reference(bundled_model, images):
    return bundled_model.run({"image": images[:16]}, record=True)


def out_of(model, layer_name: str) -> str:
    return model.graph.layer(layer_name).outputs[0]


def in_of(model, layer_name: str) -> str:
    return model.graph.layer(layer_name).inputs[0]


def q_format_codes(x: np.ndarray, q: int, bits: int) -> np.ndarray:
    """floor(x * 2^Q + 1/2), saturated: the q-format rounding of docs/architecture.md, in float64."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.floor(x.astype(np.float64) * 2.0**q + 0.5), lo, hi).astype(np.int64)


def ref_q_dense(x: np.ndarray, w: np.ndarray, b: np.ndarray, qx: int, qw: int, qb: int, qy: int, bits: int,
                trans_b: bool) -> np.ndarray:
    """CMSIS legacy fully connected: ``SSAT(((b << bias_shift) + NN_ROUND + sum x*w) >> out_shift)``."""
    bias_shift, out_shift = qx + qw - qb, qx + qw - qy
    assert bias_shift >= 0 and out_shift > 0  # the formula below needs these (true for this model)
    w = w.astype(np.int64)
    acc = x.astype(np.int64) @ (w.T if trans_b else w)
    acc += (b.astype(np.int64) << bias_shift) + (1 << (out_shift - 1))
    return np.clip(acc >> out_shift, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def check_fc_against_reference(q, model, x_float: np.ndarray, got_float: np.ndarray, scheme: str) -> None:
    fc = model.graph.layer(FC)
    px, pw, pb, py = (q.tensor_params(n, scheme) for n in (*fc.inputs[:3], fc.outputs[0]))
    bits = 16 if scheme == "q16" else 8
    x = q_format_codes(x_float, px.frac_bits, bits)
    expected = ref_q_dense(x, q.raw(fc.inputs[1], scheme), q.raw(fc.inputs[2], scheme), px.frac_bits,
                           pw.frac_bits, pb.frac_bits, py.frac_bits, bits, fc.op.trans_b)
    np.testing.assert_array_equal(np.round(got_float.astype(np.float64) * 2.0**py.frac_bits), expected)


# --- isolated runs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def q8(bundled_model, images):
    return lwnn.quantize(bundled_model, {"image": images[:128]}, "q8", progress=False)


def test_isolated_first_layer_equals_cumulative(bundled_model, images, reference, q8):
    """The first layer reads the quantized model input in both modes: identical outputs."""
    cumulative = q8.run({"image": images[:16]}, record=True)
    isolated = q8.run_isolated(reference)
    # conv1 with its BatchNorm and ReLU folded in writes the ReLU's output
    first = out_of(bundled_model, RELU1)
    np.testing.assert_array_equal(isolated[first], cumulative[first])
    assert isolated.executed_by == cumulative.executed_by
    assert set(isolated) == set(cumulative)


def test_isolated_layer_reads_the_quantized_float_input(bundled_model, reference, q8):
    """The FC layer's isolated output is the integer dense of quantize(float input), computed
    here with an int64 reference; its cumulative output differs (errors inherited)."""
    isolated = q8.run_isolated(reference)
    fc_in, fc_out = in_of(bundled_model, FC), out_of(bundled_model, FC)
    check_fc_against_reference(q8, bundled_model, reference[fc_in], isolated[fc_out], "q8")
    cumulative = q8.run({"image": reference["image"]}, record=True)
    assert not np.array_equal(isolated[fc_out], cumulative[fc_out])
    # Its own error is smaller than the accumulated one here.
    own = np.abs(isolated[fc_out] - reference[fc_out]).mean()
    inherited = np.abs(cumulative[fc_out] - reference[fc_out]).mean()
    assert own < inherited


def test_isolated_from_feeds_and_bad_reference(bundled_model, images, reference, q8):
    by_feeds = q8.run_isolated(feeds={"image": images[:16]})  # the feeds of `reference`
    by_reference = q8.run_isolated(reference)
    assert set(by_feeds) == set(by_reference) and len(by_feeds) > len(bundled_model.layers) // 2
    for name in by_reference:
        np.testing.assert_array_equal(by_feeds[name], by_reference[name])
    with pytest.raises(lwnn.LwnnError, match="Received neither"):
        q8.run_isolated()
    with pytest.raises(lwnn.LwnnError, match="Received dict"):
        q8.run_isolated({"image": images[:2]})


# --- mixed integer schemes --------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(bundled_model, images):
    layers = {FC: "q8", PW3: "q16", "/pw3/bn/BatchNormalization": "q16"}
    return lwnn.quantize(bundled_model, {"image": images[:128]}, "s8", layers=layers, progress=False)


def test_mixed_plan_params_and_boundaries(bundled_model, mixed):
    plan = {p.layer: p for p in mixed.plan()}
    assert (plan[FC].mode, plan[FC].runtime) == ("q8", "cpu/q8")
    assert (plan[PW3].mode, plan[PW3].runtime) == ("q16", "cpu/q16")
    assert (plan[CONV1].runtime, plan[SOFTMAX].runtime) == ("cpu/s8", "cpu/s8")
    fc_in, fc_out = in_of(bundled_model, FC), out_of(bundled_model, FC)
    assert plan[FC].converts == (f"{fc_in}: s8 -> q8",)
    assert plan[SOFTMAX].converts == (f"{fc_out}: q8 -> s8",)
    assert plan[PW3].converts == (f"{in_of(bundled_model, PW3)}: s8 -> q16",)
    assert isinstance(mixed.tensor_params(fc_in), AffineParams)  # held by the s8 Flatten
    assert isinstance(mixed.tensor_params(fc_out), QFormat) and mixed.tensor_params(fc_out).bits == 8
    assert mixed.tensor_params(out_of(bundled_model, "/pw3/bn/BatchNormalization")).bits == 16
    assert isinstance(mixed.tensor_params(fc_in, "q8"), QFormat)
    assert mixed.raw(bundled_model.graph.layer(FC).inputs[1]).dtype == np.int8  # q8 weights
    assert mixed.schemes == ("s8", "q8", "q16")


def test_mixed_run_converts_at_boundaries(bundled_model, images, labels, mixed):
    rec = mixed.run({"image": images[:64]}, record=True)
    assert rec.executed_by[FC] == "cpu/q8" and rec.executed_by[PW3] == "cpu/q16"
    fc_in, fc_out = in_of(bundled_model, FC), out_of(bundled_model, FC)
    s8_codes, q8_codes = mixed.raw(fc_in), mixed.raw(fc_in, "q8")
    assert s8_codes.dtype == np.int8 and q8_codes.dtype == np.int8
    # The boundary: dequantize with the s8 parameters, quantize with the q8 Q.
    ps, pq = mixed.tensor_params(fc_in, "s8"), mixed.tensor_params(fc_in, "q8")
    real = ps.scale.astype(np.float64) * (s8_codes.astype(np.int64) - int(ps.zero_point))
    np.testing.assert_array_equal(q8_codes, q_format_codes(real.astype(np.float32), pq.frac_bits, 8))
    check_fc_against_reference(mixed, bundled_model, pq.dequantize(q8_codes), rec[fc_out], "q8")
    float_top1 = (bundled_model.run({"image": images[:64]})["probs"].argmax(1) == labels[:64]).mean()
    assert abs((rec["probs"].argmax(1) == labels[:64]).mean() - float_top1) <= 0.05


def test_mixed_save_load_is_bit_identical(bundled_model, images, mixed, tmp_path):
    path = tmp_path / "mixed.json"
    mixed.save(path)
    again = lwnn.QuantizedModel.load(path, bundled_model)
    assert [(p.layer, p.mode, p.runtime, p.converts) for p in again.plan()] == \
        [(p.layer, p.mode, p.runtime, p.converts) for p in mixed.plan()]
    a = mixed.run({"image": images[:32]}, record=True)
    b = again.run({"image": images[:32]}, record=True)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    fc_in = in_of(bundled_model, FC)
    assert again.tensor_params(fc_in, "q8") == mixed.tensor_params(fc_in, "q8")


def test_mixed_bad_scheme_names_the_choices(bundled_model, mixed):
    with pytest.raises(lwnn.LwnnError, match=r"no 'q4' parameters. Expected one of \['s8', 'q8', 'q16'\]"):
        mixed.tensor_params(in_of(bundled_model, FC), "q4")
    with pytest.raises(lwnn.LwnnError, match=r"no 'q4' parameters. Expected one of"):
        mixed.params("q4")
    assert mixed.params("q16")[out_of(bundled_model, "/pw3/bn/BatchNormalization")].bits == 16


# --- folding before quantization --------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["s8", "q8"])
def test_fold_and_unfolded(bundled_model, images, labels, reference, scheme):
    folded = lwnn.quantize(bundled_model, {"image": images[:128]}, scheme, progress=False)
    unfolded = lwnn.quantize(bundled_model, {"image": images[:128]}, scheme, fold=False, progress=False)
    conv_out, bn_out, relu_out = (out_of(bundled_model, name) for name in (CONV1, BN1, RELU1))
    plan = {p.layer: p for p in folded.plan()}
    merged = f"{CONV1}+{BN1}+{RELU1}"
    assert plan[CONV1].folded_into == plan[BN1].folded_into == plan[RELU1].folded_into == merged
    assert all(p.folded_into is None for p in unfolded.plan())
    feeds = {"image": images[:16]}
    rec_f, rec_u = folded.run(feeds, record=True), unfolded.run(feeds, record=True)
    assert conv_out not in rec_f and bn_out not in rec_f and relu_out in rec_f and conv_out in rec_u
    assert rec_f.executed_by[CONV1] == rec_f.executed_by[BN1] == rec_f.executed_by[RELU1] == f"cpu/{scheme}"
    assert rec_u.executed_by[BN1] == f"cpu/{scheme}"
    for name, what in [(conv_out, "raw"), (bn_out, "tensor_params"), ("conv1.conv.weight", "raw"),
                       ("conv1.bn.running_var", "tensor_params")]:
        with pytest.raises(lwnn.LwnnError, match=f"folded into convolution '{CONV1}'.*fold=False"):
            getattr(folded, what)(name)
    assert unfolded.raw(conv_out).shape == rec_u[conv_out].shape
    # The folded weight is conv1's weight times gamma / sqrt(var + eps), per output channel.
    c = bundled_model.graph.constants
    k = c["conv1.bn.weight"].astype(np.float64) / np.sqrt(c["conv1.bn.running_var"].astype(np.float64)
                                                          + bundled_model.graph.layer(BN1).op.epsilon)
    w = c["conv1.conv.weight"].astype(np.float64) * k.reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(folded.constants[CONV1 + "/folded_weight"], w, rtol=1e-6)
    # Both run the network well; folding removes a requantization per BatchNorm.
    sqnr = {}
    for name, rec in (("folded", rec_f), ("unfolded", rec_u)):
        err = rec["probs"].astype(np.float64) - reference["probs"]
        sqnr[name] = 10 * np.log10((reference["probs"].astype(np.float64) ** 2).sum() / (err**2).sum())
    assert min(sqnr.values()) > 15, sqnr
    iso = folded.run_isolated(reference)
    assert conv_out not in iso and bn_out not in iso and relu_out in iso


def test_fold_only_joins_layers_of_one_mode(bundled_model, images):
    q = lwnn.quantize(bundled_model, {"image": images[:64]}, "s8", layers={BN1: "float"}, progress=False)
    plan = {p.layer: p for p in q.plan()}
    assert plan[CONV1].folded_into is None and plan[BN1].runtime == "cpu/float"
    assert plan["/conv2/conv/Conv"].folded_into is not None


# --- LWNN's linked Q ------------------------------------------------------------------------


def add_concat_model():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array((rng.standard_normal((2, 2, 3, 3)) * s).astype(np.float32), n)
             for n, s in (("wa", 4.0), ("wb", 0.05))]
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "wb"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["a", "b"], ["s"], name="add"),
        helper.make_node("Concat", ["s", "x"], ["y"], name="concat", axis=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return lwnn.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


@pytest.mark.parametrize("scheme", ["q8", "q16"])
def test_link_q_gives_add_and_concat_tensors_the_smallest_q(scheme):
    model = add_concat_model()
    x = np.random.default_rng(4).uniform(-1, 1, (16, 2, 8, 8)).astype(np.float32)
    free = lwnn.quantize(model, {"x": x}, scheme, progress=False)
    linked = lwnn.quantize(model, {"x": x}, scheme, link_q=True, progress=False)
    names = ("a", "b", "s", "x", "y")
    free_q = {n: free.tensor_params(n).frac_bits for n in names}
    assert len(set(free_q.values())) > 1  # the link has something to do
    assert {n: linked.tensor_params(n).frac_bits for n in names} == dict.fromkeys(names, min(free_q.values()))
    assert linked.tensor_params("wa") == free.tensor_params("wa")  # weights are not linked
    linked.run({"x": x[:1]}, record=True)
    bits = 16 if scheme == "q16" else 8
    # One Q everywhere: the add is a saturating add of codes, the concat a copy of codes.
    a, b = linked.raw("a").astype(np.int64), linked.raw("b").astype(np.int64)
    np.testing.assert_array_equal(linked.raw("s"), np.clip(a + b, -(1 << (bits - 1)), (1 << (bits - 1)) - 1))
    np.testing.assert_array_equal(linked.raw("y"), np.concatenate([linked.raw("s"), linked.raw("x")], axis=1))


def test_link_q_is_ignored_for_s8():
    model = add_concat_model()
    x = np.random.default_rng(4).uniform(-1, 1, (8, 2, 8, 8)).astype(np.float32)
    a = lwnn.quantize(model, {"x": x}, "s8", link_q=True, progress=False)
    b = lwnn.quantize(model, {"x": x}, "s8", progress=False)
    assert all(a.tensor_params(n) == b.tensor_params(n) for n in ("a", "b", "s", "y"))


# --- fused activations ------------------------------------------------------------------------


def ref_conv_int64(x: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    """Direct integer convolution (stride 1, group 1), one tap at a time, in int64."""
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, m, h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1), np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + out.shape[2], j : j + out.shape[3]]
            out += np.einsum("nchw,mc->nmhw", patch, w[:, :, i, j].astype(np.int64))
    return out


@pytest.mark.parametrize("scheme", ["s8", "q8"])
def test_fused_relu_requantizes_to_the_relu_output_and_clamps(bundled_model, images, reference, scheme):
    """conv1 + BatchNorm + ReLU run as one integer convolution writing the ReLU's parameters;
    checked on one image against direct integer references (TFLite requantization in scalar
    Python for s8, the CMSIS shift for q8)."""
    from reference_tflite import ref_mbqm, ref_quantize_multiplier

    q = lwnn.quantize(bundled_model, {"image": images[:128]}, scheme, progress=False)
    relu_out = out_of(bundled_model, RELU1)
    iso = q.run_isolated(reference)
    w_name, b_name = CONV1 + "/folded_weight", CONV1 + "/folded_bias"
    w, b = q.raw(w_name).astype(np.int64), q.raw(b_name).astype(np.int64)
    px, pw, pb, py = (q.tensor_params(n) for n in ("image", w_name, b_name, relu_out))
    x = px.quantize(reference["image"][:1])
    got = q.tensor_params(relu_out).quantize(iso[relu_out][:1]).astype(np.int64)
    if scheme == "q8":
        acc = ref_conv_int64(x, w, 1)
        shift = px.frac_bits + pw.frac_bits - py.frac_bits
        acc += (b << (px.frac_bits + pw.frac_bits - pb.frac_bits)).reshape(1, -1, 1, 1) + (1 << (shift - 1))
        expected = np.maximum(np.clip(acc >> shift, -128, 127), 0)
    else:
        acc = ref_conv_int64(x.astype(np.int64) - int(px.zero_point), w, 1) + b.reshape(1, -1, 1, 1)
        expected = np.empty_like(acc)
        for idx in np.ndindex(acc.shape):
            c = idx[1]
            real = float(px.scale) * float(pw.scale[c]) / float(py.scale)
            mult, shift = ref_quantize_multiplier(real)
            y = ref_mbqm(int(acc[idx]), mult, shift) + int(py.zero_point)
            expected[idx] = min(max(y, int(py.zero_point)), 127)  # fused ReLU: clamp at the zero point
    np.testing.assert_array_equal(got, expected)
    assert got.min() == (0 if scheme == "q8" else int(py.zero_point))  # the clamp is reached


# --- the OpenCL integer kernels --------------------------------------------------------------


@pytest.mark.parametrize("scheme, extra", [("s8", {}), ("q8", {}), ("q16", {"q16_headroom": "lwnn"})])
def test_opencl_backend_is_bit_exact_with_cpu(bundled_model, images, scheme, extra):
    """q.run(backend="opencl") runs integer layers on lwnn.backends.opencl_int where the device
    has a kernel: every recorded tensor and raw integer tensor equals the CPU run's."""
    q = lwnn.quantize(bundled_model, {"image": images[:64]}, scheme, progress=False, **extra)
    feeds = {"image": images[:8]}
    try:
        on_device = q.run(feeds, backend="opencl", record=True)
    except lwnn.BackendUnavailable as err:
        pytest.skip(f"no OpenCL device here: {err}")
    device_raw = {n: q.raw(n) for n in on_device if n != "image"}
    on_cpu = q.run(feeds, record=True)
    assert set(on_device) == set(on_cpu)
    for name in on_cpu:
        np.testing.assert_array_equal(on_device[name], on_cpu[name])
    for name, raw in device_raw.items():
        np.testing.assert_array_equal(raw, q.raw(name))
    assert f"opencl/{scheme}" in on_device.executed_by.values()
    assert set(on_device.executed_by.values()) <= {f"opencl/{scheme}", f"cpu/{scheme}"}


def test_unknown_backend_for_quantized_runs(bundled_model, q8, images):
    with pytest.raises(lwnn.BackendUnavailable, match=r"'cpu' or 'opencl'. Received 'tpu'"):
        q8.run({"image": images[:1]}, backend="tpu")
