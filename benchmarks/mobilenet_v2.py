"""MobileNetV2-224 as an ONNX file, for timing: the published architecture (Sandler et al., 2018,
Table 2: width 1.0, 224x224 input, 1000 classes), seeded random weights, BatchNorm already folded
into the convolutions and ReLU6 as ``Clip(0, 6)``, as the common exports have it. Latency does not
depend on the weights; no pretrained weights can be fetched here.

    .venv/bin/python benchmarks/mobilenet_v2.py OUT.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# (expansion t, output channels c, repeats n, first stride s) of the inverted residual stages.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
          (6, 320, 1, 1))
OPSET = 17


def build(seed: int = 0):
    """The ModelProto (input "input" [N, 3, 224, 224], output "logits" [N, 1000])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    count = [0]

    def conv(x: str, cin: int, cout: int, k: int, stride: int, group: int = 1, relu6: bool = True) -> str:
        i = count[0] = count[0] + 1
        fan_in = cin // group * k * k
        w = (rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.01).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")])
        y = f"conv{i}"
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [y], name=y, kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4, group=group))
        if not relu6:
            return y
        nodes.append(helper.make_node("Clip", [y, "zero", "six"], [f"{y}_relu6"], name=f"{y}_relu6"))
        return f"{y}_relu6"

    inits += [numpy_helper.from_array(np.array(0, np.float32), "zero"),
              numpy_helper.from_array(np.array(6, np.float32), "six")]
    x, channels = conv("input", 3, 32, 3, 2), 32
    for t, c, n, s in STAGES:
        for r in range(n):
            stride = s if r == 0 else 1
            hidden = channels * t
            h = conv(x, channels, hidden, 1, 1) if t != 1 else x
            h = conv(h, hidden, hidden, 3, stride, group=hidden)
            h = conv(h, hidden, c, 1, 1, relu6=False)
            if stride == 1 and channels == c:
                nodes.append(helper.make_node("Add", [x, h], [f"{h}_add"], name=f"{h}_add"))
                h = f"{h}_add"
            x, channels = h, c
    x = conv(x, channels, 1280, 1, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"))
    w = (rng.standard_normal((1000, 1280)) * np.sqrt(1.0 / 1280)).astype(np.float32)
    inits += [numpy_helper.from_array(w, "fc_w"), numpy_helper.from_array(np.zeros(1000, np.float32), "fc_b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes, "mobilenet_v2_224",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def write(path: Path) -> Path:
    """Write the model to ``path`` (once: the file is reused while it exists)."""
    path = Path(path)
    if not path.exists():
        import onnx

        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(build(), str(path))
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "mobilenet_v2_224.onnx")))
