"""Darknet import: the bundled YOLOv3 / YOLOv3-tiny cfgs with weights files written in darknet's
binary layout by lwnn.zoo.darknet_weights (which walks the cfg on its own): every array
reads back exactly, the models run, and layer semantics match independent NumPy formulas."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_detection_ops import darknet_detections, darknet_yolo, run_layer

import lwnn
from lwnn.errors import ModelFormatError, UnsupportedOpError
from lwnn.importers.darknet import bundled_cfg
from lwnn.ops.detection import YoloOutput
from lwnn.zoo import darknet_weights

ROOT = Path(__file__).resolve().parents[1]


writer = darknet_weights


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("darknet") / "yolov3-tiny.weights"
    arrays = writer.write_weights(bundled_cfg("yolov3-tiny.cfg"), path, seed=1)
    return path, arrays


def conv_layers(model) -> list[str]:
    """Names of the [convolutional] layers of an imported model, in cfg order."""
    names = {n.rsplit(".", 1)[0] for n in model.graph.constants if n.endswith(".weight")}
    return sorted(names, key=lambda n: int(n.split("_")[0]))


def assert_round_trip(model, arrays):
    convs = conv_layers(model)
    assert len(convs) == len(arrays)
    constants = model.graph.constants
    for name, written in zip(convs, arrays):
        np.testing.assert_array_equal(constants[f"{name}.weight"], written["weights"])
        np.testing.assert_array_equal(constants[f"{name}.bias"], written["biases"])
        if "scales" in written:
            np.testing.assert_array_equal(constants[f"{name}.bn_scale"], written["scales"])
            np.testing.assert_array_equal(constants[f"{name}.bn_mean"], written["rolling_mean"])
            np.testing.assert_array_equal(constants[f"{name}.bn_var"], written["rolling_variance"])
        else:
            assert f"{name}.bn_scale" not in constants


def test_yolov3_tiny_weights_read_back_exactly(tiny):
    path, arrays = tiny
    model = lwnn.load(bundled_cfg("yolov3-tiny.cfg"), weights=path)
    assert len(arrays) == 13
    assert_round_trip(model, arrays)
    assert list(model.outputs) == ["16_yolo", "23_yolo", "detections"]
    assert model.inputs == {"data": (None, 3, None, None)}


def leaky(x):
    return np.where(x > 0, x, 0.1 * x)


def darknet_conv_bn_leaky(x, w, bias, scale, mean, var, pad):
    """Convolution as a sum over taps of shifted inputs, darknet's batch norm and leaky ReLU."""
    f, _, k, _ = w.shape
    xp = np.pad(x[0].astype(np.float64), ((0, 0), (pad, pad), (pad, pad)))
    h, wd = x.shape[2], x.shape[3]
    out = np.zeros((f, h, wd))
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("fc,chw->fhw", w[:, :, dy, dx], xp[:, dy: dy + h, dx: dx + wd])
    out = (out - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-6) * scale[:, None, None]
    return leaky(out + bias[:, None, None])[None]


def test_yolov3_tiny_runs_and_layers_follow_darknet(tiny):
    path, arrays = tiny
    model = lwnn.load(bundled_cfg("yolov3-tiny.cfg"), weights=path)
    x = np.random.default_rng(2).uniform(0, 1, (1, 3, 128, 128)).astype(np.float32)
    rec = model.run({"data": x}, record=True)
    first = arrays[0]
    ref0 = darknet_conv_bn_leaky(x, first["weights"], first["biases"], first["scales"], first["rolling_mean"],
                                 first["rolling_variance"], pad=1)
    np.testing.assert_allclose(rec["0_convolutional"], ref0, rtol=1e-4, atol=1e-4)
    # maxpool size 2 stride 2, then the size-2 stride-1 maxpool that keeps 4x4 (pads -inf at the end).
    a = rec["0_convolutional"]
    np.testing.assert_array_equal(rec["1_maxpool"], a.reshape(1, 16, 64, 2, 64, 2).max(axis=(3, 5)))
    b = np.pad(rec["10_convolutional"], ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=-np.inf)
    stride1 = np.maximum(np.maximum(b[:, :, :-1, :-1], b[:, :, 1:, :-1]),
                         np.maximum(b[:, :, :-1, 1:], b[:, :, 1:, 1:]))
    assert rec["11_maxpool"].shape == (1, 512, 4, 4)
    np.testing.assert_array_equal(rec["11_maxpool"], stride1)
    # upsample copies each pixel into a 2x2 block; route -1, 8 concatenates channels.
    up = rec["18_convolutional"].repeat(2, axis=2).repeat(2, axis=3)
    np.testing.assert_array_equal(rec["19_upsample"], up)
    np.testing.assert_array_equal(rec["20_route"], np.concatenate([up, rec["8_convolutional"]], axis=1))
    # Yolo heads decode the raw 1x1 convolution outputs, anchors scaled by the actual input size.
    anchors = (10, 14, 23, 27, 37, 58, 81, 82, 135, 169, 344, 319)
    heads = (("15_convolutional", "16_yolo", (3, 4, 5)), ("22_convolutional", "23_yolo", (0, 1, 2)))
    for conv, head, mask in heads:
        ref = darknet_yolo(rec[conv].astype(np.float64), anchors, mask, 80, 128, 128)
        np.testing.assert_allclose(rec[head], ref, rtol=1e-5, atol=1e-6)
    assert rec["16_yolo"].shape == (1, 3 * 4 * 4, 85) and rec["23_yolo"].shape == (1, 3 * 8 * 8, 85)
    # detections: darknet's thresholds (0.5, NMS 0.45) over both heads; with these random weights
    # few boxes pass 0.5, so the same gathering is also checked at 0.2 where many do.
    heads = [rec["16_yolo"].astype(np.float64), rec["23_yolo"].astype(np.float64)]
    for threshold in (0.5, 0.2):
        got = rec["detections"] if threshold == 0.5 else run_layer(
            YoloOutput(threshold=threshold), {"a": rec["16_yolo"], "b": rec["23_yolo"]})[0]
        (ref,) = darknet_detections(heads, threshold, 0.45)
        rows = got[0, 0]
        assert rows.shape == (100, 7)
        expected = np.array([[0, c, p, *box] for p, c, box in ref[:100]]).reshape(-1, 7)
        np.testing.assert_allclose(rows[: len(expected)], expected, rtol=0, atol=1e-5)
        assert np.all(rows[len(ref):] == -1)
    assert len(ref) > 10


def test_yolov3_round_trip_and_run(tmp_path):
    path = tmp_path / "yolov3.weights"
    arrays = writer.write_weights(bundled_cfg("yolov3.cfg"), path, seed=3)
    model = lwnn.load(bundled_cfg("yolov3.cfg"), weights=path)
    assert len(arrays) == 75
    assert_round_trip(model, arrays)
    shapes = model.plan({"data": (1, 3, 416, 416)}).shapes  # the cfg's size: 13, 26, 52 grids
    assert [shapes[h] for h in ("82_yolo", "94_yolo", "106_yolo")] == [(1, 507, 85), (1, 2028, 85),
                                                                       (1, 8112, 85)]
    x = np.random.default_rng(4).uniform(0, 1, (1, 3, 96, 96)).astype(np.float32)
    rec = model.run({"data": x}, record=True)
    np.testing.assert_allclose(rec["4_shortcut"], rec["3_convolutional"] + rec["1_convolutional"], rtol=1e-6)
    np.testing.assert_array_equal(rec["86_route"], np.concatenate(
        [rec["85_upsample"], rec["61_shortcut"]], axis=1))
    # A one-layer route (83: layers = -4) is that layer's tensor: no layer of its own.
    assert "83_route" not in rec
    assert model.graph.layer("84_convolutional.conv").inputs[0] == "79_convolutional"
    assert rec["106_yolo"].shape == (1, 3 * 12 * 12, 85)


def test_old_header_with_32_bit_seen(tmp_path):
    path = tmp_path / "old.weights"
    arrays = writer.write_weights(bundled_cfg("yolov3-tiny.cfg"), path, seed=5, version=(0, 1, 0), seen=12)
    assert path.stat().st_size == 16 + 4 * sum(a.size for layer in arrays for a in layer.values())
    assert_round_trip(lwnn.load(bundled_cfg("yolov3-tiny.cfg"), weights=path), arrays)


def test_truncated_weights_name_the_section_and_offset(tiny, tmp_path):
    path, _ = tiny
    cut = tmp_path / "cut.weights"
    cut.write_bytes(path.read_bytes()[:5_000_000])
    with pytest.raises(ModelFormatError, match=r"truncated: section \[convolutional\] #\d+ \(cfg line \d+\) "
                                               r"needs \d+ floats .* at byte offset \d+"):
        lwnn.load(bundled_cfg("yolov3-tiny.cfg"), weights=cut)


def test_weights_that_do_not_fit_the_cfg(tiny, tmp_path):
    path, _ = tiny
    longer = tmp_path / "long.weights"
    longer.write_bytes(path.read_bytes() + b"\0" * 8)
    with pytest.raises(ModelFormatError, match="8 bytes left after the last"):
        lwnn.load(bundled_cfg("yolov3-tiny.cfg"), weights=longer)


def test_missing_weights(tmp_path):
    with pytest.raises(ModelFormatError, match="needs its weights"):
        lwnn.load(bundled_cfg("yolov3-tiny.cfg"))
    with pytest.raises(ModelFormatError, match="No darknet weights file"):
        lwnn.load(bundled_cfg("yolov3-tiny.cfg"), weights=tmp_path / "none.weights")


def write_cfg(tmp_path, body: str) -> Path:
    path = tmp_path / "net.cfg"
    path.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n\n" + body)
    return path


def test_unknown_section_names_section_and_line(tmp_path):
    cfg = write_cfg(tmp_path, "[convolutional]\nfilters=4\nsize=3\n\n[reorg]\nstride=2\n")
    where = r"unknown or unsupported darknet section \[reorg\] \(cfg line 10\)"
    with pytest.raises(ModelFormatError, match=where):
        lwnn.load(cfg, weights=tmp_path / "w.weights")


def test_unsupported_activation_is_reported(tmp_path):
    cfg = write_cfg(tmp_path, "[convolutional]\nfilters=18\nsize=1\nactivation=mish\n\n"
                              "[yolo]\nmask=0,1,2\nanchors=1,1,2,2,3,3\nclasses=1\n")
    writer.write_weights(cfg, tmp_path / "w.weights")
    with pytest.raises(UnsupportedOpError, match=re.escape("activation 'mish' is not supported")):
        lwnn.load(cfg, weights=tmp_path / "w.weights")


def test_quantized_yolo_heads_fall_back_to_float(tiny):
    """Yolo and YoloOutput have no integer kernels (F in the coverage table): in an s8 model the
    convolutions run integer and the heads run on CPU float."""
    path, _ = tiny
    model = lwnn.load(bundled_cfg("yolov3-tiny.cfg"), weights=path)
    x = np.random.default_rng(6).uniform(0, 1, (2, 3, 64, 64)).astype(np.float32)
    q = lwnn.quantize(model, {"data": x}, scheme="s8", progress=False)
    rec = q.run({"data": x[:1]}, record=True)
    assert {rec.executed_by[n] for n in ("16_yolo", "23_yolo", "detections")} == {"cpu/float"}
    assert rec.executed_by["0_convolutional"] == "cpu/s8"
    assert rec["detections"].shape == (1, 1, 100, 7)
