"""Scaled versions of the seed's famous models, trained by lwnn's own scripts on real data.

Each model is a small ONNX file under ``lwnn/data/models/`` with a JSON file beside it saying how it
was trained and how well it does (``metadata(name)``). The ONNX files hold the trainable network;
the layers that ONNX has no op for are appended here as lwnn layers, exactly as the original
models have them:

- ``mobilenet_ssd``: MobileNet-style depthwise separable backbone + SSD heads (ONNX: ``loc``,
  ``conf`` and the three head feature maps), then PriorBox per head, Concat and DetectionOutput.
- ``yolov3_tiny``: YOLOv3-tiny layout (conv + max pool, two heads, 1x1 conv, upsample and route),
  then a Yolo layer per head and YoloOutput. ``write_yolo_darknet`` writes it as a darknet cfg
  and weights file for ``lwnn.load(cfg, weights=...)`` (the importer appends the same layers).
- ``enet``: ENet encoder/decoder (initial block, bottlenecks with dilated and asymmetric
  convolutions, PReLU); max-unpooling replaced by nearest upsampling (lwnn has no MaxUnpool).
- ``deepspeech``: DeepSpeech layout (context dense layer as a 9-frame Conv1D, dense layers with
  ReLU clipped at 20, LSTM, dense, softmax) on MFCC features; ``load_model("deepspeech",
  with_mfcc=True)`` puts lwnn's Mfcc layer in front so the model takes 16 kHz audio.

The detection and segmentation models take ``lwnn.zoo.scenes`` images (grey, 96x96), the keyword
model ``lwnn.zoo.speech`` clips. The scripts ``scripts/train_<name>.py`` regenerate the files.
``detection_score``, ``segmentation_score`` and ``keyword_accuracy`` compute the task metrics of
any runner with ``.run(feeds)`` (a float Model or a quantized one), as the scripts do.

Real-size architectures (seeded, untrained: the published weights cannot be fetched here):
``load_model("enet_real")`` (ENet, 3x512x512, 0.37 M parameters) and ``deepspeech_real()``
(DeepSpeech 0.x, 2048 units, 47 M parameters, built in memory). MobileNet-SSD (300x300) and YOLOv3
(416x416) come in their original formats from lwnn/data/caffe and lwnn/data/darknet.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from lwnn.graph import Graph, Layer, TensorSpec
from lwnn.model import Model
from lwnn.ops.detection import DetectionOutput, PriorBox, Yolo, YoloOutput
from lwnn.ops.shape import Concat

MODELS = ("mobilenet_ssd", "yolov3_tiny", "enet", "deepspeech")
# Real-size architectures with seeded, untrained weights (their trained weights cannot be fetched):
# ENet is committed as ONNX (``scripts/train_enet.py --real``); DeepSpeech is built in memory
# (``deepspeech_real``); MobileNet-SSD and YOLOv3 come as Caffe prototxt / darknet cfg in lwnn/data.
REAL_MODELS = ("enet_real",)
SCENE_SIZE = 96
SCENE_CLASSES = 10  # Fashion-MNIST

# --- SSD: one PriorBox per head (Caffe semantics), variances as MobileNet-SSD --------------------
SSD_VARIANCES = (0.1, 0.1, 0.2, 0.2)
SSD_HEADS = (  # (feature output name, PriorBox)
    (
        "feat1",
        PriorBox(
            min_sizes=(18.0,),
            max_sizes=(30.0,),
            aspect_ratios=(2.0,),
            flip=True,
            clip=False,
            variances=SSD_VARIANCES,
        ),
    ),
    (
        "feat2",
        PriorBox(
            min_sizes=(30.0,),
            max_sizes=(48.0,),
            aspect_ratios=(2.0, 3.0),
            flip=True,
            clip=False,
            variances=SSD_VARIANCES,
        ),
    ),
    (
        "feat3",
        PriorBox(
            min_sizes=(48.0,),
            max_sizes=(72.0,),
            aspect_ratios=(2.0, 3.0),
            flip=True,
            clip=False,
            variances=SSD_VARIANCES,
        ),
    ),
)
# Evaluation settings (Caffe SSD's test-time values: keep everything above 0.01 for mAP).
SSD_DETECTION = DetectionOutput(
    num_classes=SCENE_CLASSES + 1,
    share_location=True,
    background_label_id=0,
    nms_threshold=0.45,
    top_k=100,
    keep_top_k=100,
    confidence_threshold=0.01,
)

# --- YOLO: anchors in input pixels (w, h); head 1 (stride 32) masks 3,4,5, head 2 (stride 16) 0,1,2
# From k-means (IoU distance) of the training scenes' box sizes, sorted by area.
YOLO_ANCHORS = (32.0, 15.0, 15.0, 34.0, 23.0, 28.0, 42.0, 25.0, 27.0, 40.0, 39.0, 45.0)
YOLO_MASKS = ((3, 4, 5), (0, 1, 2))
YOLO_HEADS = ("head1", "head2")
YOLO_OUTPUT = YoloOutput(threshold=0.05, nms_threshold=0.45, keep_top_k=100)


def model_path(name: str) -> Path:
    """Path of a scaled famous model's ONNX file."""
    return _file(name, ".onnx")


def metadata(name: str) -> dict:
    """The JSON record of how ``name`` was trained and its held-out task metric."""
    return json.loads(_file(name, ".json").read_text())


def _file(name: str, suffix: str) -> Path:
    if name not in MODELS + REAL_MODELS:
        raise ValueError(f"Unknown model {name!r}. Expected one of {', '.join(MODELS + REAL_MODELS)}.")
    path = resources.files("lwnn.data") / "models" / f"{name}{suffix}"
    if not path.is_file():
        raise FileNotFoundError(
            f"{name}{suffix} is missing from lwnn/data/models; regenerate it with `python "
            f"scripts/train_{name.removesuffix('_real')}.py{' --real' if name in REAL_MODELS else ''}`."
        )
    return Path(str(path))


def ssd_graph(graph: Graph, detection: DetectionOutput = SSD_DETECTION) -> Graph:
    """The SSD network ``graph`` (outputs loc, conf, feat1..3) with PriorBox per head, their Concat
    (axis 2) and DetectionOutput appended; outputs ``detections`` [1, 1, N*keep_top_k, 7], loc, conf."""
    image = next(iter(graph.inputs))
    layers = list(graph.layers)
    priors = []
    for i, (feature, op) in enumerate(SSD_HEADS, 1):
        layers.append(Layer(f"priorbox{i}", op, (feature, image), (f"priors{i}",)))
        priors.append(f"priors{i}")
    layers.append(Layer("priors_concat", Concat(axis=2), tuple(priors), ("priors",)))
    layers.append(Layer("detection_out", detection, ("loc", "conf", "priors"), ("detections",)))
    return replace(graph, layers=layers, outputs=["detections", "loc", "conf"], output_specs={})


def yolo_graph(graph: Graph, output: YoloOutput = YOLO_OUTPUT) -> Graph:
    """The YOLO network ``graph`` (outputs head1, head2) with a Yolo layer per head and YoloOutput
    appended; outputs ``detections`` [1, 1, N*keep_top_k, 7] and the decoded heads."""
    image = next(iter(graph.inputs))
    layers = list(graph.layers)
    decoded = []
    for head, mask in zip(YOLO_HEADS, YOLO_MASKS):
        op = Yolo(
            anchors=YOLO_ANCHORS, mask=mask, num_classes=SCENE_CLASSES, net_w=SCENE_SIZE, net_h=SCENE_SIZE
        )
        layers.append(Layer(f"{head}_yolo", op, (head, image), (f"{head}_boxes",)))
        decoded.append(f"{head}_boxes")
    layers.append(Layer("yolo_output", output, tuple(decoded), ("detections",)))
    return replace(graph, layers=layers, outputs=["detections", *decoded], output_specs={})


def mfcc_graph(graph: Graph, samples: int | None = None) -> Graph:
    """The keyword network ``graph`` (input ``mfcc`` [N, frames, 26]) behind lwnn's Mfcc layer:
    input ``audio`` float32 [samples] of 16 kHz speech (one clip)."""
    from lwnn.zoo.speech import CLIP_SAMPLES, DEEPSPEECH_MFCC

    samples = samples or CLIP_SAMPLES
    mfcc = Layer("mfcc", DEEPSPEECH_MFCC, ("audio",), ("mfcc",))
    return replace(
        graph, inputs={"audio": TensorSpec("audio", np.float32, (samples,))}, layers=[mfcc, *graph.layers]
    )


def load_model(name: str, with_heads: bool = True, with_mfcc: bool = False) -> Model:
    """A scaled famous model as an lwnn Model. ``with_heads`` appends the SSD/YOLO decoding layers
    (the plain ONNX network otherwise); ``with_mfcc`` puts the Mfcc layer in front of deepspeech."""
    from lwnn.importers.onnx import import_onnx, read_onnx

    graph = import_onnx(read_onnx(model_path(name)))
    if name == "mobilenet_ssd" and with_heads:
        graph = ssd_graph(graph)
    elif name == "yolov3_tiny" and with_heads:
        graph = yolo_graph(graph)
    elif name == "deepspeech" and with_mfcc:
        graph = mfcc_graph(graph)
    return Model(graph)


def ssd_priors(feature_sizes: tuple[int, ...], image_size: int = SCENE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The SSD heads' prior boxes as lwnn's PriorBox layers make them, for square feature maps of
    the given sizes: corners [P, 4] relative to the image, and variances [P, 4]."""
    feeds = {"image": np.zeros((1, 1, image_size, image_size), np.float32)}
    layers = []
    for (name, op), size in zip(SSD_HEADS, feature_sizes):
        feeds[name] = np.zeros((1, 1, size, size), np.float32)
        layers.append(Layer(f"priorbox_{name}", op, (name, "image"), (f"priors_{name}",)))
    layers.append(Layer("concat", Concat(axis=2), tuple(f"priors_{n}" for n, _ in SSD_HEADS), ("priors",)))
    inputs = {n: TensorSpec(n, np.float32, v.shape) for n, v in feeds.items()}
    priors = Model(Graph(inputs, ["priors"], layers, name="ssd_priors")).run(feeds)["priors"]
    return priors[0, 0].reshape(-1, 4), priors[0, 1].reshape(-1, 4)


# --- task metrics of any runner with ``.run(feeds) -> {output: array}`` (float or quantized) -------


def detection_score(model, scenes, label_offset: int, batch: int = 32):
    """VOC mAP@0.5 of a detector whose ``detections`` output holds DetectionOutput/YoloOutput rows
    on ``lwnn.zoo.scenes`` scenes; ``label_offset`` 1 for SSD (label 0 is the background), 0 for YOLO."""
    from lwnn.zoo.scenes import detections_from_rows, mean_average_precision

    dets = []
    for i in range(0, len(scenes), batch):
        images = scenes.images[i : i + batch]
        rows = model.run({"image": images})["detections"]
        dets += detections_from_rows(rows, scenes.size, label_offset, batch=len(images))
    return mean_average_precision(dets, scenes.boxes, scenes.labels, 0.5)


def segment(model, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """Class masks uint8 [N, H, W] (argmax of the ``scores`` output) of ``images`` [N, 1, H, W]."""
    return np.concatenate(
        [
            model.run({"image": images[i : i + batch]})["scores"].argmax(1)
            for i in range(0, len(images), batch)
        ]
    ).astype(np.uint8)


def segmentation_score(model, scenes, batch: int = 32):
    """mIoU (background + 10 classes) of a segmenter's masks against the scenes' masks."""
    from lwnn.zoo.scenes import mean_iou

    return mean_iou(segment(model, scenes.images, batch), scenes.masks, SCENE_CLASSES + 1)


def keyword_accuracy(model, features: np.ndarray, labels: np.ndarray) -> float:
    """Share of clips whose most probable keyword (``probs`` output) is the label; ``features``
    are ``lwnn.zoo.speech.mfcc`` features [N, frames, 26]."""
    probs = model.run({"mfcc": np.asarray(features, np.float32)})["probs"]
    return float((probs.argmax(1) == np.asarray(labels)).mean())


# --- the scaled YOLOv3-tiny in darknet's own format ---------------------------------------------

# (section, options) of the scaled network, in darknet's layer order (indices as in
# scripts/train_yolov3_tiny.py: l0 ... l22).
_YOLO_CFG_LAYERS = (
    ("convolutional", dict(filters=8, size=3, activation="leaky")),
    ("maxpool", dict(size=2, stride=2)),
    ("convolutional", dict(filters=16, size=3, activation="leaky")),
    ("maxpool", dict(size=2, stride=2)),
    ("convolutional", dict(filters=32, size=3, activation="leaky")),
    ("maxpool", dict(size=2, stride=2)),
    ("convolutional", dict(filters=64, size=3, activation="leaky")),
    ("maxpool", dict(size=2, stride=2)),
    ("convolutional", dict(filters=96, size=3, activation="leaky")),
    ("maxpool", dict(size=2, stride=2)),
    ("convolutional", dict(filters=128, size=3, activation="leaky")),
    ("maxpool", dict(size=2, stride=1)),
    ("convolutional", dict(filters=128, size=3, activation="leaky")),
    ("convolutional", dict(filters=64, size=1, activation="leaky")),
    ("convolutional", dict(filters=128, size=3, activation="leaky")),
    ("convolutional", dict(filters=3 * (5 + SCENE_CLASSES), size=1, activation="linear")),
    ("yolo", dict(mask="3,4,5")),
    ("route", dict(layers="-4")),
    ("convolutional", dict(filters=32, size=1, activation="leaky")),
    ("upsample", dict(stride=2)),
    ("route", dict(layers="-1, 8")),
    ("convolutional", dict(filters=64, size=3, activation="leaky")),
    ("convolutional", dict(filters=3 * (5 + SCENE_CLASSES), size=1, activation="linear")),
    ("yolo", dict(mask="0,1,2")),
)


def yolo_darknet_cfg() -> str:
    """The scaled YOLOv3-tiny as a darknet cfg. Its convolutions have batch_normalize=0: the
    trained BatchNorm is folded into their weights and biases, as in the ONNX file."""
    anchors = ",  ".join(f"{w:g},{h:g}" for w, h in zip(YOLO_ANCHORS[::2], YOLO_ANCHORS[1::2]))
    lines = [
        "# Scaled YOLOv3-tiny trained by scripts/train_yolov3_tiny.py on lwnn.zoo.scenes (96x96 grey).",
        "[net]",
        "batch=1",
        "subdivisions=1",
        f"width={SCENE_SIZE}",
        f"height={SCENE_SIZE}",
        "channels=1",
        "",
    ]
    for section, options in _YOLO_CFG_LAYERS:
        lines.append(f"[{section}]")
        if section == "convolutional":
            lines += ["batch_normalize=0", "stride=1", "pad=1"]
        if section == "yolo":
            lines += [f"anchors = {anchors}", f"classes={SCENE_CLASSES}", f"num={len(YOLO_ANCHORS) // 2}"]
        lines += [f"{k}={v}" for k, v in options.items()]
        lines.append("")
    return "\n".join(lines)


def write_yolo_darknet(directory) -> tuple[Path, Path]:
    """Write the committed scaled YOLOv3-tiny as darknet ``yolov3_tiny_scaled.cfg`` and ``.weights``
    (darknet's binary layout: int32 major 0, minor 2, revision 0, int64 images seen, then per
    convolution its float32 biases and weights) in ``directory``; returns both paths, for
    ``lwnn.load(cfg, weights=weights)``."""
    from lwnn.importers.onnx import import_onnx, read_onnx

    graph = import_onnx(read_onnx(model_path("yolov3_tiny")))
    convs = [layer for layer in graph.layers if layer.op_type == "Conv"]
    filters = [o["filters"] for s, o in _YOLO_CFG_LAYERS if s == "convolutional"]
    if [graph.constants[c.inputs[1]].shape[0] for c in convs] != filters:
        raise ValueError("yolov3_tiny.onnx does not match the scaled YOLOv3-tiny cfg.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg, weights = directory / "yolov3_tiny_scaled.cfg", directory / "yolov3_tiny_scaled.weights"
    cfg.write_text(yolo_darknet_cfg())
    parts = [np.array([0, 2, 0], "<i4").tobytes(), np.array([0], "<i8").tobytes()]
    for conv in convs:
        parts.append(np.asarray(graph.constants[conv.inputs[2]], "<f4").tobytes())
        parts.append(np.asarray(graph.constants[conv.inputs[1]], "<f4").tobytes())
    weights.write_bytes(b"".join(parts))
    return cfg, weights


# --- DeepSpeech at its published size, built directly as an lwnn graph ------------------------


def deepspeech_real(
    seed: int = 0,
    steps: int = 16,
    hidden: int = 2048,
    context: int = 9,
    characters: int = 29,
    with_mfcc: bool = False,
    samples: int | None = None,
) -> Model:
    """Mozilla DeepSpeech (0.x) at its published size with seeded, untrained weights (its trained
    weights cannot be downloaded here): MFCC [1, steps, 26] -> context layer over 2*``context``+1
    frames (a Conv1D of width 19) -> 2 dense layers -> LSTM of ``hidden`` units -> dense -> output
    of ``characters`` per frame (a-z, space, apostrophe, CTC blank) -> softmax; ReLU clipped at 20.
    About 47 M parameters (190 MB of float32, made in memory, never written). Weights are normal
    with standard deviation 1/sqrt(fan in), biases zero, the LSTM's forget-gate bias 1.

    ``with_mfcc`` puts the Mfcc layer (``lwnn.zoo.speech.DEEPSPEECH_MFCC``) in front: input ``audio``
    [samples] (default: the samples that make ``steps`` frames)."""
    from lwnn.ops.conv import Conv, MatMul
    from lwnn.ops.elementwise import Add, Clip, Softmax
    from lwnn.ops.recurrent import LSTM
    from lwnn.ops.shape import Squeeze, Transpose
    from lwnn.zoo.speech import DEEPSPEECH_MFCC

    rng = np.random.default_rng(seed)
    coeffs = DEEPSPEECH_MFCC.dct_coefficient_count
    width = 2 * context + 1

    def normal(*shape, fan_in):
        return (rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))).astype(np.float32)

    lstm_bias = np.zeros((1, 8 * hidden), np.float32)
    lstm_bias[0, 2 * hidden : 3 * hidden] = 1.0  # ONNX gate order i, o, f, c: forget-gate bias 1
    constants = {
        "h1.weight": normal(hidden, coeffs, width, fan_in=coeffs * width),
        "h1.bias": np.zeros(hidden, np.float32),
        "h2.weight": normal(hidden, hidden, fan_in=hidden),
        "h2.bias": np.zeros(hidden, np.float32),
        "h3.weight": normal(hidden, hidden, fan_in=hidden),
        "h3.bias": np.zeros(hidden, np.float32),
        "lstm.W": normal(1, 4 * hidden, hidden, fan_in=hidden),
        "lstm.R": normal(1, 4 * hidden, hidden, fan_in=hidden),
        "lstm.B": lstm_bias,
        "h5.weight": normal(hidden, hidden, fan_in=hidden),
        "h5.bias": np.zeros(hidden, np.float32),
        "h6.weight": normal(hidden, characters, fan_in=hidden),
        "h6.bias": np.zeros(characters, np.float32),
    }
    relu20 = Clip(min=0.0, max=20.0)
    layers = [
        Layer("to_channels", Transpose(perm=(0, 2, 1)), ("mfcc",), ("mfcc_t",)),
        Layer("h1", Conv(pads=(context, context)), ("mfcc_t", "h1.weight", "h1.bias"), ("h1",)),
        Layer("h1_relu", relu20, ("h1",), ("h1_relu",)),
        Layer("to_frames", Transpose(perm=(0, 2, 1)), ("h1_relu",), ("h1_frames",)),
    ]
    x = "h1_frames"
    for name in ("h2", "h3"):
        layers += [
            Layer(f"{name}_matmul", MatMul(), (x, f"{name}.weight"), (f"{name}_mm",)),
            Layer(f"{name}_bias", Add(), (f"{name}_mm", f"{name}.bias"), (name,)),
            Layer(f"{name}_relu", relu20, (name,), (f"{name}_relu",)),
        ]
        x = f"{name}_relu"
    layers += [
        Layer("to_time_major", Transpose(perm=(1, 0, 2)), (x,), ("h3_time",)),
        Layer("lstm", LSTM(hidden_size=hidden), ("h3_time", "lstm.W", "lstm.R", "lstm.B"), ("lstm_y",)),
        Layer("lstm_squeeze", Squeeze(axes=(1,)), ("lstm_y",), ("h4",)),
        Layer("h5_matmul", MatMul(), ("h4", "h5.weight"), ("h5_mm",)),
        Layer("h5_bias", Add(), ("h5_mm", "h5.bias"), ("h5",)),
        Layer("h5_relu", relu20, ("h5",), ("h5_relu",)),
        Layer("h6_matmul", MatMul(), ("h5_relu", "h6.weight"), ("h6_mm",)),
        Layer("h6_bias", Add(), ("h6_mm", "h6.bias"), ("logits",)),
        Layer("softmax", Softmax(axis=-1), ("logits",), ("probs",)),
    ]
    inputs = {"mfcc": TensorSpec("mfcc", np.float32, (1, steps, coeffs))}
    graph = Graph(inputs, ["probs"], layers, constants, name="deepspeech_real")
    if with_mfcc:
        frames_samples = samples or DEEPSPEECH_MFCC.window_size + (steps - 1) * DEEPSPEECH_MFCC.stride
        graph = mfcc_graph(graph, frames_samples)
    return Model(graph)
