"""Fashion-MNIST loader (on Debian's real files) and the bundled default model built from it."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from lwnn.data import default_metadata, default_model_path, default_samples
from lwnn.zoo.datasets import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    fashion_feeds,
    load_fashion_mnist,
    read_idx,
)

needs_data = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist"
)


@needs_data
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_fashion_mnist_shapes(split, n):
    images, labels = load_fashion_mnist(split)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.uint8
    assert labels.min() == 0 and labels.max() == len(FASHION_MNIST_CLASSES) - 1
    assert np.bincount(labels).tolist() == [n // 10] * 10  # Fashion-MNIST is balanced
    assert 0 < images.mean() < 255


def test_missing_folder_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test", root=tmp_path)


def test_bad_split():
    with pytest.raises(ValueError, match="'train' or 'test'. Received 'val'"):
        load_fashion_mnist("val")


def test_read_idx_round_trip_and_errors(tmp_path):
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + np.array(data.shape, dtype=">u4").tobytes()
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + data.tobytes()))
    np.testing.assert_array_equal(read_idx(path), data)
    (tmp_path / "short").write_bytes(header + data.tobytes()[:-1])
    with pytest.raises(ValueError, match="declares shape"):
        read_idx(tmp_path / "short")
    (tmp_path / "float").write_bytes(bytes([0, 0, 0x0D, 1]) + b"\0\0\0\0")
    with pytest.raises(ValueError, match="not an IDX file of unsigned bytes"):
        read_idx(tmp_path / "float")


def test_default_samples_match_the_test_set():
    images, labels = default_samples()
    assert images.shape == (256, 1, 28, 28) and images.dtype == np.float32
    assert labels.shape == (256,) and 0.0 <= images.min() and images.max() <= 1.0
    if FASHION_MNIST_DIR.is_dir():
        test_images, test_labels = load_fashion_mnist("test")
        np.testing.assert_array_equal(images[:, 0], test_images[:256] / np.float32(255))
        np.testing.assert_array_equal(labels, test_labels[:256])


def test_default_model_interface(bundled_model):
    m = bundled_model
    assert m.inputs == {"image": (None, 1, 28, 28)}
    assert m.outputs == {"probs": (None, 10)}
    ops = [layer.op_type for layer in m.layers]
    assert ops == ["Conv", "BatchNorm", "Relu", "MaxPool"] * 2 + ["Conv", "BatchNorm", "Relu"] * 2 + [
        "AveragePool", "Flatten", "Dense", "Softmax"]
    assert any(layer.op_type == "Conv" and layer.op.group > 1 for layer in m.layers)  # depthwise
    meta = default_metadata()
    assert meta["test_accuracy_onnxruntime"] >= 0.89
    assert {"seed", "epochs", "torch_version", "command"} <= set(meta)


@needs_data
def test_default_model_accuracy_lwnn_matches_onnxruntime(bundled_model):
    ort = pytest.importorskip("onnxruntime")
    images, labels = load_fashion_mnist("test")
    x = (images.astype(np.float32) / 255)[:, None]
    m = bundled_model
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # no spinning pool threads to starve lwnn's BLAS threads
    sess = ort.InferenceSession(str(default_model_path()), opts, providers=["CPUExecutionProvider"])
    pred_lwnn, pred_ort = [], []
    for i in range(0, len(x), 500):  # moderate GEMMs, 20 runs
        pred_lwnn.append(m.run({"image": x[i : i + 500]})["probs"].argmax(1))
        pred_ort.append(sess.run(["probs"], {"image": x[i : i + 500]})[0].argmax(1))
    pred_lwnn, pred_ort = np.concatenate(pred_lwnn), np.concatenate(pred_ort)
    disagree = np.flatnonzero(pred_lwnn != pred_ort)
    assert disagree.size == 0, f"lwnn and onnxruntime disagree on test images {disagree[:20].tolist()}"
    accuracy = float((pred_lwnn == labels).mean())
    assert accuracy == pytest.approx(default_metadata()["test_accuracy_onnxruntime"], abs=0.001)


@needs_data
def test_fashion_feeds_are_the_bundled_cnns_input(bundled_model):
    feeds, labels = fashion_feeds("test", 100)
    images, all_labels = load_fashion_mnist("test")
    assert list(feeds) == ["image"] and feeds["image"].shape == (100, 1, 28, 28)
    assert feeds["image"].dtype == np.float32 and 0 <= feeds["image"].min() and feeds["image"].max() <= 1
    np.testing.assert_array_equal(feeds["image"][:, 0], (images[:100] / 255).astype(np.float32))
    np.testing.assert_array_equal(labels, all_labels[:100])
    assert bundled_model.run(feeds)["probs"].shape == (100, 10)
