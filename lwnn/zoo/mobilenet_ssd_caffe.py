"""Write MobileNet-SSD (300x300, 21 VOC classes) as a Caffe deploy prototxt, and optionally a
caffemodel of seeded weights for it.

    python -m lwnn.zoo.mobilenet_ssd_caffe   # writes lwnn/data/caffe/mobilenet_ssd_deploy.prototxt
    python -m lwnn.zoo.mobilenet_ssd_caffe --weights /tmp/ssd.caffemodel --seed 0

The architecture is the published MobileNet-SSD deploy network (batch norm merged into the
convolutions): a MobileNet v1 backbone (conv0..conv13, depthwise separable), four extra layers
(conv14..conv17), and six SSD heads on conv11, conv13, conv14_2..conv17_2 with PriorBox
(min sizes 60..285, 1917 priors) and DetectionOutput. Its pretrained weights cannot be fetched
here; the seeded caffemodel lets the importer and the runtimes be exercised at the real size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "lwnn" / "data" / "caffe" / "mobilenet_ssd_deploy.prototxt"
CLASSES = 21
# (name, output channels, depthwise stride): MobileNet v1 with depthwise separable blocks.
BACKBONE = [("conv1", 64, 1), ("conv2", 128, 2), ("conv3", 128, 1), ("conv4", 256, 2), ("conv5", 256, 1),
            ("conv6", 512, 2), ("conv7", 512, 1), ("conv8", 512, 1), ("conv9", 512, 1), ("conv10", 512, 1),
            ("conv11", 512, 1), ("conv12", 1024, 2), ("conv13", 1024, 1)]
EXTRAS = [("conv14", 256, 512), ("conv15", 128, 256), ("conv16", 128, 256), ("conv17", 64, 128)]
# (source blob, min size, max size, aspect ratios): 3 priors on conv11, 6 on the others.
HEADS = [("conv11", 60, None, (2,)), ("conv13", 105, 150, (2, 3)), ("conv14_2", 150, 195, (2, 3)),
         ("conv15_2", 195, 240, (2, 3)), ("conv16_2", 240, 285, (2, 3)), ("conv17_2", 285, 300, (2, 3))]


def _conv(name, bottom, filters, kernel, stride=1, pad=0, group=1, relu=True) -> str:
    text = (f'layer {{\n  name: "{name}"\n  type: "Convolution"\n  bottom: "{bottom}"\n  top: "{name}"\n'
            f"  convolution_param {{\n    num_output: {filters}\n    bias_term: true\n    pad: {pad}\n"
            f"    kernel_size: {kernel}\n    stride: {stride}\n")
    if group > 1:
        text += f"    group: {group}\n    engine: CAFFE\n"
    text += "  }\n}\n"
    if relu:
        text += (f'layer {{\n  name: "{name}/relu"\n  type: "ReLU"\n  bottom: "{name}"\n'
                 f'  top: "{name}"\n}}\n')
    return text


def _flat(name, bottom) -> str:
    return (f'layer {{\n  name: "{name}_perm"\n  type: "Permute"\n  bottom: "{bottom}"\n'
            f'  top: "{name}_perm"\n'
            "  permute_param {\n    order: 0\n    order: 2\n    order: 3\n    order: 1\n  }\n}\n"
            f'layer {{\n  name: "{name}_flat"\n  type: "Flatten"\n  bottom: "{name}_perm"\n'
            f'  top: "{name}_flat"\n  flatten_param {{\n    axis: 1\n  }}\n}}\n')


def _concat(name, bottoms, axis) -> str:
    lines = "".join(f'  bottom: "{b}"\n' for b in bottoms)
    return (f'layer {{\n  name: "{name}"\n  type: "Concat"\n{lines}  top: "{name}"\n'
            f"  concat_param {{\n    axis: {axis}\n  }}\n}}\n")


def prototxt() -> str:
    """The MobileNet-SSD deploy prototxt."""
    text = 'name: "MobileNet-SSD"\ninput: "data"\n'
    text += "input_shape {\n  dim: 1\n  dim: 3\n  dim: 300\n  dim: 300\n}\n"
    text += _conv("conv0", "data", 32, 3, stride=2, pad=1)
    bottom, channels = "conv0", 32
    for name, filters, stride in BACKBONE:
        text += _conv(f"{name}/dw", bottom, channels, 3, stride=stride, pad=1, group=channels)
        text += _conv(name, f"{name}/dw", filters, 1)
        bottom, channels = name, filters
    for name, squeeze, filters in EXTRAS:
        text += _conv(f"{name}_1", bottom, squeeze, 1)
        text += _conv(f"{name}_2", f"{name}_1", filters, 3, stride=2, pad=1)
        bottom = f"{name}_2"
    locs, confs, priors = [], [], []
    for source, min_size, max_size, ratios in HEADS:
        count = 1 + 2 * len(ratios) + (1 if max_size else 0)
        head = f"{source}_mbox"
        text += _conv(f"{head}_loc", source, count * 4, 1, relu=False) + _flat(f"{head}_loc", f"{head}_loc")
        text += _conv(f"{head}_conf", source, count * CLASSES, 1, relu=False)
        text += _flat(f"{head}_conf", f"{head}_conf")
        params = f"    min_size: {min_size:.1f}\n" + (f"    max_size: {max_size:.1f}\n" if max_size else "")
        params += "".join(f"    aspect_ratio: {r:.1f}\n" for r in ratios)
        params += "    flip: true\n    clip: false\n"
        params += "".join(f"    variance: {v}\n" for v in (0.1, 0.1, 0.2, 0.2))
        params += "    offset: 0.5\n"
        text += (f'layer {{\n  name: "{head}_priorbox"\n  type: "PriorBox"\n  bottom: "{source}"\n'
                 '  bottom: "data"\n'
                 f'  top: "{head}_priorbox"\n  prior_box_param {{\n{params}  }}\n}}\n')
        locs.append(f"{head}_loc_flat")
        confs.append(f"{head}_conf_flat")
        priors.append(f"{head}_priorbox")
    text += _concat("mbox_loc", locs, 1) + _concat("mbox_conf", confs, 1)
    text += _concat("mbox_priorbox", priors, 2)
    text += ('layer {\n  name: "mbox_conf_reshape"\n  type: "Reshape"\n  bottom: "mbox_conf"\n'
             f'  top: "mbox_conf_reshape"\n  reshape_param {{\n    shape {{\n      dim: 0\n      dim: -1\n'
             f"      dim: {CLASSES}\n    }}\n  }}\n}}\n"
             'layer {\n  name: "mbox_conf_softmax"\n  type: "Softmax"\n  bottom: "mbox_conf_reshape"\n'
             '  top: "mbox_conf_softmax"\n  softmax_param {\n    axis: 2\n  }\n}\n'
             'layer {\n  name: "mbox_conf_flatten"\n  type: "Flatten"\n  bottom: "mbox_conf_softmax"\n'
             '  top: "mbox_conf_flatten"\n  flatten_param {\n    axis: 1\n  }\n}\n'
             'layer {\n  name: "detection_out"\n  type: "DetectionOutput"\n  bottom: "mbox_loc"\n'
             '  bottom: "mbox_conf_flatten"\n  bottom: "mbox_priorbox"\n  top: "detection_out"\n'
             "  include {\n    phase: TEST\n  }\n  detection_output_param {\n"
             f"    num_classes: {CLASSES}\n    share_location: true\n    background_label_id: 0\n"
             "    nms_param {\n      nms_threshold: 0.45\n      top_k: 100\n    }\n"
             "    code_type: CENTER_SIZE\n"
             "    keep_top_k: 100\n    confidence_threshold: 0.25\n  }\n}\n")
    return text


def write_caffemodel(prototxt_path: Path, out: Path, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Seeded He-scaled weights for every Convolution of ``prototxt_path``, written as a caffemodel."""
    from google.protobuf import text_format

    from lwnn.importers.caffe_proto import messages

    proto = messages()
    net = proto["NetParameter"]()
    text_format.Parse(prototxt_path.read_text(), net, allow_unknown_field=True)
    channels = {net.input[0]: int(net.input_shape[0].dim[1])}
    rng = np.random.default_rng(seed)
    model = proto["NetParameter"](name=net.name)
    written = {}
    for layer in net.layer:
        if layer.type != "Convolution":
            channels.update({top: channels.get(layer.bottom[0], 0) for top in layer.top if layer.bottom})
            continue
        cp = layer.convolution_param
        k, group = int(cp.kernel_size[0]), int(cp.group)
        fan_in = channels[layer.bottom[0]] // group * k * k
        shape = (cp.num_output, channels[layer.bottom[0]] // group, k, k)
        weight = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        arrays = [weight.astype(np.float32), rng.normal(0, 0.05, cp.num_output).astype(np.float32)]
        entry = model.layer.add(name=layer.name, type=layer.type)
        for a in arrays:
            blob = entry.blobs.add()
            blob.shape.dim.extend(a.shape)
            blob.data.extend(a.reshape(-1).tolist())
        written[layer.name] = arrays
        channels[layer.top[0]] = int(cp.num_output)
    out.write_bytes(model.SerializeToString())
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--weights", type=Path, help="also write a seeded caffemodel here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(prototxt())
    print(f"{args.out}: MobileNet-SSD deploy prototxt")
    if args.weights:
        written = write_caffemodel(args.out, args.weights, args.seed)
        floats = sum(a.size for v in written.values() for a in v)
        print(f"{args.weights}: {len(written)} convolutions, {floats} floats")


if __name__ == "__main__":
    main()
