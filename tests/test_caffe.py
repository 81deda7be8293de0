"""Caffe import: a small SSD-style deploy prototxt (in-place BatchNorm/Scale/ReLU, depthwise
convolution, ceil-rounded pooling, Eltwise with coefficients, Permute/Flatten heads, PriorBox,
Reshape/Softmax, DetectionOutput, InnerProduct, a TRAIN-only layer) with a caffemodel written by
a hand-rolled protobuf encoder using Caffe's field numbers (independent of lwnn's schema).
Each layer's output is checked against NumPy formulas of Caffe's semantics."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from test_detection_ops import caffe_detection_output, caffe_prior_box

import lwnn
from lwnn.errors import ModelFormatError, UnsupportedOpError

PROTOTXT = (Path(__file__).parent / "data" / "tiny_ssd.prototxt").read_text()


def weight_shapes() -> dict[str, list[tuple]]:
    head = lambda n: [(n, 16, 1, 1), (n,)]  # noqa: E731
    return {
        "conv0": [(8, 3, 3, 3)], "conv0/bn": [(8,), (8,), (1,)], "conv0/scale": [(8,), (8,)],
        "conv1/dw": [(8, 1, 3, 3)], "conv1": [(16, 8, 1, 1), (16,)],
        "h1_loc": head(12), "h1_conf": head(9), "h2_loc": head(12), "h2_conf": head(9),
        "fc": [(5, 16 * 8 * 8), (5,)],
    }


def seeded_blobs(seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    blobs = {}
    for name, shapes in weight_shapes().items():
        arrays = [rng.normal(0, 0.5, s).astype(np.float32) for s in shapes]
        if name == "conv0/bn":  # mean, variance (positive), Caffe's moving-average scale factor
            arrays = [rng.normal(0, 0.5, 8), rng.uniform(0.5, 2.0, 8), np.array([0.8])]
        blobs[name] = [a.astype(np.float32) for a in arrays]
    return blobs


# --- a minimal protobuf encoder with Caffe's field numbers (caffe.proto) ---------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # length-delimited (wire type 2)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_caffemodel(blobs: dict[str, list[np.ndarray]]) -> bytes:
    """NetParameter.layer = 100 { name = 1, blobs = 7 { shape = 7 { dim = 1 packed }, data = 5 packed } }."""
    out = b""
    for name, arrays in blobs.items():
        layer = _field(1, name.encode())
        for a in arrays:
            shape = _field(1, b"".join(_varint(int(d)) for d in a.shape))
            data = _field(5, struct.pack(f"<{a.size}f", *a.reshape(-1).tolist()))
            layer += _field(7, _field(7, shape) + data)
        out += _field(100, layer)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("caffe")
    (folder / "deploy.prototxt").write_text(PROTOTXT)
    blobs = seeded_blobs()
    (folder / "net.caffemodel").write_bytes(encode_caffemodel(blobs))
    return folder / "deploy.prototxt", folder / "net.caffemodel", blobs


@pytest.fixture(scope="module")
def run(files):
    prototxt, caffemodel, blobs = files
    model = lwnn.load(prototxt, weights=caffemodel)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    return model, model.run({"data": x}, record=True), x, blobs


def conv(x, w, bias=None, stride=1, pad=0, group=1):
    """Direct convolution: a sum over kernel taps of strided input slices, per group."""
    n, cin, h, wd = x.shape
    f, cg, k, _ = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, f, oh, ow))
    per = f // group
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        for dy in range(k):
            for dx in range(k):
                patch = xs[:, :, dy: dy + stride * oh: stride, dx: dx + stride * ow: stride]
                taps = w[g * per:(g + 1) * per, :, dy, dx]
                out[:, g * per:(g + 1) * per] += np.einsum("fc,nchw->nfhw", taps, patch)
    return out if bias is None else out + bias[None, :, None, None]


def test_weights_read_back_and_outputs(run):
    model, rec, _, blobs = run
    constants = model.graph.constants
    np.testing.assert_array_equal(constants["conv0.weight"], blobs["conv0"][0])
    np.testing.assert_array_equal(constants["conv1.bias"], blobs["conv1"][1])
    np.testing.assert_allclose(constants["conv0/bn.mean"], blobs["conv0/bn"][0] / 0.8, rtol=1e-6)
    np.testing.assert_allclose(constants["conv0/bn.var"], blobs["conv0/bn"][1] / 0.8, rtol=1e-6)
    assert set(model.outputs) == {"detection_out", "fc"}
    assert "loss" not in [layer.name for layer in model.layers]  # TRAIN-only


def test_in_place_conv_batchnorm_scale_relu(run):
    _, rec, x, blobs = run
    mean, var, factor = blobs["conv0/bn"]
    gamma, beta = blobs["conv0/scale"]
    y = conv(x, blobs["conv0"][0], stride=2, pad=1)
    y = (y - (mean / factor)[None, :, None, None]) / np.sqrt((var / factor)[None, :, None, None] + 1e-5)
    y = np.maximum(gamma[None, :, None, None] * y + beta[None, :, None, None], 0)
    np.testing.assert_allclose(rec["conv0/relu"], y, rtol=1e-4, atol=1e-4)
    dw = conv(rec["conv0/relu"], blobs["conv1/dw"][0], pad=1, group=8)
    np.testing.assert_allclose(rec["conv1/dw/relu"], np.where(dw > 0, dw, 0.1 * dw), rtol=1e-4, atol=1e-4)
    pointwise = conv(rec["conv1/dw/relu"], *blobs["conv1"])
    np.testing.assert_allclose(rec["conv1"], pointwise, rtol=1e-4, atol=1e-4)


def test_ceil_pooling_eltwise_permute_flatten(run):
    _, rec, _, blobs = run
    a = np.pad(rec["conv1"], ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=-np.inf)  # 16 -> 8 windows
    pooled = np.max([a[:, :, dy: dy + 15: 2, dx: dx + 15: 2] for dy in range(3) for dx in range(3)], axis=0)
    assert rec["pool1"].shape == (1, 16, 8, 8)
    np.testing.assert_array_equal(rec["pool1"], pooled)
    np.testing.assert_allclose(rec["res"], 1.5 * rec["pool1"], rtol=1e-6)
    np.testing.assert_array_equal(rec["h1_loc_flat"], rec["h1_loc"].transpose(0, 2, 3, 1).reshape(1, -1))
    fc = rec["drop"].reshape(1, -1).astype(np.float64) @ blobs["fc"][0].T + blobs["fc"][1]
    np.testing.assert_allclose(rec["fc"], fc, rtol=1e-4, atol=1e-4)


def test_priors_softmax_and_detections(run):
    _, rec, _, _ = run
    p1 = caffe_prior_box(16, 16, 32, 32, (8.0,), (), (2.0,), True, False, (0.1, 0.1, 0.2, 0.2), 0, 0.5)
    p2 = caffe_prior_box(8, 8, 32, 32, (16.0,), (24.0,), (2.0,), False, False, (0.1, 0.1, 0.2, 0.2), 4, 0.5)
    np.testing.assert_allclose(rec["prior"], np.concatenate([p1, p2], axis=2), atol=1e-6)
    logits = rec["conf"].reshape(1, -1, 3).astype(np.float64)
    soft = np.exp(logits - logits.max(-1, keepdims=True))
    probs = (soft / soft.sum(-1, keepdims=True)).reshape(1, -1)
    np.testing.assert_allclose(rec["conf_flatten"], probs, atol=1e-6)
    ref = caffe_detection_output(rec["loc"].astype(np.float64), rec["conf_flatten"].astype(np.float64),
                                 rec["prior"].astype(np.float64), 3, True, 0, 0.45, 100, 50, 0.2)
    rows = rec["detection_out"][0, 0]
    assert rows.shape == (50, 7) and 0 < len(ref) <= 50
    np.testing.assert_allclose(rows[: len(ref)], np.array(ref), atol=1e-5)
    assert np.all(rows[len(ref):] == -1)


def test_missing_and_broken_weights(files, tmp_path):
    prototxt, caffemodel, blobs = files
    partial = dict(blobs)
    del partial["conv1"]
    (tmp_path / "partial.caffemodel").write_bytes(encode_caffemodel(partial))
    with pytest.raises(ModelFormatError, match=r"layer 'conv1' \(Convolution\) needs 2 weight blob"):
        lwnn.load(prototxt, weights=tmp_path / "partial.caffemodel")
    (tmp_path / "cut.caffemodel").write_bytes(caffemodel.read_bytes()[:1000])
    with pytest.raises(ModelFormatError, match="not a readable caffemodel"):
        lwnn.load(prototxt, weights=tmp_path / "cut.caffemodel")
    with pytest.raises(ModelFormatError, match="needs its weights"):
        lwnn.load(prototxt)


def test_unsupported_layer_lists_the_supported_ones(files, tmp_path):
    _, caffemodel, _ = files
    bad = tmp_path / "bad.prototxt"
    bad.write_text(PROTOTXT.replace('type: "Permute"', 'type: "ShuffleChannel"', 1))
    with pytest.raises(UnsupportedOpError, match=r"'h1_loc_perm': type 'ShuffleChannel' is not supported\. "
                                                 r"Supported: BatchNorm, Concat"):
        lwnn.load(bad, weights=caffemodel)
    old = tmp_path / "v1.prototxt"
    old.write_text('name: "v1"\nlayers { name: "c" type: CONVOLUTION }\n')
    with pytest.raises(UnsupportedOpError, match="deprecated V1 'layers' format"):
        lwnn.load(old, weights=caffemodel)


def test_average_pooling_counts_padding_but_not_the_ceil_overhang(tmp_path):
    """Caffe's AVE pooling divides by the window clipped to the padded input (pooling_layer.cpp)."""
    proto = tmp_path / "pool.prototxt"
    proto.write_text('input: "x"\ninput_shape { dim: 1 dim: 2 dim: 7 dim: 6 }\n'
                     'layer { name: "pool" type: "Pooling" bottom: "x" top: "y" '
                     'pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }\n')
    (tmp_path / "empty.caffemodel").write_bytes(b"")
    x = np.random.default_rng(3).normal(size=(1, 2, 7, 6)).astype(np.float32)
    got = lwnn.load(proto, weights=tmp_path / "empty.caffemodel").run({"x": x})["y"]
    k, st, pad = 3, 2, 1
    h, w = 7, 6
    oh = -(-(h + 2 * pad - k) // st) + 1
    ow = -(-(w + 2 * pad - k) // st) + 1
    oh -= (oh - 1) * st >= h + pad
    ow -= (ow - 1) * st >= w + pad
    ref = np.zeros((1, 2, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * st - pad, j * st - pad
            he, we = min(hs + k, h + pad), min(ws + k, w + pad)
            size = (he - hs) * (we - ws)
            window = x[:, :, max(hs, 0):min(he, h), max(ws, 0):min(we, w)]
            ref[:, :, i, j] = window.sum(axis=(2, 3)) / size
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_bundled_mobilenet_ssd_at_its_real_size(tmp_path):
    """The bundled MobileNet-SSD deploy prototxt is what the script writes; with seeded weights it
    imports, runs at 300x300 and produces its 1917 priors and a [1, 1, 100, 7] detection tensor."""
    from lwnn.importers.caffe import bundled_prototxt
    from lwnn.zoo import mobilenet_ssd_caffe as writer

    path = bundled_prototxt()
    assert path.read_text() == writer.prototxt(), "regenerate it with python -m lwnn.zoo.mobilenet_ssd_caffe"
    written = writer.write_caffemodel(path, tmp_path / "ssd.caffemodel", seed=2)
    model = lwnn.load(path, weights=tmp_path / "ssd.caffemodel")
    assert len(written) == 47 and sum(a.size for v in written.values() for a in v) == 5_783_417
    np.testing.assert_array_equal(model.graph.constants["conv13.weight"], written["conv13"][0])
    x = np.random.default_rng(4).uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)
    rec = model.run({"data": x}, record=True)
    assert rec["conv11"].shape == (1, 512, 19, 19) and rec["conv17_2"].shape == (1, 128, 1, 1)
    assert rec["mbox_priorbox"].shape == (1, 2, 1917 * 4)
    first = caffe_prior_box(19, 19, 300, 300, (60.0,), (), (2.0,), True, False, (0.1, 0.1, 0.2, 0.2), 0, 0.5)
    np.testing.assert_allclose(rec["conv11_mbox_priorbox"], first, atol=1e-6)
    assert list(model.outputs) == ["detection_out"]
    assert rec["detection_out"].shape == (1, 1, 100, 7)


@pytest.mark.parametrize("shared", [False, True])
def test_prelu(tmp_path, shared):
    proto = tmp_path / "prelu.prototxt"
    proto.write_text('input: "x"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'
                     'layer { name: "act" type: "PReLU" bottom: "x" top: "y" '
                     f'prelu_param {{ channel_shared: {"true" if shared else "false"} }} }}\n')
    slope = np.array([0.25] if shared else [0.1, 0.2, 0.3], np.float32)
    (tmp_path / "w.caffemodel").write_bytes(encode_caffemodel({"act": [slope]}))
    x = np.random.default_rng(5).normal(size=(2, 3, 4, 5)).astype(np.float32)
    got = lwnn.load(proto, weights=tmp_path / "w.caffemodel").run({"x": x})["y"]
    s = slope.reshape(1, -1, 1, 1) if not shared else slope[0]
    np.testing.assert_allclose(got, np.where(x > 0, x, s * x), rtol=1e-6)
