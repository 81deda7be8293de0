"""The committed scaled famous models (lwnn.zoo.famous): each loads in lwnn with its original
decoding layers, agrees with onnxruntime, and its task metric recomputed on a small fixed
held-out set equals the number its training script recorded."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lwnn.zoo import famous, speech
from lwnn.zoo.scenes import detections_from_rows, make_scenes, mean_iou

# The metric is recomputed with the same code and data as the training script; the tolerance
# covers float summation order differences between machines (NumPy/BLAS builds), nothing more.
METRIC_TOLERANCE = 0.005
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def scenes():
    seed = famous.metadata("mobilenet_ssd")["seed"]
    return make_scenes(
        famous.metadata("mobilenet_ssd")["test_subset"]["scenes"], famous.SCENE_SIZE, "test", seed
    )


def ort_outputs(name: str, feeds: dict) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(famous.model_path(name)), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def test_artefacts_are_small_and_described():
    total = 0
    for name in famous.MODELS:
        size = famous.model_path(name).stat().st_size
        assert size < 2.5e6, f"{name}.onnx is {size} bytes"
        total += size
        meta = famous.metadata(name)
        assert (
            meta["seed"] == 0
            and meta["model"] == f"{name}.onnx"
            and meta["command"].endswith(f"train_{name}.py")
        )
        assert meta["max_abs_diff"]["onnxruntime_vs_torch"] < 1e-4
    assert total < 5e6


@pytest.mark.parametrize("name", famous.MODELS)
def test_lwnn_matches_onnxruntime(name, scenes):
    if name == "deepspeech":
        rng = np.random.default_rng(0)
        feeds = {"mfcc": speech.mfcc(rng.normal(0, 0.05, (2, speech.CLIP_SAMPLES)).astype(np.float32))}
    else:
        feeds = {"image": scenes.images[:4]}
    got = famous.load_model(name, with_heads=False).run(feeds)
    ref = ort_outputs(name, feeds)
    assert set(got) == set(ref)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-5, atol=1e-5, err_msg=f"{name}: {key}")


def check_detections(model, images, label_offset: int) -> None:
    """Decoded detections are well formed: known classes, scores in (0, 1], boxes in the image,
    at most keep_top_k per image, and the detector finds something in every scene."""
    rows = model.run({"image": images})["detections"]
    found = detections_from_rows(rows, famous.SCENE_SIZE, label_offset, batch=len(images))
    for boxes, scores, labels in found:
        assert 0 < len(labels) <= 100
        assert ((labels >= 0) & (labels < famous.SCENE_CLASSES)).all()
        assert ((scores > 0) & (scores <= 1)).all()
        assert ((boxes >= 0) & (boxes <= famous.SCENE_SIZE)).all()


def test_mobilenet_ssd_map_recomputed(scenes):
    model = famous.load_model("mobilenet_ssd")
    types = [layer.op_type for layer in model.layers]
    assert types.count("PriorBox") == 3 and types[-1] == "DetectionOutput"
    assert any(layer.op_type == "Conv" and layer.op.group > 1 for layer in model.layers)  # depthwise
    meta = famous.metadata("mobilenet_ssd")
    check_detections(model, scenes.images[:4], label_offset=1)
    value = famous.detection_score(model, scenes, label_offset=1).map
    assert value == pytest.approx(meta["test_subset"]["map50"], abs=METRIC_TOLERANCE)
    assert value > 0.3  # a detector, not chance


def test_yolov3_tiny_map_recomputed(scenes):
    model = famous.load_model("yolov3_tiny")
    types = [layer.op_type for layer in model.layers]
    assert types.count("Yolo") == 2 and types[-1] == "YoloOutput"
    assert {"LeakyRelu", "Resize", "Concat", "MaxPool"} <= set(types)
    meta = famous.metadata("yolov3_tiny")
    check_detections(model, scenes.images[:4], label_offset=0)
    value = famous.detection_score(model, scenes, label_offset=0).map
    assert value == pytest.approx(meta["test_subset"]["map50"], abs=METRIC_TOLERANCE)
    assert value > 0.3


def test_enet_miou_recomputed(scenes):
    model = famous.load_model("enet")
    types = {layer.op_type for layer in model.layers}
    assert {"PRelu", "ConvTranspose", "Resize", "Pad", "MaxPool"} <= types
    assert any(layer.op_type == "Conv" and max(layer.op.dilations or (1,)) > 1 for layer in model.layers)
    pred = np.concatenate(
        [
            model.run({"image": scenes.images[i : i + 32]})["scores"].argmax(1)
            for i in range(0, len(scenes), 32)
        ]
    )
    value = mean_iou(pred, scenes.masks, famous.SCENE_CLASSES + 1).miou
    assert famous.segmentation_score(model, scenes).miou == value
    assert value == pytest.approx(famous.metadata("enet")["test_subset"]["miou"], abs=METRIC_TOLERANCE)
    assert value > 0.3


@needs_espeak
def test_deepspeech_accuracy_recomputed():
    meta = famous.metadata("deepspeech")
    recipes = speech.keyword_recipes("test")[
        :: int(meta["test_subset"]["recipes"].split("::")[1].rstrip("]"))
    ]
    clips = speech.keyword_clips("test", meta["seed"], use_cache=False, recipes=recipes)
    assert len(clips) == meta["test_subset"]["clips"]
    net = famous.load_model("deepspeech")
    accuracy = famous.keyword_accuracy(net, speech.mfcc(clips.audio), clips.labels)
    # One clip either way at most (a score that sits on a tie across machines).
    assert accuracy == pytest.approx(meta["test_subset"]["accuracy"], abs=1.0 / len(clips) + 1e-9)
    assert accuracy > 0.5  # ten classes: chance is 0.1


def test_deepspeech_with_mfcc_layer_on_real_speech():
    model = famous.load_model("deepspeech", with_mfcc=True)
    types = [layer.op_type for layer in model.layers]
    assert types[0] == "Mfcc" and "LSTM" in types
    net = famous.load_model("deepspeech")
    real = speech.real_keyword_clips()
    words = []
    for clip in real.audio:
        probs = model.run({"audio": clip})["probs"]
        np.testing.assert_allclose(probs, net.run({"mfcc": speech.mfcc(clip)})["probs"], rtol=1e-5, atol=1e-6)
        words.append(speech.KEYWORDS[int(probs.argmax())])
    assert words == famous.metadata("deepspeech")["real_speech"]["recognised"]


def test_yolov3_tiny_through_darknet_format(tmp_path, scenes):
    """The scaled YOLOv3-tiny written as darknet cfg + weights loads with lwnn's darknet importer
    and computes what the ONNX model computes, head for head."""
    import lwnn

    cfg, weights = famous.write_yolo_darknet(tmp_path)
    graph = famous.load_model("yolov3_tiny", with_heads=False).graph
    convs = [layer for layer in graph.layers if layer.op_type == "Conv"]
    assert len(convs) == 13
    # header (3 int32 + int64 images seen), then every convolution's biases and weights as float32
    floats = sum(graph.constants[c.inputs[1]].size + graph.constants[c.inputs[2]].size for c in convs)
    assert weights.stat().st_size == 20 + 4 * floats
    darknet = lwnn.load(cfg, weights=weights)
    images = scenes.images[:4]
    got = darknet.run({"data": images})
    ref = famous.load_model("yolov3_tiny").run({"image": images})
    np.testing.assert_allclose(got["16_yolo"], ref["head1_boxes"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["23_yolo"], ref["head2_boxes"], rtol=1e-5, atol=1e-6)


def test_enet_real_size_architecture():
    meta = famous.metadata("enet_real")
    assert meta["parameters"] == 376899 and meta["trained"] is False  # the published ENet: 0.37 M
    model = famous.load_model("enet_real")
    assert model.inputs["image"][1:] == (3, 512, 512)
    dilations = {max(layer.op.dilations or (1,)) for layer in model.layers if layer.op_type == "Conv"}
    assert dilations == {1, 2, 4, 8, 16}
    assert sum(layer.op_type == "PRelu" for layer in model.layers) > 40
    size = sum(famous.model_path(n).stat().st_size for n in famous.MODELS + famous.REAL_MODELS)
    assert size < 5e6


def test_deepspeech_real_size_architecture():
    model = famous.deepspeech_real(seed=0)
    params = sum(v.size for v in model.graph.constants.values())
    # 19*26*2048 + 2*2048^2 + LSTM 2*4*2048^2 + 8*2048 + 2048^2 + 2048*29, biases
    assert 46e6 < params < 48e6
    lstm = model.graph.layer("lstm")
    assert lstm.op.hidden_size == 2048
    audio = speech.real_keyword_clips().audio[0][: 512 + 15 * 320]
    with_mfcc = famous.deepspeech_real(seed=0, with_mfcc=True)
    probs = with_mfcc.run({"audio": audio})["probs"]
    assert probs.shape == (16, 1, 29)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(model.run({"mfcc": speech.mfcc(audio)})["probs"], probs, rtol=1e-5, atol=1e-6)
    again = famous.deepspeech_real(seed=0).graph.constants["h2.weight"]
    np.testing.assert_array_equal(again, model.graph.constants["h2.weight"])  # seeded
