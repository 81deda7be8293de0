"""Seeded fuzzing of lwnn's inputs (issue 13): a deterministic mutator over real models and a
runner that executes every case in its own process, with a wall-time and an address-space limit,
and classifies what happened.

A case is ``(family, seed)``: ``make_case(family, seed)`` builds the same case on every machine and
every run. Families (``FAMILIES``):

* ``bytes``: the serialized model truncated, with bytes flipped, garbage spliced in or cut out;
* ``attributes``: an attribute of a real node, or of an op spliced into the bundled CNN, given an
  invalid or extreme value, the wrong type, an unknown name, a misspelt ``auto_pad``...;
* ``initializers``: a weight or constant deleted, retyped, with dims that do not match its data,
  negative dims, duplicated with other values, pointing to a missing external file...;
* ``structure``: dangling or renamed tensors, cycles, nodes out of topological order, two
  producers of one tensor, a graph output nobody writes, odd opset and IR versions, removed nodes;
* ``feeds``: a valid model run on feeds of the wrong dtype, rank or shape, batch 0, NaN/Inf, huge
  values, missing or extra names, not a dict;
* ``calibration``: ``lwnn.quantize`` on empty or non-finite sets, wrong shapes or names, invalid
  option values (``kl_levels=-1``, ``batch_size=2.5``) and unknown keywords.

A model case stacks one mutation, sometimes two or three; a feeds or calibration case on the CNN
sometimes runs with a valid op (Resize, ConvTranspose, Gather, Expand...) spliced in, to reach more
ops. Models: the bundled Fashion-MNIST CNN for most cases; the PP-OCR ``det`` and ``cls`` nets and
silero-vad for a minority, with small inputs.

The runner (``Runner``, ``run_cases``) starts ``jobs`` zygotes: Python processes that import lwnn,
onnx and onnxruntime and run a few valid cases once, then fork one child per case (the test process
itself never forks). The child moves into its own process group, sets ``RLIMIT_AS`` (its current
size plus a budget), tells lwnn's memory guard a quarter of that budget (``LWNN_MEMORY_LIMIT``),
runs lwnn and then onnxruntime on the same bytes and feeds, and reports each stage as a JSON line
through a pipe; the zygote kills the group at the time limit and classifies the case.

Outcomes (``OUTCOMES``): ``ok``, ``lwnn_error`` (an ``lwnn.LwnnError``), ``bare`` (any other
exception, with its ``place``: the innermost frame in ``lwnn/``), ``memory`` (``MemoryError``, or
killed by SIGKILL, as the kernel's OOM killer does), ``crash`` (died by another signal, or exited
without a word), ``hang`` (past the time limit). Flags: ``silently_wrong`` (lwnn runs a model or
feeds that onnxruntime rejects and returns outputs whose names, dtypes or shapes contradict the
model's declared outputs; in the calibration family, the quantized model's outputs differ in name
or shape from the float model's), ``disagree`` (both run and the outputs differ beyond
``RTOL``/``ATOL``; ``disagree_kind`` says how); for information ``lax`` (lwnn runs what onnxruntime
rejects) and ``strict`` (lwnn rejects what onnxruntime runs); ``harness`` is a fault of this
module. ``FAILURES`` lists what the oracle forbids.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import random
import resource
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

FAMILIES = ("bytes", "attributes", "initializers", "structure", "feeds", "calibration")
MODEL_FAMILIES = ("bytes", "attributes", "initializers", "structure")
BASES = ("cnn", "cls", "det", "silero")
OUTCOMES = ("ok", "lwnn_error", "bare", "memory", "crash", "hang")
COLUMNS = ("cases", *OUTCOMES, "silently_wrong", "disagree", "overflowed", "ill_conditioned", "lax", "strict",
           "harness")
FAILURES = ("bare", "memory", "crash", "hang", "silently_wrong", "disagree", "harness")
RTOL, ATOL = 1e-4, 1e-5  # ATOL is scaled by max(1, largest finite |onnxruntime output|)
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_MEMORY_MB = 2048
SEED_STRIDE = 1_000_000  # run seed s uses case seeds s * SEED_STRIDE + k

_BASE_WEIGHTS = {  # which real model a family mutates: mostly the small CNN
    "bytes": {"cnn": 0.6, "cls": 0.15, "det": 0.1, "silero": 0.15},
    "attributes": {"cnn": 0.7, "cls": 0.1, "det": 0.1, "silero": 0.1},
    "initializers": {"cnn": 0.65, "cls": 0.1, "det": 0.1, "silero": 0.15},
    "structure": {"cnn": 0.7, "cls": 0.1, "det": 0.05, "silero": 0.15},
    "feeds": {"cnn": 0.6, "cls": 0.15, "det": 0.1, "silero": 0.15},
    "calibration": {"cnn": 0.8, "cls": 0.05, "silero": 0.15},
}


@dataclasses.dataclass
class Case:
    """One fuzz case. ``model``: the (mutated) model file's bytes, None for the base model.
    ``feeds``: what ``run`` gets (any object in the feeds family). ``calib``/``options``: the
    calibration family's ``quantize(model, calib, **options)``."""

    family: str
    seed: int
    base: str
    mutation: str
    detail: str
    model: bytes | None = None
    feeds: object = None
    calib: object = None
    options: dict | None = None

    @property
    def key(self) -> str:
        return f"{self.family}:{self.seed}"


# --- the real models -----------------------------------------------------------------------------


def base_path(base: str) -> Path:
    if base == "cnn":
        from lwnn import data

        return Path(data.default_model_path())
    from lwnn import zoo

    if base in ("cls", "det"):
        return Path(zoo.rapidocr_model(base))
    if base == "silero":
        return Path(zoo.silero_vad_model())
    raise ValueError(f"unknown base model {base!r}; expected one of {BASES}")


@functools.cache
def base_bytes(base: str) -> bytes:
    return base_path(base).read_bytes()


@functools.cache
def _base_proto(base: str):
    import onnx

    return onnx.load_from_string(base_bytes(base))


def base_model(base: str):
    """A fresh copy of the base model's ModelProto, to mutate."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(_base_proto(base))
    return model


@functools.cache
def _samples() -> np.ndarray:
    from lwnn import data

    images, _ = data.default_samples()
    return np.asarray(images, np.float32)


def base_feeds(base: str, nrng: np.random.Generator, batch: int | None = None) -> dict[str, np.ndarray]:
    """Valid, small feeds of a base model (real Fashion-MNIST images for the CNN)."""
    f32 = np.float32
    if base == "cnn":
        images = _samples()
        idx = nrng.choice(len(images), batch or 2, replace=False)
        return {"image": images[np.sort(idx)].copy()}
    if base == "cls":
        return {"x": nrng.uniform(-1, 1, (batch or 1, 3, 48, 192)).astype(f32)}
    if base == "det":
        return {"x": nrng.uniform(-1, 1, (batch or 1, 3, 32, 32)).astype(f32)}
    if base == "silero":
        return {
            "input": nrng.uniform(-0.2, 0.2, (batch or 2, 576)).astype(f32),
            "h": nrng.normal(0, 0.1, (1, 1, 128)).astype(f32),
            "c": nrng.normal(0, 0.1, (1, 1, 128)).astype(f32),
        }
    raise ValueError(f"unknown base model {base!r}")


def base_calibration(base: str, nrng: np.random.Generator, count: int | None = None):
    """A valid calibration set: a dict of stacked samples, or (silero, whose state inputs have
    no sample axis) a list of feed dicts."""
    if base == "cnn":
        images = _samples()
        return {"image": images[np.sort(nrng.choice(len(images), count or 8, replace=False))].copy()}
    if base == "cls":
        return base_feeds("cls", nrng, batch=count or 2)
    if base == "silero":
        return [base_feeds("silero", nrng, batch=1) for _ in range(count or 2)]
    raise ValueError(f"no calibration set for base model {base!r}")


@functools.cache
def _cnn_shapes() -> dict[str, tuple[int, int, int]]:
    """{tensor: (C, H, W)} of the bundled CNN's 4-D float tensors (where an op can be spliced)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(_base_proto("cnn"))
    out = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info]:
        dims = vi.type.tensor_type.shape.dim
        if (
            vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
            and len(dims) == 4
            and all(d.HasField("dim_value") for d in dims[1:])
        ):
            out[vi.name] = tuple(int(d.dim_value) for d in dims[1:])
    return out


def warm() -> None:
    """Read and parse every base model once (the forkserver does, so every child has them)."""
    for base in BASES:
        _base_proto(base)
    _samples()
    _cnn_shapes()


# --- small helpers -------------------------------------------------------------------------------


def _pick(rnd: random.Random, weights: dict):
    keys = list(weights)
    return rnd.choices(keys, weights=[weights[k] for k in keys])[0]


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _attr(node, name):
    for a in node.attribute:
        if a.name == name:
            return a
    return None


def _set_attr(node, name, value, attr_type=None) -> None:
    from onnx import helper

    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(keep)
    node.attribute.append(helper.make_attribute(name, value, attr_type=attr_type))


def _initializer_names(graph) -> set[str]:
    return {t.name for t in graph.initializer}


def _producers(graph) -> dict[str, int]:
    return {o: i for i, n in enumerate(graph.node) for o in n.output if o}


def _np_dtype(elem_type: int):
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:  # undefined, string, or not a valid enum value
        return None


def feeds_for(model, base: dict[str, np.ndarray], nrng: np.random.Generator) -> dict[str, np.ndarray]:
    """Feeds for a (mutated) model: each declared input that no initializer provides gets the base
    feed of that name when its dtype and rank match, else random values of the declared type and
    shape (free dims from the base feed where the rank matches, else 1)."""
    inits = _initializer_names(model.graph)
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits or not vi.name:
            continue
        tt = vi.type.tensor_type
        dtype = _np_dtype(tt.elem_type) if vi.type.HasField("tensor_type") else None
        dims = list(tt.shape.dim) if tt.HasField("shape") else None
        ref = base.get(vi.name)
        if (
            ref is not None
            and (dtype is None or dtype == ref.dtype)
            and (dims is None or len(dims) == ref.ndim)
        ):
            feeds[vi.name] = ref
            continue
        if dtype is None or dtype.kind not in "fiub":
            dtype = np.dtype(np.float32)
        if dims is None:
            shape = ref.shape if ref is not None else (1,)
        else:
            shape = tuple(
                d.dim_value
                if d.HasField("dim_value") and 0 < d.dim_value <= 64
                else (ref.shape[i] if ref is not None and ref.ndim == len(dims) else 1)
                for i, d in enumerate(dims)
            )
        if math.prod(shape) > 1 << 20:
            shape = (1,) * len(shape)
        if dtype.kind == "f":
            feeds[vi.name] = nrng.normal(0, 1, shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[vi.name] = nrng.integers(0, 2, shape).astype(bool)
        else:
            feeds[vi.name] = nrng.integers(0, 3, shape).astype(dtype)
    return feeds


# --- ops spliced into the bundled CNN -------------------------------------------------------------

_SPLICE_OPS = (
    "Conv",
    "ConvTranspose",
    "MaxPool",
    "AveragePool",
    "Resize",
    "Transpose",
    "Reshape",
    "Flatten",
    "Concat",
    "Gather",
    "Slice",
    "Pad",
    "Expand",
    "ConstantOfShape",
    "Split",
    "ReduceMean",
    "LeakyRelu",
    "Elu",
    "HardSigmoid",
    "Clip",
    "Unsqueeze",
    "Squeeze",
    "Softmax",
    "Cast",
    "GlobalAveragePool",
    "Pow",
    "MatMul",
    "PRelu",
    "BatchNormalization",
)


def _template(op: str, c: int, h: int, w: int, nrng: np.random.Generator):
    """(inputs, attributes, number of outputs) of a valid ``op`` on X [N, c, h, w] (opset 13);
    an input is "X", "" (omitted) or an array that becomes an initializer."""
    from onnx import TensorProto, numpy_helper

    f32, i64 = np.float32, np.int64

    def r(*shape):
        return nrng.normal(0, 0.3, shape).astype(f32)

    return {
        "Conv": (
            ["X", r(4, c, 3, 3), r(4)],
            dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1),
            1,
        ),
        "ConvTranspose": (
            ["X", r(c, 2, 3, 3)],
            dict(
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[0, 0, 0, 0],
                output_padding=[1, 1],
                dilations=[1, 1],
                group=1,
            ),
            1,
        ),
        "MaxPool": (
            ["X"],
            dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=0, dilations=[1, 1]),
            1,
        ),
        "AveragePool": (
            ["X"],
            dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=0, count_include_pad=0),
            1,
        ),
        "Resize": (
            ["X", "", np.array([1, 1, 2, 2], f32)],
            dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
            1,
        ),
        "Transpose": (["X"], dict(perm=[0, 2, 3, 1]), 1),
        "Reshape": (["X", np.array([0, -1], i64)], {}, 1),
        "Flatten": (["X"], dict(axis=2), 1),
        "Concat": (["X", "X"], dict(axis=1), 1),
        "Gather": (["X", np.array([0, h - 1], i64)], dict(axis=2), 1),
        "Slice": (
            [
                "X",
                np.array([1, 0], i64),
                np.array([h - 1, w], i64),
                np.array([2, 3], i64),
                np.array([1, 2], i64),
            ],
            {},
            1,
        ),
        "Pad": (["X", np.array([0, 0, 1, 2, 0, 0, 2, 1], i64), np.array(0.5, f32)], dict(mode="constant"), 1),
        "Expand": (["X", np.array([2, 1, 1, 1, 1], i64)], {}, 1),
        "ConstantOfShape": (
            [np.array([2, 3], i64)],
            dict(value=numpy_helper.from_array(np.array([1.5], f32), "v")),
            1,
        ),
        "Split": (["X", np.array([h // 2, h - h // 2], i64)], dict(axis=2), 2),
        "ReduceMean": (["X"], dict(axes=[2, 3], keepdims=1), 1),
        "LeakyRelu": (["X"], dict(alpha=0.1), 1),
        "Elu": (["X"], dict(alpha=1.0), 1),
        "HardSigmoid": (["X"], dict(alpha=0.2, beta=0.5), 1),
        "Clip": (["X", np.array(-0.5, f32), np.array(0.5, f32)], {}, 1),
        "Unsqueeze": (["X", np.array([1], i64)], {}, 1),
        "Squeeze": (["X", np.array([1], i64)] if c == 1 else ["X", np.array([0], i64)], {}, 1),
        "Softmax": (["X"], dict(axis=-1), 1),
        "Cast": (["X"], dict(to=TensorProto.INT32), 1),
        "GlobalAveragePool": (["X"], {}, 1),
        "Pow": (["X", np.array(2.0, f32)], {}, 1),
        "MatMul": (["X", r(w, 5)], {}, 1),
        "PRelu": (["X", r(c, 1, 1)], {}, 1),
        "BatchNormalization": (["X", r(c) + 1, r(c), r(c), np.abs(r(c)) + 0.5], dict(epsilon=1e-5), 1),
    }[op]


def splice(model, rnd: random.Random, nrng: np.random.Generator, notes: list, op: str | None = None):
    """Add a valid ``op`` reading one of the CNN's 4-D tensors; its outputs become graph outputs
    (declared with the dtype and rank ONNX infers). Returns (node, names of its constant inputs)."""
    import onnx
    from onnx import numpy_helper

    shapes = _cnn_shapes()
    x = rnd.choice(sorted(shapes))
    c, h, w = shapes[x]
    op = op or rnd.choice(_SPLICE_OPS)
    if op == "Squeeze" and c != 1:
        x, (c, h, w) = "image", shapes["image"]
    inputs, attrs, n_out = _template(op, c, h, w, nrng)
    names, consts = [], []
    for i, value in enumerate(inputs):
        if isinstance(value, str):
            names.append(x if value == "X" else value)
        else:
            name = f"fz_{op}_in{i}"
            model.graph.initializer.append(numpy_helper.from_array(value, name))
            names.append(name)
            consts.append(name)
    outputs = [f"fz_{op}_out{i}" for i in range(n_out)]
    node = onnx.helper.make_node(op, names, outputs, name=f"fz_{op}", **attrs)
    model.graph.node.append(node)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        known = {vi.name: vi for vi in inferred.graph.value_info}
    except Exception:  # the template is valid; this only guards against an onnx bug
        known = {}
    for name in outputs:
        vi = onnx.ValueInfoProto()
        if name in known:  # dtype and rank; every dim symbolic, as mutated attributes may change them
            vi.CopyFrom(known[name])
            for i, d in enumerate(vi.type.tensor_type.shape.dim):
                d.dim_param = f"{name}_d{i}"
        else:
            vi.name = name
            vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        model.graph.output.append(vi)
    notes.append(f"spliced {op}({x} {c}x{h}x{w})")
    return model.graph.node[len(model.graph.node) - 1], consts


# --- attribute values ----------------------------------------------------------------------------

_STRING_CHOICES = {
    "auto_pad": ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"],
    "mode": ["nearest", "linear", "cubic", "constant", "reflect", "edge", "wrap", "DCR", "CRD"],
    "coordinate_transformation_mode": [
        "half_pixel",
        "pytorch_half_pixel",
        "align_corners",
        "asymmetric",
        "tf_crop_and_resize",
        "half_pixel_symmetric",
    ],
    "nearest_mode": ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"],
}
_HUGE = [2**20, 2**31 - 1, 2**31, 2**40, 2**62, 2**63 - 1]


def _fuzz_ints(values: list[int], name: str, rnd: random.Random) -> tuple[list[int], str]:
    n = len(values)
    if name == "perm":
        kind = rnd.choice(["shuffle", "duplicate", "out_of_range", "negative", "short", "long"])
        v = list(range(n))
        if kind == "shuffle":
            rnd.shuffle(v)
        elif kind == "duplicate" and n:
            v[rnd.randrange(n)] = v[(rnd.randrange(n) + 1) % n]
        elif kind == "out_of_range":
            v[rnd.randrange(n)] = n + rnd.randrange(3)
        elif kind == "negative":
            v[rnd.randrange(n)] = -1
        elif kind == "short":
            v = v[:-1]
        else:
            v = v + [n]
        return v, kind
    kind = rnd.choice(
        [
            "longer",
            "shorter",
            "empty",
            "zeros",
            "negative",
            "huge",
            "one_huge",
            "one_zero",
            "plausible",
            "plausible",
            "doubled",
        ]
    )
    if kind == "longer":
        return values + [values[-1] if values else 1] * rnd.randint(1, 2), kind
    if kind == "shorter":
        return values[: max(0, n - rnd.randint(1, max(1, n)))], kind
    if kind == "empty":
        return [], kind
    if kind == "zeros":
        return [0] * n, kind
    if kind == "negative":
        return [-(abs(v) or 1) if rnd.random() < 0.7 else v for v in values] or [-1], kind
    if kind == "huge":
        return [rnd.choice(_HUGE)] * n, kind
    if kind in ("one_huge", "one_zero") and n:
        v = list(values)
        v[rnd.randrange(n)] = rnd.choice(_HUGE) if kind == "one_huge" else 0
        return v, kind
    if kind == "doubled":
        return values * 2, kind
    return [rnd.randint(0, 3) for _ in values] or [1], "plausible"


def _fuzz_int(value: int, rnd: random.Random) -> tuple[int, str]:
    choice = rnd.choice([0, 1, 2, 3, -1, -2, -5, 100, 2**31 - 1, 2**31, 2**63 - 1, -(2**63), None])
    if choice is None:
        return value + rnd.choice([-2, -1, 1, 2]), "near"
    return choice, "extreme"


def _fuzz_float(value: float, rnd: random.Random) -> tuple[float, str]:
    return rnd.choice(
        [
            math.nan,
            math.inf,
            -math.inf,
            0.0,
            -1.0,
            1e-45,
            1e30,
            -1e30,
            3.4e38,
            value * 2,
            value * -1,
            rnd.gauss(0, 3),
        ]
    ), "extreme"


def _fuzz_string(value: bytes, name: str, rnd: random.Random) -> tuple[bytes, str]:
    text = value.decode("utf-8", "replace")
    kind = rnd.choice(["lower", "upper", "other_valid", "other_valid", "bogus", "empty", "space", "non_utf8"])
    if kind == "lower":
        return text.lower().encode(), kind
    if kind == "upper":
        return text.upper().encode(), kind
    if kind == "other_valid" and name in _STRING_CHOICES:
        return rnd.choice(_STRING_CHOICES[name]).encode(), kind
    if kind == "empty":
        return b"", kind
    if kind == "space":
        return (text + " ").encode(), kind
    if kind == "non_utf8":
        return b"\xff\xfe" + value, kind
    return b"BOGUS", "bogus"


def _wrong_type(attr, rnd: random.Random):
    """(value, attr_type) of another AttributeProto type for ``attr``'s value."""
    from onnx import AttributeProto as A
    from onnx import numpy_helper

    ints = list(attr.ints) or ([attr.i] if attr.type == A.INT else [1, 1])
    first = ints[0] if ints else 1
    options = {
        A.INT: (int(first), A.INT),
        A.INTS: ([int(v) for v in ints], A.INTS),
        A.FLOAT: (float(first), A.FLOAT),
        A.FLOATS: ([float(v) for v in ints], A.FLOATS),
        A.STRING: (",".join(str(v) for v in ints).encode(), A.STRING),
        A.STRINGS: ([str(v).encode() for v in ints], A.STRINGS),
        A.TENSOR: (numpy_helper.from_array(np.array(ints, np.int64), "t"), A.TENSOR),
    }
    options.pop(attr.type, None)
    if attr.type == A.TENSOR:
        options.pop(A.INTS)
    kind = rnd.choice(sorted(options))
    return options[kind]


def mutate_attribute(node, rnd: random.Random, notes: list) -> str:
    """Give one of ``node``'s attributes a bad or extreme value, or add/delete/duplicate one;
    returns the kind of mutation."""
    from onnx import AttributeProto as A
    from onnx import helper, numpy_helper

    attrs = [a for a in node.attribute]
    pools = node.op_type in ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool")
    kinds = {
        "value": 6 if attrs else 0,
        "wrong_type": 2 if attrs else 0,
        "unknown_name": 1,
        "delete": 1 if attrs else 0,
        "duplicate": 1 if attrs else 0,
        "auto_pad": 2 if pools else 0,
        "type_field": 0.5 if attrs else 0,
    }
    kind = _pick(rnd, kinds)
    where = f"{node.op_type} {node.name or node.output[0]!r}"
    if kind == "unknown_name":
        name = rnd.choice(["bogus", "Strides", "strides_", "axis", "alpha", "pads2", "kernel"])
        if _attr(node, name) is not None:
            name = "bogus"
        value = rnd.choice([1, 0.5, [1, 2], b"x"])
        node.attribute.append(helper.make_attribute(name, value))
        notes.append(f"{where}: unknown attribute {name}={_short(value)}")
        return kind
    if kind == "auto_pad":
        value = rnd.choice(
            [
                "SAME_UPPER",
                "SAME_LOWER",
                "VALID",
                "NOTSET",
                "same_upper",
                "Same_Lower",
                "BOGUS",
                "",
                "VALID ",
                "SAME",
            ]
        )
        drop_pads = rnd.random() < 0.5
        if drop_pads:
            keep = [a for a in node.attribute if a.name != "pads"]
            del node.attribute[:]
            node.attribute.extend(keep)
        _set_attr(node, "auto_pad", value.encode(), A.STRING)
        notes.append(f"{where}: auto_pad={value!r}" + (" (pads removed)" if drop_pads else " (pads kept)"))
        return kind
    attr = rnd.choice(attrs)
    if kind == "delete":
        keep = [a for a in node.attribute if a is not attr]
        del node.attribute[:]
        node.attribute.extend(keep)
        notes.append(f"{where}: attribute {attr.name} deleted")
        return kind
    if kind == "wrong_type":
        value, attr_type = _wrong_type(attr, rnd)
        _set_attr(node, attr.name, value, attr_type)
        notes.append(f"{where}: {attr.name} as {A.AttributeType.Name(attr_type)} {_short(value)}")
        return kind
    if kind == "type_field":
        others = [t for t in (A.INT, A.INTS, A.FLOAT, A.STRING, A.TENSOR) if t != attr.type]
        attr.type = rnd.choice(others)
        notes.append(f"{where}: {attr.name}'s type field says {A.AttributeType.Name(attr.type)}")
        return kind
    # a new value of the same type (kind "value" or "duplicate")
    if attr.type == A.INTS:
        value, how = _fuzz_ints(list(attr.ints), attr.name, rnd)
        new = helper.make_attribute(attr.name, value, attr_type=A.INTS)
    elif attr.type == A.INT:
        value, how = _fuzz_int(attr.i, rnd)
        new = helper.make_attribute(attr.name, value, attr_type=A.INT)
    elif attr.type == A.FLOAT:
        value, how = _fuzz_float(attr.f, rnd)
        new = helper.make_attribute(attr.name, value, attr_type=A.FLOAT)
    elif attr.type == A.STRING:
        value, how = _fuzz_string(attr.s, attr.name, rnd)
        new = helper.make_attribute(attr.name, value, attr_type=A.STRING)
    elif attr.type == A.TENSOR:
        arr = numpy_helper.to_array(attr.t)
        how = rnd.choice(["dtype", "shape", "values"])
        if how == "dtype":
            arr = arr.astype(rnd.choice([np.int64, np.float64, np.float16, np.bool_, np.int8]))
        elif how == "shape":
            arr = np.repeat(arr.reshape(-1), 3).reshape(3, -1) if arr.size else np.zeros((2, 2), arr.dtype)
        else:
            with np.errstate(invalid="ignore", over="ignore"):
                arr = np.full(arr.shape, rnd.choice([np.nan, np.inf, -1e30, 0])).astype(arr.dtype)
        value = arr
        new = helper.make_attribute(attr.name, numpy_helper.from_array(arr, attr.t.name or "t"))
    else:
        value, how = _wrong_type(attr, rnd)
        new = helper.make_attribute(attr.name, value, attr_type=how)
        how = "wrong_type"
    if kind == "duplicate":
        node.attribute.append(new)
        notes.append(f"{where}: {attr.name} listed twice, second {_short(value)}")
    else:
        attr.CopyFrom(new)
        notes.append(f"{where}: {attr.name}={_short(value)} ({how})")
    return kind


# --- tensor values (initializers, Constant nodes, spliced op operands) ----------------------------


def _constant_slots(model) -> list[tuple[str, int]]:
    """("init", index) for each initializer, ("const", node index) for each Constant node with a
    ``value`` tensor."""
    slots = [("init", i) for i in range(len(model.graph.initializer))]
    for i, node in enumerate(model.graph.node):
        if node.op_type == "Constant" and _attr(node, "value") is not None:
            slots.append(("const", i))
    return slots


def _slot_tensor(model, slot):
    kind, i = slot
    return model.graph.initializer[i] if kind == "init" else _attr(model.graph.node[i], "value").t


def _slot_name(model, slot) -> str:
    kind, i = slot
    return model.graph.initializer[i].name if kind == "init" else model.graph.node[i].output[0]


def _fuzz_array(arr: np.ndarray, rnd: random.Random) -> tuple[np.ndarray, str]:
    """Extreme values of the same dtype, or (for integer shape/index operands) huge, negative,
    zero or wrong-length values."""
    if arr.dtype.kind in "iu":
        kind = rnd.choice(["huge", "negative", "zero", "longer", "shorter", "minus_ones", "float", "empty"])
        v = arr.reshape(-1).astype(np.int64).copy()
        if kind == "huge" and v.size:
            v[rnd.randrange(v.size)] = rnd.choice(_HUGE)
        elif kind == "negative" and v.size:
            v[rnd.randrange(v.size)] = rnd.choice([-1, -2, -7, -(2**40)])
        elif kind == "zero" and v.size:
            v[rnd.randrange(v.size)] = 0
        elif kind == "longer":
            v = np.concatenate([v, v[:1] if v.size else [1]])
        elif kind == "shorter":
            v = v[:-1]
        elif kind == "minus_ones":
            v[:] = -1
        elif kind == "float":
            return arr.astype(np.float32) + 0.5, kind
        elif kind == "empty":
            v = v[:0]
        out = v.astype(arr.dtype)
        return (out.reshape(arr.shape) if out.size == arr.size else out), kind
    if arr.dtype.kind == "b":
        return ~arr, "flipped"
    if arr.dtype.kind not in "fc":
        return arr, "unchanged"
    kind = rnd.choice(["nan", "inf", "huge", "zero", "negative", "tiny", "longer", "int"])
    v = arr.astype(arr.dtype, copy=True)
    flat = v.reshape(-1)
    if kind == "longer":
        return np.concatenate([flat, flat[:1] if flat.size else np.ones(1, arr.dtype)]), kind
    if kind == "int":
        return np.round(arr).astype(np.int64), kind
    if flat.size:
        n = max(1, flat.size // rnd.choice([1, 4, 100]))
        idx = [rnd.randrange(flat.size) for _ in range(min(n, 64))] if n < flat.size else slice(None)
        flat[idx] = {
            "nan": np.nan,
            "inf": np.inf,
            "huge": 1e30 if arr.dtype.itemsize >= 4 else 6e4,
            "zero": 0,
            "negative": -abs(float(flat.reshape(-1)[0]) or 1) * 1e4,
            "tiny": 1e-40,
        }[kind]
    return v, kind


def mutate_tensor(model, slot, rnd: random.Random, notes: list, kinds: dict | None = None) -> str:
    """Damage one initializer or Constant value in place (or delete/rename/duplicate it); returns
    the kind of mutation."""
    import onnx
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    tensor = _slot_tensor(model, slot)
    name = _slot_name(model, slot)
    is_init = slot[0] == "init"
    kinds = kinds or {
        "delete": 2,
        "retype": 2,
        "dims_mismatch": 2,
        "negative_dim": 1.5,
        "zero_dim": 1,
        "duplicate": 2 if is_init else 0,
        "rename": 1,
        "external_missing": 1,
        "truncate_data": 1,
        "no_data": 1,
        "values": 3,
        "typed_field": 1,
        "raw_and_typed": 0.5,
        "default_input": 1 if is_init else 0,
        "as_input": 0.5 if is_init else 0,
        "sparse": 0.5 if is_init else 0,
        "string": 0.5,
    }
    kind = _pick(rnd, kinds)
    where = f"{'initializer' if is_init else 'Constant'} {name!r} {list(tensor.dims)}"
    if kind == "delete":
        if is_init:
            del graph.initializer[slot[1]]
        else:
            del graph.node[slot[1]]
        notes.append(f"{where} deleted")
    elif kind == "retype":
        old = tensor.data_type
        tensor.data_type = rnd.choice(
            [
                t
                for t in (
                    TensorProto.INT64,
                    TensorProto.DOUBLE,
                    TensorProto.FLOAT16,
                    TensorProto.INT8,
                    TensorProto.UINT8,
                    TensorProto.INT32,
                    TensorProto.BOOL,
                    TensorProto.STRING,
                    TensorProto.FLOAT,
                    0,
                    99,
                )
                if t != old
            ]
        )
        notes.append(f"{where}: data_type {old} -> {tensor.data_type}, data unchanged")
    elif kind in ("dims_mismatch", "negative_dim", "zero_dim"):
        dims = list(tensor.dims)
        if kind == "dims_mismatch":
            how = rnd.choice(["append", "drop", "bump", "scalar", "double"])
            if how == "append":
                dims.append(2)
            elif how == "drop" and dims:
                dims.pop()
            elif how == "bump" and dims:
                dims[rnd.randrange(len(dims))] += 1
            elif how == "double" and dims:
                dims[0] *= 2
            else:
                dims = []
        elif dims:
            i = rnd.randrange(len(dims))
            dims[i] = 0 if kind == "zero_dim" else -(dims[i] or 1)
        else:
            dims = [0 if kind == "zero_dim" else -1]
        del tensor.dims[:]
        tensor.dims.extend(dims)
        notes.append(f"{where}: dims -> {dims}, data unchanged")
    elif kind == "duplicate":
        arr = numpy_helper.to_array(tensor)
        other = numpy_helper.from_array(
            (arr * -1 + 1).astype(arr.dtype) if arr.dtype.kind != "b" else ~arr, name
        )
        first = rnd.random() < 0.5
        if first:
            graph.initializer.insert(0, other)
        else:
            graph.initializer.append(other)
        notes.append(f"{where} listed twice, the {'first' if first else 'last'} copy with other values")
    elif kind == "rename":
        new = name + "_renamed"
        if is_init:
            tensor.name = new
        else:
            graph.node[slot[1]].output[0] = new
        notes.append(f"{where} renamed to {new!r}; its readers now dangle")
    elif kind == "external_missing":
        location = rnd.choice(
            ["fz_missing.bin", "sub/fz_missing.bin", "../fz_missing.bin", "/nonexistent/fz.bin", ""]
        )
        tensor.ClearField("raw_data")
        for field in ("float_data", "int64_data", "int32_data", "double_data"):
            tensor.ClearField(field)
        tensor.data_location = TensorProto.EXTERNAL
        del tensor.external_data[:]
        for key, value in (
            ("location", location),
            ("offset", "0"),
            ("length", str(4 * max(1, math.prod(tensor.dims)))),
        ):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        notes.append(f"{where}: external data in missing file {location!r}")
    elif kind == "truncate_data":
        if tensor.raw_data:
            cut = rnd.randint(1, min(len(tensor.raw_data), 64))
            tensor.raw_data = tensor.raw_data[:-cut]
            notes.append(f"{where}: raw_data {cut} bytes short")
        else:
            for field in ("float_data", "int64_data", "int32_data", "double_data"):
                data = getattr(tensor, field)
                if len(data):
                    del data[-1]
            notes.append(f"{where}: typed data one value short")
    elif kind == "no_data":
        for field in ("raw_data", "float_data", "int64_data", "int32_data", "double_data"):
            tensor.ClearField(field)
        notes.append(f"{where}: no data")
    elif kind == "values":
        arr = numpy_helper.to_array(tensor)
        new, how = _fuzz_array(arr, rnd)
        tensor.CopyFrom(numpy_helper.from_array(new, tensor.name))
        notes.append(f"{where}: values {how} -> {_short(new.reshape(-1)[:6].tolist())} {list(new.shape)}")
    elif kind == "typed_field":
        arr = numpy_helper.to_array(tensor)
        if arr.dtype == np.float32:
            tensor.ClearField("raw_data")
            tensor.float_data[:] = arr.reshape(-1).tolist()
            notes.append(f"{where}: data moved from raw_data to float_data (valid)")
        elif arr.dtype == np.int64:
            tensor.ClearField("raw_data")
            tensor.int64_data[:] = arr.reshape(-1).tolist()
            notes.append(f"{where}: data moved from raw_data to int64_data (valid)")
        else:
            notes.append(f"{where}: unchanged (dtype {arr.dtype})")
    elif kind == "raw_and_typed":
        tensor.float_data.extend([1.0, 2.0])
        notes.append(f"{where}: float_data set besides raw_data")
    elif kind == "default_input":
        graph.input.append(onnx.helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims)))
        notes.append(f"{where}: also a graph input (a default value, valid since IR 4)")
    elif kind == "as_input":
        graph.input.append(onnx.helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims)))
        del graph.initializer[slot[1]]
        notes.append(f"{where}: now a graph input, fed random values (valid)")
    elif kind == "sparse":
        arr = numpy_helper.to_array(tensor).reshape(-1)
        idx = np.flatnonzero(arr)
        values = numpy_helper.from_array(arr[idx], name)
        indices = numpy_helper.from_array(idx.astype(np.int64), name + "_idx")
        sparse = onnx.helper.make_sparse_tensor(values, indices, list(tensor.dims))
        graph.sparse_initializer.append(sparse)
        del graph.initializer[slot[1]]
        notes.append(f"{where}: moved to sparse_initializer (valid)")
    elif kind == "string":
        for field in ("raw_data", "float_data", "int64_data", "int32_data", "double_data"):
            tensor.ClearField(field)
        tensor.data_type = TensorProto.STRING
        tensor.string_data[:] = [b"a"] * max(1, math.prod(tensor.dims))
        notes.append(f"{where}: a string tensor")
    return kind


# --- families --------------------------------------------------------------------------------------


def _serialize(model) -> bytes:
    return model.SerializeToString()


def _model_case(family, seed, base, model, notes, nrng, mutation) -> Case:
    feeds = feeds_for(model, base_feeds(base, nrng), nrng)
    return Case(
        family, seed, base, f"{family}/{mutation}", "; ".join(notes), model=_serialize(model), feeds=feeds
    )


def _bytes_case(rnd, nrng, seed) -> Case:
    base = _pick(rnd, _BASE_WEIGHTS["bytes"])
    data = bytearray(base_bytes(base))
    size = len(data)

    def pos() -> int:
        where = rnd.random()
        if where < 0.35:
            return rnd.randrange(min(size, 4096))
        if where < 0.65:
            return size - 1 - rnd.randrange(min(size, 4096))
        return rnd.randrange(size)

    kind = _pick(
        rnd,
        {
            "truncate": 3,
            "flip": 4,
            "splice": 2,
            "overwrite": 2,
            "delete": 2,
            "duplicate": 1,
            "varint": 1,
            "empty": 0.3,
            "prefix": 0.5,
            "append": 0.7,
            "foreign": 0.5,
            "length_bomb": 0.5,
        },
    )
    if kind == "truncate":
        cut = pos()
        data = data[:cut]
        detail = f"truncated to {cut} of {size} bytes"
    elif kind == "flip":
        spots = sorted(pos() for _ in range(rnd.randint(1, 8)))
        for p in spots:
            data[p] ^= 1 << rnd.randrange(8) if rnd.random() < 0.6 else rnd.randrange(1, 256)
        detail = f"bytes changed at {spots}"
    elif kind == "splice":
        p, junk = pos(), bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
        data[p:p] = junk
        detail = f"{len(junk)} random bytes inserted at {p}"
    elif kind == "overwrite":
        p, n = pos(), rnd.randint(1, 32)
        data[p : p + n] = bytes(rnd.choice([0, 0xFF, rnd.randrange(256)]) for _ in range(n))[
            : max(0, size - p)
        ]
        detail = f"{n} bytes overwritten at {p}"
    elif kind == "delete":
        p, n = pos(), rnd.randint(1, 64)
        del data[p : p + n]
        detail = f"{n} bytes cut at {p}"
    elif kind == "duplicate":
        p, n, q = pos(), rnd.randint(1, 256), pos()
        data[q:q] = data[p : p + n]
        detail = f"bytes {p}..{p + n} copied to {q}"
    elif kind == "varint":
        spots = sorted(pos() for _ in range(rnd.randint(1, 4)))
        for p in spots:
            data[p] = 0xFF
        detail = f"0xFF (a varint that never ends) at {spots}"
    elif kind == "empty":
        data = bytearray()
        detail = "an empty file"
    elif kind == "prefix":
        junk = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        data[0:0] = junk
        detail = f"{len(junk)} random bytes prepended"
    elif kind == "append":
        junk = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
        data.extend(junk)
        detail = f"{len(junk)} random bytes appended"
    elif kind == "foreign":
        data = bytearray(
            rnd.choice(
                [
                    b"PK\x03\x04" + bytes(60),
                    b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}",
                    b'{"format": "onnx"}\n',
                    b'ir_version: 7\ngraph { node { op_type: "Relu" } }',
                    b"\x08\x07" * 100,
                ]
            )
        )
        detail = "another format's bytes"
    else:  # length_bomb: a graph field whose length prefix says 4 GiB
        p = 0 if rnd.random() < 0.5 else size
        data[p:p] = b"\x3a\xff\xff\xff\xff\x0f"
        detail = f"a 4 GiB length prefix at {p}"
    feeds = base_feeds(base, nrng)
    try:
        import onnx

        parsed = onnx.load_from_string(bytes(data))
        feeds = feeds_for(parsed, feeds, nrng)
    except Exception:  # unreadable: the base feeds
        pass
    return Case("bytes", seed, base, f"bytes/{kind}", detail, model=bytes(data), feeds=feeds)


def _attributes_case(rnd, nrng, seed) -> Case:
    base = _pick(rnd, _BASE_WEIGHTS["attributes"])
    model = base_model(base)
    notes = []
    if base == "cnn" and rnd.random() < 0.55:
        node, consts = splice(model, rnd, nrng, notes)
        if consts and (not node.attribute or rnd.random() < 0.35):
            name = rnd.choice(consts)
            slot = ("init", [t.name for t in model.graph.initializer].index(name))
            mutate_tensor(model, slot, rnd, notes, kinds={"values": 1})
            return _model_case("attributes", seed, base, model, notes, nrng, f"operand:{node.op_type}")
    else:
        nodes = [n for n in model.graph.node if n.op_type != "Constant"]
        with_attrs = [n for n in nodes if n.attribute]
        node = rnd.choice(with_attrs if with_attrs and rnd.random() < 0.9 else nodes)
    kind = mutate_attribute(node, rnd, notes)
    mutation = f"{node.op_type}:{kind}"
    for _ in range(_count(rnd) - 1):  # more attributes of any node
        nodes = [n for n in model.graph.node if n.op_type != "Constant" and n.attribute] or [node]
        other = rnd.choice(nodes)
        mutation += f"+{other.op_type}:{mutate_attribute(other, rnd, notes)}"
    return _model_case("attributes", seed, base, model, notes, nrng, mutation)


def _initializers_case(rnd, nrng, seed) -> Case:
    base = _pick(rnd, _BASE_WEIGHTS["initializers"])
    model = base_model(base)
    notes = []
    if base == "cnn" and rnd.random() < 0.3:
        splice(model, rnd, nrng, notes)
    slots = _constant_slots(model)
    if base in ("cls", "det", "silero") and rnd.random() < 0.5:  # prefer small (shape-like) constants
        small = [s for s in slots if math.prod(_slot_tensor(model, s).dims) <= 8]
        slots = small or slots
    kinds = []
    for slot in sorted(rnd.sample(slots, min(len(slots), _count(rnd))), key=lambda s: (s[0], -s[1])):
        kinds.append(
            mutate_tensor(model, slot, rnd, notes)
        )  # last index first: deletions keep the rest valid
    return _model_case("initializers", seed, base, model, notes, nrng, "+".join(kinds))


def _structure_case(rnd, nrng, seed) -> Case:
    base = _pick(rnd, _BASE_WEIGHTS["structure"])
    model = base_model(base)
    notes = []
    kinds = [mutate_structure(model, base, rnd, nrng, notes) for _ in range(_count(rnd))]
    return _model_case("structure", seed, base, model, notes, nrng, "+".join(kinds))


def _count(rnd: random.Random) -> int:
    """How many mutations a case stacks: mostly one."""
    return rnd.choices([1, 2, 3], weights=[0.75, 0.18, 0.07])[0]


def mutate_structure(model, base: str, rnd: random.Random, nrng: np.random.Generator, notes: list) -> str:
    """One change to the graph's structure (tensors, node order, producers, inputs and outputs,
    opsets, IR version); returns its kind."""
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    if not len(graph.node):
        graph.output.append(helper.make_tensor_value_info("fz_ghost", TensorProto.FLOAT, [1]))
        notes.append("graph output 'fz_ghost' that nobody writes (the graph has no nodes)")
        return "ghost_output"
    kind = _pick(
        rnd,
        {
            "dangling_input": 2,
            "rename_output": 2,
            "cycle": 2,
            "self_loop": 0.5,
            "shuffle": 3,
            "reverse": 1,
            "duplicate_producer": 2,
            "ghost_output": 1.5,
            "rename_graph_output": 1,
            "no_outputs": 0.5,
            "opset": 2,
            "ir_version": 1.5,
            "remove_node": 2,
            "duplicate_node": 1,
            "empty_input": 1.5,
            "unknown_op": 1,
            "unknown_domain": 1,
            "drop_graph_input": 1,
            "input_type": 1,
            "input_shape": 1.5,
            "output_decl": 1,
            "extra_node_input": 1,
            "drop_node_input": 1,
            "no_node_outputs": 0.5,
            "swap_inputs": 1,
            "unused_input": 0.5,
            "passthrough": 0.5,
            "duplicate_graph_output": 0.5,
            "value_info": 1,
            "splice": 2 if base == "cnn" else 0,
            "node_names": 0.5,
            "empty_graph": 0.3,
        },
    )
    nodes = list(graph.node)
    compute = [i for i, n in enumerate(nodes) if n.op_type != "Constant"] or list(range(len(nodes)))
    producers = _producers(graph)
    i = rnd.choice(compute)
    node = graph.node[i]
    where = f"{node.op_type} {node.name or node.output[0]!r}"
    if kind == "dangling_input":
        k = rnd.randrange(len(node.input))
        node.input[k] = "fz_nobody_writes_this"
        notes.append(f"{where}: input {k} reads a tensor nobody writes")
    elif kind == "rename_output":
        old = node.output[0]
        node.output[0] = old + "_renamed"
        notes.append(f"{where}: output {old!r} renamed; readers dangle")
    elif kind in ("cycle", "self_loop"):
        later = [j for j in compute if j >= i] if kind == "cycle" else [i]
        j = rnd.choice(later)
        k = rnd.randrange(len(node.input))
        node.input[k] = graph.node[j].output[0]
        notes.append(f"{where}: input {k} := output of node {j} ({graph.node[j].op_type}): a cycle")
    elif kind == "shuffle":
        order = list(range(len(nodes)))
        rnd.shuffle(order)
        del graph.node[:]
        graph.node.extend(nodes[j] for j in order)
        notes.append("nodes shuffled out of topological order (valid: onnxruntime sorts)")
    elif kind == "reverse":
        del graph.node[:]
        graph.node.extend(reversed(nodes))
        notes.append("nodes in reverse order (valid: onnxruntime sorts)")
    elif kind == "duplicate_producer":
        j = rnd.choice([j for j in compute if j != i] or [i])
        node.output[0] = graph.node[j].output[0]
        notes.append(
            f"{where} now writes {graph.node[j].output[0]!r}, as node {j} ({graph.node[j].op_type}) does"
        )
    elif kind == "ghost_output":
        graph.output.append(helper.make_tensor_value_info("fz_ghost", TensorProto.FLOAT, [1]))
        notes.append("graph output 'fz_ghost' that nobody writes")
    elif kind == "rename_graph_output":
        out = rnd.choice(list(graph.output))
        notes.append(f"graph output {out.name!r} renamed to 'fz_nobody'")
        out.name = "fz_nobody"
    elif kind == "no_outputs":
        del graph.output[:]
        notes.append("no graph outputs")
    elif kind == "opset":
        version = rnd.choice([0, 1, 5, 6, 7, 9, 10, 14, 17, 21, 22, 23, 24, 25, 100, -1, 2**31])
        how = rnd.choice(["set", "set", "set", "remove", "duplicate", "foreign"])
        entries = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
        if how == "remove":
            keep = [o for o in model.opset_import if o.domain not in ("", "ai.onnx")]
            del model.opset_import[:]
            model.opset_import.extend(keep)
            notes.append("no default-domain opset import")
        elif how == "duplicate":
            model.opset_import.append(helper.make_opsetid("", version))
            notes.append(f"default domain imported twice, second at {version}")
        elif how == "foreign":
            model.opset_import.append(helper.make_opsetid("com.fuzz.bogus", 1))
            node.domain = "com.fuzz.bogus"
            notes.append(f"{where} in domain com.fuzz.bogus (imported at 1)")
        else:
            for o in entries:
                o.version = version
            notes.append(f"default opset {version}")
    elif kind == "ir_version":
        model.ir_version = rnd.choice([0, 1, 2, 3, 4, 11, 12, 13, 99, -1, 2**40])
        notes.append(f"ir_version {model.ir_version}")
    elif kind == "remove_node":
        del graph.node[i]
        notes.append(f"{where} removed")
    elif kind == "duplicate_node":
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        graph.node.insert(i + 1, copy)
        notes.append(f"{where} twice (two producers)")
    elif kind == "empty_input":
        k = rnd.randrange(len(node.input))
        node.input[k] = ""
        notes.append(f"{where}: input {k} omitted ('')")
    elif kind == "unknown_op":
        old = node.op_type
        node.op_type = rnd.choice(["FuzzBogus", old.lower(), old + " ", old.upper(), ""])
        notes.append(f"{where}: op_type {node.op_type!r}")
    elif kind == "unknown_domain":
        node.domain = rnd.choice(["com.fuzz.unknown", "ai.onnx.ml", "com.microsoft"])
        notes.append(f"{where}: domain {node.domain!r} (not imported)")
    elif kind == "drop_graph_input":
        inits = _initializer_names(graph)
        real = [k for k, vi in enumerate(graph.input) if vi.name not in inits]
        k = rnd.choice(real)
        notes.append(f"graph input {graph.input[k].name!r} removed from the input list")
        del graph.input[k]
    elif kind == "input_type":
        vi = rnd.choice(list(graph.input))
        vi.type.tensor_type.elem_type = rnd.choice(
            [
                TensorProto.INT64,
                TensorProto.DOUBLE,
                TensorProto.FLOAT16,
                TensorProto.UINT8,
                TensorProto.STRING,
                TensorProto.BOOL,
                0,
                99,
            ]
        )
        notes.append(f"graph input {vi.name!r} declared as elem_type {vi.type.tensor_type.elem_type}")
    elif kind == "input_shape":
        vi = rnd.choice(list(graph.input))
        dims = vi.type.tensor_type.shape.dim
        how = rnd.choice(["add", "drop", "wrong", "zero", "negative", "symbolic", "none"])
        if how == "add":
            dims.add().dim_value = 1
        elif how == "drop" and len(dims):
            del dims[len(dims) - 1]
        elif how == "none":
            vi.type.tensor_type.ClearField("shape")
        elif len(dims):
            d = dims[rnd.randrange(len(dims))]
            if how == "symbolic":
                d.dim_param = "fz_sym"
            else:
                d.dim_value = {"wrong": 3, "zero": 0, "negative": -2}[how]
        notes.append(f"graph input {vi.name!r} declared shape: {how}")
    elif kind == "output_decl":
        vi = rnd.choice(list(graph.output))
        dims = vi.type.tensor_type.shape.dim
        how = rnd.choice(["add", "wrong", "type"])
        if how == "add":
            dims.add().dim_value = 7
        elif how == "wrong" and len(dims):
            dims[len(dims) - 1].dim_value = 11
        else:
            vi.type.tensor_type.elem_type = TensorProto.INT64
        notes.append(f"graph output {vi.name!r} declared wrongly: {how}")
    elif kind == "extra_node_input":
        node.input.append(rnd.choice([node.input[0], "fz_nobody", ""]))
        notes.append(f"{where}: an extra input {node.input[len(node.input) - 1]!r}")
    elif kind == "drop_node_input":
        k = len(node.input) - 1
        notes.append(f"{where}: last input {node.input[k]!r} dropped")
        del node.input[k]
    elif kind == "no_node_outputs":
        del node.output[:]
        notes.append(f"{where}: no outputs")
    elif kind == "swap_inputs":
        if len(node.input) >= 2:
            a, b = rnd.sample(range(len(node.input)), 2)
            node.input[a], node.input[b] = node.input[b], node.input[a]
            notes.append(f"{where}: inputs {a} and {b} swapped")
        else:
            node.input.append(node.input[0])
            notes.append(f"{where}: input repeated")
    elif kind == "unused_input":
        graph.input.append(helper.make_tensor_value_info("fz_unused", TensorProto.FLOAT, [2, 3]))
        notes.append("an extra graph input nobody reads (valid)")
    elif kind == "passthrough":
        graph.output.append(onnx.ValueInfoProto())
        graph.output[len(graph.output) - 1].CopyFrom(graph.input[0])
        notes.append(f"graph input {graph.input[0].name!r} is also a graph output (valid)")
    elif kind == "duplicate_graph_output":
        graph.output.append(onnx.ValueInfoProto())
        graph.output[len(graph.output) - 1].CopyFrom(graph.output[0])
        notes.append(f"graph output {graph.output[0].name!r} listed twice")
    elif kind == "value_info":
        target = node.output[0]
        graph.value_info.append(
            helper.make_tensor_value_info(
                target,
                rnd.choice([TensorProto.FLOAT, TensorProto.INT64]),
                rnd.choice([[1], [5, 5, 5, 5, 5], [0, 3]]),
            )
        )
        notes.append(f"value_info for {target!r} with a wrong type or shape")
    elif kind == "splice":
        splice(model, rnd, nrng, notes)
    elif kind == "node_names":
        for n in graph.node:
            n.name = rnd.choice(["", "same"])
        notes.append("node names empty or all alike")
    elif kind == "empty_graph":
        del graph.node[:]
        notes.append("no nodes at all")
    del producers
    return kind


def _spliced_model(base: str, rnd: random.Random, nrng: np.random.Generator, notes: list) -> bytes | None:
    """Sometimes (CNN only) the model with a valid op spliced in, so that odd feeds and calibration
    sets reach more ops; else None (the base model)."""
    if base != "cnn" or rnd.random() >= 0.35:
        return None
    model = base_model(base)
    splice(model, rnd, nrng, notes)
    return _serialize(model)


def _feeds_case(rnd, nrng, seed) -> Case:
    base = _pick(rnd, _BASE_WEIGHTS["feeds"])
    notes = []
    model = _spliced_model(base, rnd, nrng, notes)
    feeds = base_feeds(base, nrng)
    name = rnd.choice(sorted(feeds))
    x = feeds[name]
    kind = _pick(
        rnd,
        {
            "dtype": 3,
            "rank_plus": 1.5,
            "rank_minus": 1.5,
            "shape": 2,
            "batch0": 2,
            "zero_dim": 1,
            "big_batch": 0.5,
            "nan": 1.5,
            "inf": 1,
            "huge": 1,
            "tiny": 0.5,
            "missing": 1,
            "extra": 1,
            "renamed": 1,
            "non_dict": 2,
            "none_value": 0.5,
            "list_value": 1,
            "scalar": 0.5,
            "strided": 1,
            "readonly": 0.3,
            "int_key": 0.3,
            "masked": 0.3,
            "valid": 1,
        },
    )
    detail = ""
    if kind == "dtype":
        dtype = rnd.choice(
            [np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex64, object, "U3"]
        )
        feeds[name] = x.astype(dtype)
        detail = f"{name} as {np.dtype(dtype).name}"
    elif kind == "rank_plus":
        feeds[name] = x[None] if rnd.random() < 0.5 else x[..., None]
        detail = f"{name} {x.shape} -> {feeds[name].shape}"
    elif kind == "rank_minus":
        feeds[name] = x[0] if rnd.random() < 0.5 else x.reshape(-1)
        detail = f"{name} {x.shape} -> {feeds[name].shape}"
    elif kind == "shape":
        shape = list(x.shape)
        k = rnd.randrange(len(shape))
        shape[k] = max(1, shape[k] + rnd.choice([-5, -1, 1, 3]))
        if tuple(shape) == x.shape:
            shape[k] += 1
        if base == "det" and rnd.random() < 0.5:
            shape = [1, 3, rnd.choice([33, 40, 47, 64]), rnd.choice([31, 32, 45, 96])]
        feeds[name] = nrng.uniform(-1, 1, shape).astype(x.dtype)
        detail = f"{name} {x.shape} -> {tuple(shape)}"
    elif kind == "batch0":
        if base == "silero" and name != "input":
            name = "input"
        feeds[name] = feeds[name][:0]
        detail = f"{name} with batch 0: {feeds[name].shape}"
    elif kind == "zero_dim":
        shape = list(x.shape)
        shape[-1] = 0
        feeds[name] = np.zeros(shape, x.dtype)
        detail = f"{name} {tuple(shape)}"
    elif kind == "big_batch":
        if base in ("cnn", "silero") and name in ("image", "input"):
            feeds[name] = np.repeat(x, 16, axis=0)
        detail = f"{name} {feeds[name].shape} (valid)"
    elif kind in ("nan", "inf", "huge", "tiny"):
        v = x.copy()
        value = {
            "nan": np.nan,
            "inf": rnd.choice([np.inf, -np.inf]),
            "huge": rnd.choice([3.4e38, -3.4e38, 1e30]),
            "tiny": 1e-44,
        }[kind]
        if rnd.random() < 0.3:
            v[...] = value
            detail = f"{name} all {value}"
        else:
            flat = v.reshape(-1)
            idx = [rnd.randrange(flat.size) for _ in range(rnd.randint(1, 5))]
            flat[idx] = value
            detail = f"{name}: {len(idx)} values {value}"
        feeds[name] = v
    elif kind == "missing":
        del feeds[name]
        detail = f"{name} missing"
    elif kind == "extra":
        feeds["fz_extra"] = x.copy()
        detail = "an extra feed 'fz_extra'"
    elif kind == "renamed":
        feeds[name.upper() if name.upper() != name else name + "_"] = feeds.pop(name)
        detail = f"{name} under another name"
    elif kind == "non_dict":
        how = rnd.choice(["list", "tuple", "array", "none", "str", "int", "pairs"])
        feeds = {
            "list": list(feeds.values()),
            "tuple": tuple(feeds.values()),
            "array": x,
            "none": None,
            "str": name,
            "int": 42,
            "pairs": list(feeds.items()),
        }[how]
        detail = f"feeds as a {how}"
    elif kind == "none_value":
        feeds[name] = None
        detail = f"{name}: None"
    elif kind == "list_value":
        feeds[name] = x.tolist()
        detail = f"{name} as nested lists"
    elif kind == "scalar":
        feeds[name] = np.float32(1.5)
        detail = f"{name} a 0-d scalar"
    elif kind == "strided":
        feeds[name] = np.asfortranarray(x) if rnd.random() < 0.5 else np.repeat(x, 2, axis=-1)[..., ::2]
        detail = f"{name} non-contiguous (valid)"
    elif kind == "readonly":
        x.setflags(write=False)
        detail = f"{name} read-only (valid)"
    elif kind == "int_key":
        feeds[0] = feeds.pop(name)
        detail = f"{name} keyed by 0"
    elif kind == "masked":
        feeds[name] = np.ma.masked_array(x, mask=np.zeros(x.shape, bool))
        detail = f"{name} a masked array"
    else:
        detail = "valid feeds"
    detail = "; ".join([*notes, detail])
    return Case("feeds", seed, base, f"feeds/{kind}", detail, model=model, feeds=feeds)


def _calibration_case(rnd, nrng, seed) -> Case:
    base = _pick(rnd, _BASE_WEIGHTS["calibration"])
    notes = []
    model = _spliced_model(base, rnd, nrng, notes)
    calib = base_calibration(base, nrng)
    first_layer = {"cnn": "/conv1/conv/Conv"}.get(base)
    scheme = rnd.choice(["s8", "q8", "q16"])
    method = rnd.choice(["minmax", "percentile", "kl", "mse"]) if base != "cls" else "minmax"
    options = {"scheme": scheme, "method": method}
    kind = _pick(
        rnd,
        {
            "valid": 3,
            "empty_dict": 1,
            "empty_list": 1,
            "empty_arrays": 1,
            "empty_iter": 0.5,
            "generator": 0.5,
            "nan": 1.5,
            "inf": 1,
            "huge": 1,
            "zeros": 1,
            "wrong_shape": 1.5,
            "wrong_rank": 1,
            "wrong_name": 1,
            "extra_name": 0.5,
            "wrong_dtype": 1,
            "non_dict": 1.5,
            "bad_items": 1,
            "single": 0.5,
            "bad_option": 6,
            "unknown_keyword": 2,
        },
    )
    key = "image" if base == "cnn" else "x"
    detail = ""
    if kind == "valid":
        if rnd.random() < 0.5:
            options["per_channel"] = rnd.choice([True, False])
        if rnd.random() < 0.3:
            options["fold"] = rnd.choice([True, False])
        if rnd.random() < 0.3 and scheme != "s8":
            options["link_q"] = True
        if rnd.random() < 0.3:
            options["batch_size"] = rnd.choice([1, 3, 100])
        if rnd.random() < 0.3 and first_layer:
            options["layers"] = {first_layer: rnd.choice(["float", "s8", "q8", "q16"])}
        detail = "valid options"
    elif kind == "empty_dict":
        calib = {}
    elif kind == "empty_list":
        calib = []
    elif kind == "empty_arrays":
        calib = (
            {k: v[:0] for k, v in calib.items()}
            if isinstance(calib, dict)
            else [{k: (v[:0] if k == "input" else v) for k, v in f.items()} for f in calib]
        )
    elif kind == "empty_iter":
        calib = iter([])
    elif kind == "generator":
        items = (
            calib
            if isinstance(calib, list)
            else [{k: v[i : i + 1] for k, v in calib.items()} for i in range(2)]
        )
        calib = iter(items)
        detail = "an iterator of feed dicts (valid)"
    elif kind in ("nan", "inf", "huge", "zeros"):
        value = {"nan": np.nan, "inf": np.inf, "huge": 3e38, "zeros": 0.0}[kind]
        whole = rnd.random() < 0.4
        dicts = calib if isinstance(calib, list) else [calib]
        for feed in dicts:
            for k, v in feed.items():
                if k in ("h", "c") and rnd.random() < 0.5:
                    continue
                if whole or kind == "zeros":
                    v[...] = value
                else:
                    v.reshape(-1)[[rnd.randrange(v.size) for _ in range(3)]] = value
        detail = f"{'all' if whole or kind == 'zeros' else 'some'} values {value}"
    elif kind == "wrong_shape":
        if isinstance(calib, dict):
            v = calib[key]
            calib[key] = nrng.uniform(-1, 1, (v.shape[0], v.shape[1], v.shape[2] - 1, v.shape[3])).astype(
                np.float32
            )
        else:
            calib[0]["h"] = np.zeros((1, 2, 128), np.float32)
    elif kind == "wrong_rank":
        if isinstance(calib, dict):
            calib[key] = calib[key][:, 0]
        else:
            calib[0]["input"] = calib[0]["input"].reshape(-1)
    elif kind == "wrong_name":
        d = calib if isinstance(calib, dict) else calib[0]
        k = sorted(d)[0]
        d[k + "_x"] = d.pop(k)
    elif kind == "extra_name":
        d = calib if isinstance(calib, dict) else calib[0]
        d["fz_extra"] = np.zeros((2, 3), np.float32)
    elif kind == "wrong_dtype":
        d = calib if isinstance(calib, dict) else calib[0]
        k = sorted(d)[0]
        d[k] = d[k].astype(rnd.choice([np.int64, np.float64, np.complex64, object, "U3"]))
        detail = f"{k} as {d[k].dtype}"
    elif kind == "non_dict":
        calib = rnd.choice(
            [
                None,
                5,
                "image",
                np.zeros((2, 1, 28, 28), np.float32),
                [np.zeros((2, 1, 28, 28))],
                (1, 2),
                {"image": None},
                {"image": [[1, 2]]},
            ]
        )
        detail = f"calib = {_short(calib)}"
    elif kind == "bad_items":
        one = calib[0] if isinstance(calib, list) else {k: v[:1] for k, v in calib.items()}
        calib = [one, rnd.choice([None, 5, "x", [], {}])]
        detail = f"a list whose second item is {_short(calib[1])}"
    elif kind == "single":
        calib = calib[:1] if isinstance(calib, list) else {k: v[:1] for k, v in calib.items()}
        detail = "one sample (valid)"
    elif kind == "bad_option":
        name = rnd.choice(
            [
                "scheme",
                "method",
                "percentile",
                "kl_bins",
                "kl_levels",
                "mse_candidates",
                "batch_size",
                "per_channel",
                "fold",
                "link_q",
                "weight_method",
                "q16_headroom",
                "layers",
                "progress",
            ]
        )
        value = rnd.choice(
            {
                "scheme": ["s4", "S8", "", None, 8, "float"],
                "method": ["max", "KL", None, "", 3],
                "percentile": [150, -1, 0, math.nan, math.inf, "99", None],
                "kl_bins": [0, -5, 1, 2.5, 10**9, None, "128"],
                "kl_levels": [-1, 0, 1, 10**9, 2.5, "x"],
                "mse_candidates": [0, -1, 1.5, 10**9, None],
                "batch_size": [0, -1, 2.5, "2", 10**12, True],
                "per_channel": ["yes", None, 2, "false"],
                "fold": ["no", None, 0.5],
                "link_q": ["x", None, 3],
                "weight_method": ["bogus", None, "KL", 5],
                "q16_headroom": ["half", None, "", 7],
                "layers": [
                    {"fz_bogus": "s8"},
                    {first_layer or "fz": "s4"},
                    ["x"],
                    "all",
                    {first_layer or "fz": None},
                    5,
                ],
                "progress": ["yes", 2, None],
            }[name]
        )
        if name in ("percentile", "kl_bins", "kl_levels", "mse_candidates") and rnd.random() < 0.5:
            options["method"] = {"percentile": "percentile", "mse_candidates": "mse"}.get(name, "kl")
        options[name] = value
        detail = f"{name}={_short(value)}"
    else:  # unknown_keyword
        name = rnd.choice(
            [
                "equalize",
                "bias_correction",
                "percentil",
                "calib",
                "bins",
                "symmetric",
                "schemes",
                "channel_axis",
                "backend",
                "threshold",
                "seed",
            ]
        )
        options[name] = rnd.choice([True, 1, "x", None])
        detail = f"unknown keyword {name}={options[name]!r}"
    detail = f"{detail}; " if detail else ""
    detail += (
        f"quantize({scheme!r}, {options.get('method')!r}"
        + "".join(f", {k}={_short(v, 40)}" for k, v in options.items() if k not in ("scheme", "method"))
        + ")"
    )
    return Case(
        "calibration",
        seed,
        base,
        f"calibration/{kind}",
        "; ".join([*notes, detail]),
        model=model,
        feeds=base_feeds(base, nrng, batch=1),
        calib=calib,
        options=options,
    )


SELFTEST_PROBES = ("ok", "lwnn_error", "bare", "memory", "crash", "hang", "killed")
SELFTEST_EXPECTED = {
    "ok": "ok",
    "lwnn_error": "lwnn_error",
    "bare": "bare",
    "memory": "memory",
    "crash": "crash",
    "hang": "hang",
    "killed": "memory",
}


def _selftest_case(rnd, nrng, seed) -> Case:
    """Not a fuzz family: ``("selftest", k)`` does something whose outcome is known (the k-th of
    ``SELFTEST_PROBES``), to check the isolation and the classification themselves."""
    probe = SELFTEST_PROBES[seed % len(SELFTEST_PROBES)]
    return Case(
        "selftest", seed, "cnn", f"selftest/{probe}", f"a probe that ends as {SELFTEST_EXPECTED[probe]}"
    )


def _probe(probe: str):
    import lwnn

    if probe == "lwnn_error":
        raise lwnn.ShapeError("selftest probe")
    if probe == "bare":
        raise KeyError("selftest probe")
    if probe == "memory":
        return {"y": np.ones(1 << 42, np.uint8)}  # 4 TiB: past any RLIMIT_AS budget
    if probe == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if probe == "hang":
        time.sleep(3600)
    if probe == "killed":  # what the kernel's OOM killer does
        os.kill(os.getpid(), signal.SIGKILL)
    return {"y": np.zeros(1, np.float32)}


_BUILDERS = {
    "bytes": _bytes_case,
    "attributes": _attributes_case,
    "initializers": _initializers_case,
    "structure": _structure_case,
    "feeds": _feeds_case,
    "calibration": _calibration_case,
    "selftest": _selftest_case,
}


def make_case(family: str, seed: int) -> Case:
    """The case ``(family, seed)``: the same on every run."""
    if family not in _BUILDERS:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    rnd = random.Random(f"lwnn-fuzz/{family}/{seed}")
    nrng = np.random.default_rng([list(_BUILDERS).index(family), seed])
    return _BUILDERS[family](rnd, nrng, seed)


def plan(cases: int, seed: int = 0, families=FAMILIES) -> list[tuple[str, int]]:
    """``cases`` (family, case seed) pairs, families in turn."""
    families = tuple(families)
    return [(families[k % len(families)], seed * SEED_STRIDE + k // len(families)) for k in range(cases)]


# --- running one case (in the child) --------------------------------------------------------------

_TMP_ROOT: str | None = None  # where cases write their model files (a zygote sets it)


@functools.cache
def _lwnn_dir() -> Path:
    import lwnn

    return Path(lwnn.__file__).resolve().parent


def place_of(err: BaseException) -> str:
    """``lwnn/<file>:<line> (<function>)`` of the innermost lwnn frame of ``err``'s traceback."""
    frames = traceback.extract_tb(err.__traceback__)
    root = _lwnn_dir()
    for frame in reversed(frames):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(root):
            return f"lwnn/{path.relative_to(root)}:{frame.lineno} ({frame.name})"
    if frames:
        return f"{Path(frames[-1].filename).name}:{frames[-1].lineno} ({frames[-1].name}) [outside lwnn]"
    return "?"


def _raised_in(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    return f"{f.filename}:{f.lineno} ({f.name})"


def _first_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classify_error(err: BaseException) -> dict:
    import lwnn

    info = {"error_type": type(err).__name__, "message": _first_line(err)}
    if isinstance(err, lwnn.LwnnError):
        info["outcome"] = "lwnn_error"
    elif isinstance(err, MemoryError):
        info.update(outcome="memory", place=place_of(err), raised_in=_raised_in(err))
    else:
        info.update(outcome="bare", place=place_of(err), raised_in=_raised_in(err))
    return info


def _shapes(outputs) -> dict:
    if not isinstance(outputs, dict):
        return {"<not a dict>": type(outputs).__name__}
    return {
        str(k): [list(np.shape(v)), str(getattr(v, "dtype", type(v).__name__))] for k, v in outputs.items()
    }


def declared_outputs(model_bytes: bytes):
    """{name: (numpy dtype or None, dims or None)} of the model's declared graph outputs (a dim is
    None where symbolic); None when the bytes do not parse."""
    import onnx

    try:
        model = onnx.load_from_string(model_bytes)
    except Exception:
        return None
    out = {}
    for vi in model.graph.output:
        tt = vi.type.tensor_type
        dtype = _np_dtype(tt.elem_type) if vi.type.HasField("tensor_type") else None
        dims = (
            [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if tt.HasField("shape")
            else None
        )
        out[vi.name] = (dtype, dims)
    return out


def contradiction(declared: dict, outputs) -> str | None:
    """How lwnn's outputs contradict the declared outputs (names, dtypes, ranks, static dims)."""
    if not isinstance(outputs, dict):
        return f"outputs are a {type(outputs).__name__}, not a dict"
    if list(outputs) != list(declared) and set(outputs) != set(declared):
        return f"output names {sorted(outputs)} but the model declares {sorted(declared)}"
    for name, (dtype, dims) in declared.items():
        value = np.asarray(outputs[name])
        if dtype is not None and value.dtype != dtype:
            return f"{name}: dtype {value.dtype} but declared {dtype}"
        if dims is None:
            continue
        if value.ndim != len(dims):
            return f"{name}: shape {value.shape} but declared rank {len(dims)} {dims}"
        for got, want in zip(value.shape, dims):
            if want is not None and want > 0 and got != want:
                return f"{name}: shape {value.shape} but declared {dims}"
    return None


def compare_outputs(lwnn_out, names: list[str], ort_out: list) -> tuple[str, str] | None:
    """None when lwnn's outputs agree with onnxruntime's, else (kind, how they differ); kind is
    ``names``, ``shape``, ``dtype``, ``values`` or ``nonfinite`` (every differing element is NaN or
    infinite on one side: NaN propagation through max/min/ReLU is not specified by ONNX, and
    NumPy and onnxruntime's kernels differ in it)."""
    if not isinstance(lwnn_out, dict):
        return "names", f"lwnn returned a {type(lwnn_out).__name__}"
    if set(lwnn_out) != set(names):
        return "names", f"output names {sorted(lwnn_out)} vs onnxruntime {sorted(names)}"
    for name, ref in zip(names, ort_out):
        got = np.asarray(lwnn_out[name])
        ref = np.asarray(ref)
        if got.shape != ref.shape:
            return "shape", f"{name}: shape {got.shape} vs onnxruntime {ref.shape}"
        kinds = {got.dtype.kind, ref.dtype.kind}
        if len(kinds) > 1 and not kinds <= {"i", "u"}:
            return "dtype", f"{name}: dtype {got.dtype} vs onnxruntime {ref.dtype}"
        if ref.dtype.kind in "fc":
            wide = np.complex128 if "c" in kinds else np.float64
            a, b = got.astype(wide), ref.astype(wide)
            finite = np.abs(b[np.isfinite(b)])
            scale = max(1.0, float(finite.max())) if finite.size else 1.0
            with np.errstate(all="ignore"):
                bad = ~np.isclose(a, b, rtol=RTOL, atol=ATOL * scale, equal_nan=True)
                if bad.any():
                    odd = ~np.isfinite(a[bad]) | ~np.isfinite(b[bad])
                    both = bad & np.isfinite(a) & np.isfinite(b)
                    worst = float(np.max(np.abs(a - b)[both])) if both.any() else math.nan
                    kind = "nonfinite" if odd.all() else "values"
                    return kind, (
                        f"{name}: {int(bad.sum())} of {bad.size} values differ ({int(odd.sum())} non-finite "
                        f"on one side; max finite |diff| {worst:.3g} on a scale of {scale:.3g})"
                    )
        elif not np.array_equal(got, ref):
            return "values", f"{name}: values differ ({int(np.sum(got != ref))} of {ref.size})"
    return None


def _limit_memory(budget_mb: int) -> None:
    size_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                size_kb = int(line.split()[1])
    limit = size_kb * 1024 + budget_mb * (1 << 20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    os.environ["LWNN_MEMORY_LIMIT"] = str(budget_mb * (1 << 20) // 4)


def _run_lwnn(case: Case, path: Path):
    import lwnn

    if case.family == "selftest":
        return _probe(case.mutation.split("/")[1]), None
    if case.family == "calibration":
        model = lwnn.load(path)
        options = dict(case.options)
        scheme, method = options.pop("scheme"), options.pop("method")
        quantized = lwnn.quantize(model, case.calib, scheme, method, **{"progress": False, **options})
        outputs = quantized.run(case.feeds)
        reference = model.run(case.feeds)
        return outputs, reference
    model = lwnn.load(path)
    return model.run(case.feeds), None


def _run_ort(path: Path, feeds, optimize: bool = True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as err:
        return None, None, f"load: {type(err).__name__}: {_first_line(err, 200)}"
    names = [o.name for o in session.get_outputs()]
    try:
        return names, session.run(None, feeds), None
    except Exception as err:
        return None, None, f"run: {type(err).__name__}: {_first_line(err, 200)}"


def _harness_record(err: BaseException) -> dict:
    """The report of a fault of this module (not of lwnn) while making or running a case."""
    return {
        "stage": "harness",
        "error_type": type(err).__name__,
        "message": _first_line(err),
        "raised_in": _raised_in(err),
        "trace": traceback.format_exc()[-2000:],
    }


def execute(case: Case, send) -> None:
    """Run ``case`` here: lwnn, then (model and feeds families) onnxruntime; report each stage
    through ``send`` (a dict per stage)."""
    tmp = Path(tempfile.mkdtemp(prefix="lwnn-fuzz-", dir=_TMP_ROOT))
    try:
        model_bytes = case.model if case.model is not None else base_bytes(case.base)
        path = tmp / "model.onnx"
        path.write_bytes(model_bytes)
        outputs = reference = None
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                outputs, reference = _run_lwnn(case, path)
                result = {"outcome": "ok", "shapes": _shapes(outputs)}
            except BaseException as err:  # noqa: B036 - SystemExit from a library is a finding too
                result = classify_error(err)
        result.update(
            stage="lwnn",
            seconds=round(time.perf_counter() - start, 3),
            warnings=[_first_line(w.message, 160) for w in caught[:3]],
        )
        if case.family == "selftest":
            send(result)
            return
        if case.family == "calibration":
            if result["outcome"] == "ok":
                why = compare_shape_only(outputs, reference)
                if why:
                    result.update(silently_wrong=True, reason=f"quantized vs float: {why}")
            send(result)
            return
        send(result)
        names, ort_out, ort_error = _run_ort(path, case.feeds)
        verdict = {"stage": "ort", "ort": "ok" if ort_error is None else "rejected", "ort_error": ort_error}
        if result["outcome"] == "ok" and ort_error is None:
            why = compare_outputs(outputs, names, ort_out)
            if why and why[0] == "values":
                # A model that onnxruntime itself answers differently with and without its graph
                # optimizations (fused, reordered sums) is ill-conditioned: summation order alone
                # moves its outputs beyond the tolerance, so no runtime can be held to it.
                _, plain, plain_error = _run_ort(path, case.feeds, optimize=False)
                spread = compare_outputs(dict(zip(names, plain)), names, ort_out) if plain_error is None \
                    else None
                if spread:
                    verdict.update(ill_conditioned=True, reason=f"{why[1]}; onnxruntime unoptimized vs "
                                   f"optimized: {spread[1]}")
                    why = None
            if why:
                verdict.update(disagree=True, disagree_kind=why[0], reason=why[1])
        elif result["outcome"] == "ok":
            verdict["lax"] = True
            declared = declared_outputs(model_bytes)
            why = contradiction(declared, outputs) if declared is not None else None
            if why:
                verdict.update(silently_wrong=True, reason=why)
        elif result["outcome"] == "lwnn_error" and ort_error is None:
            verdict["strict"] = True
        send(verdict)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare_shape_only(outputs, reference) -> str | None:
    if not isinstance(outputs, dict) or not isinstance(reference, dict):
        return "outputs are not a dict"
    if set(outputs) != set(reference):
        return f"output names {sorted(outputs)} vs {sorted(reference)}"
    for name, ref in reference.items():
        if np.shape(outputs[name]) != np.shape(ref):
            return f"{name}: shape {np.shape(outputs[name])} vs float {np.shape(ref)}"
    return None


def _child(fd: int, family: str, seed: int, memory_mb: int) -> None:
    """The body of a case's process (forked by a zygote): nothing it does reaches the parent but
    the JSON lines it writes to ``fd``."""

    def send(message: dict) -> None:
        data = (json.dumps(message, default=str) + "\n").encode()
        while data:
            data = data[os.write(fd, data) :]

    try:
        os.setpgrp()  # a timeout kills the case and anything it started
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        _limit_memory(memory_mb)
        try:
            case = make_case(family, seed)
        except BaseException as err:  # noqa: B036 - a fault of this module, reported as such
            send(_harness_record(err))
            return
        send(
            {
                "stage": "case",
                "base": case.base,
                "mutation": case.mutation,
                "detail": _first_line(case.detail, 400),
            }
        )
        execute(case, send)
    except BaseException as err:  # noqa: B036
        with contextlib.suppress(BaseException):
            send(_harness_record(err))
    finally:
        os._exit(0)


# --- running many cases (in the parent) -----------------------------------------------------------
#
# The parent (pytest, or scripts/fuzz.py) never forks itself: it starts ``jobs`` zygotes, fresh
# Python processes that import lwnn, onnx and onnxruntime and run a few valid cases once (so lazy
# imports and onnxruntime's environment are done), then fork one child per case. A zygote sends
# back one JSON record per case on its stdout.


def _finish(spec, messages: list[dict], timed_out: bool, exitcode, seconds: float) -> dict:
    family, seed = spec
    record = {"family": family, "seed": seed, "key": f"{family}:{seed}", "seconds": round(seconds, 3)}
    for m in messages:
        if m.get("stage") == "case":
            record.update(base=m["base"], mutation=m["mutation"], detail=m["detail"])
    harness = [m for m in messages if m.get("stage") == "harness"]
    lw = next((m for m in messages if m.get("stage") == "lwnn"), None)
    ort = next((m for m in messages if m.get("stage") == "ort"), None)
    if harness:
        record.update(outcome="harness", **{k: v for k, v in harness[0].items() if k != "stage"})
        return record
    if lw is None:
        if timed_out:
            record["outcome"] = "hang"
        elif exitcode is not None and exitcode < 0:
            sig = -exitcode
            record["outcome"] = "memory" if sig == signal.SIGKILL else "crash"
            record["signal"] = signal.Signals(sig).name if sig in set(signal.Signals) else str(sig)
        else:
            record.update(outcome="crash", exitcode=exitcode)
        return record
    record.update({k: v for k, v in lw.items() if k != "stage"})
    if family in MODEL_FAMILIES or family == "feeds":
        if ort is None:
            record["ort"] = "timeout" if timed_out else f"died ({exitcode})"
        else:
            record.update({k: v for k, v in ort.items() if k != "stage"})
    return record


def _harness(spec, error_type: str, message: str, seconds: float) -> dict:
    return _finish(
        spec, [{"stage": "harness", "error_type": error_type, "message": message}], False, None, seconds
    )


def run_isolated(family: str, seed: int, timeout_s: float, memory_mb: int) -> dict:
    """Fork one case from this process, wait at most ``timeout_s`` and classify it (a zygote's
    job; also usable from any single-threaded process)."""
    r, w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child never returns
        os.close(r)
        _child(w, family, seed, memory_mb)
    os.close(w)
    buf, timed_out = b"", False
    while True:
        left = start + timeout_s - time.monotonic()
        if left <= 0:
            timed_out = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([r], [], [], left)
        if ready:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            buf += chunk
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - start
    os.set_blocking(r, False)
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(r, 1 << 16):
            buf += chunk
    os.close(r)
    exitcode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    messages = []
    for line in buf.splitlines():
        with contextlib.suppress(ValueError):
            messages.append(json.loads(line))
    return _finish((family, seed), messages, timed_out, exitcode, seconds)


def _warm_up() -> None:
    """Run a few valid cases here, once, so that forked cases start with every lazy import done."""
    warm()
    nrng = np.random.default_rng(0)
    for case in (
        Case("feeds", -1, "cnn", "warm", "", feeds=base_feeds("cnn", nrng)),
        Case(
            "calibration",
            -1,
            "cnn",
            "warm",
            "",
            feeds=base_feeds("cnn", nrng, batch=1),
            calib=base_calibration("cnn", nrng, 2),
            options={"scheme": "s8", "method": "minmax"},
        ),
        make_case("bytes", 0),
        make_case("structure", 0),
    ):
        with contextlib.suppress(Exception):
            execute(case, lambda message: None)


def zygote_main() -> None:
    """A zygote: read ``{"family", "seed", "timeout_s", "memory_mb"}`` lines on stdin, answer each
    with a record line on the original stdout. Cases write their files under one directory, removed
    at the end (also what a killed case left)."""
    global _TMP_ROOT
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    _TMP_ROOT = tempfile.mkdtemp(prefix="lwnn-fuzz-zygote-")
    try:
        _warm_up()
        proto.write(json.dumps({"ready": True}) + "\n")
        for line in sys.stdin:
            if not line.strip():
                continue
            spec = json.loads(line)
            record = run_isolated(spec["family"], spec["seed"], spec["timeout_s"], spec["memory_mb"])
            proto.write(json.dumps(record, default=str) + "\n")
    finally:
        shutil.rmtree(_TMP_ROOT, ignore_errors=True)


class _Zygote:
    def __init__(self):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        here = str(Path(__file__).resolve().parent)
        code = f"import sys; sys.path.insert(0, {here!r}); import fuzzing; fuzzing.zygote_main()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.buf = b""
        self.ready = False
        self.job = None  # (index, spec, time sent)

    def send(self, index: int, spec, timeout_s: float, memory_mb: int) -> None:
        family, seed = spec
        line = json.dumps({"family": family, "seed": seed, "timeout_s": timeout_s, "memory_mb": memory_mb})
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        self.job = (index, spec, time.monotonic())

    def lines(self) -> list[dict] | None:
        """The complete lines available now; None at EOF."""
        chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
        if not chunk:
            return None
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        return [json.loads(line) for line in done if line.strip()]

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except Exception:
            self.kill()
        with contextlib.suppress(Exception):
            self.proc.stdout.close()


class Runner:
    """``jobs`` zygotes that run cases in isolation; reuse one for many ``run`` calls, and close
    it (or use it as a context manager)."""

    STARTUP_S = 180.0  # a zygote's imports and warm-up, on a busy machine
    GRACE_S = 60.0  # beyond a case's own limit before a zygote counts as stuck

    def __init__(
        self, jobs: int = 2, timeout_s: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB
    ):
        self.jobs, self.timeout_s, self.memory_mb = max(1, jobs), timeout_s, memory_mb
        self.zygotes: list[_Zygote] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for z in self.zygotes:
            z.close()
        self.zygotes = []

    def _replace(self, z: _Zygote) -> _Zygote:
        z.kill()
        new = _Zygote()
        self.zygotes[self.zygotes.index(z)] = new
        return new

    def run(self, specs, on_result=None, timeout_s: float | None = None) -> list[dict]:
        """One record per (family, seed), in order; ``on_result(record)`` as each finishes.
        ``timeout_s``: this run's limit per case, if not the runner's."""
        specs = list(specs)
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        while len(self.zygotes) < self.jobs:
            self.zygotes.append(_Zygote())
        results: list[dict | None] = [None] * len(specs)
        todo = list(range(len(specs)))[::-1]
        started = {id(z): time.monotonic() for z in self.zygotes if not z.ready}

        def done(index: int, record: dict) -> None:
            results[index] = record
            if on_result is not None:
                on_result(record)

        while todo or any(z.job for z in self.zygotes):
            for z in self.zygotes:
                if z.ready and z.job is None and todo:
                    index = todo.pop()
                    z.send(index, specs[index], timeout_s, self.memory_mb)
            with selectors.DefaultSelector() as sel:
                for z in self.zygotes:
                    sel.register(z.proc.stdout, selectors.EVENT_READ, z)
                events = sel.select(timeout=1.0)
            now = time.monotonic()
            for key, _ in events:
                z = key.data
                lines = z.lines()
                if lines is None:  # the zygote died: its case is a harness failure
                    if not z.ready:
                        raise RuntimeError(f"a fuzz zygote failed to start (exit code {z.proc.wait()})")
                    if z.job is not None:
                        index, spec, sent = z.job
                        done(index, _harness(spec, "ZygoteDied", f"exit code {z.proc.poll()}", now - sent))
                    started[id(self._replace(z))] = now
                    continue
                for line in lines:
                    if line.get("ready"):
                        z.ready = True
                    elif z.job is not None:
                        index, z.job = z.job[0], None
                        done(index, line)
            for z in list(self.zygotes):
                stuck = (z.job is not None and now - z.job[2] > timeout_s + self.GRACE_S) or (
                    not z.ready and now - started.get(id(z), now) > self.STARTUP_S
                )
                if stuck:
                    if z.job is not None:
                        index, spec, sent = z.job
                        done(index, _harness(spec, "ZygoteStuck", "no answer from the zygote", now - sent))
                    started[id(self._replace(z))] = now
        return results  # type: ignore[return-value]


def run_cases(
    specs,
    *,
    jobs: int = 2,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    on_result=None,
) -> list[dict]:
    """Run each (family, seed) in its own process, ``jobs`` at a time (a ``Runner`` used once)."""
    with Runner(jobs, timeout_s, memory_mb) as runner:
        return runner.run(specs, on_result)


def run_inline(family: str, seed: int) -> tuple[Case, dict]:
    """Run one case in this process (no isolation): for reproducing a finding with a traceback."""
    case = make_case(family, seed)
    messages = [{"stage": "case", "base": case.base, "mutation": case.mutation, "detail": case.detail}]
    start = time.monotonic()
    execute(case, messages.append)
    return case, _finish((family, seed), messages, False, 0, time.monotonic() - start)


# --- summaries -------------------------------------------------------------------------------------


def overflowed(record: dict) -> bool:
    """lwnn's float arithmetic overflowed on finite inputs (NumPy warned) and the outputs differ from
    onnxruntime's only in non-finite values: after an inf, how NaN passes through max/min/ReLU is
    what each implementation makes of it (ONNX does not define it), so this is reported, not
    failed. Non-finite feeds and NaN weights never get this far: lwnn refuses them."""
    return bool(record.get("disagree")) and record.get("disagree_kind") == "nonfinite" and any(
        "overflow" in w or "invalid value" in w for w in record.get("warnings") or ())


def failures_of(record: dict) -> list[str]:
    """What the oracle forbids in this record (empty: the case passed)."""
    out = [record["outcome"]] if record["outcome"] in FAILURES else []
    out += [flag for flag in ("silently_wrong", "disagree") if record.get(flag)
            and not (flag == "disagree" and overflowed(record))]
    return out


def table(records: list[dict]) -> dict[str, Counter]:
    rows: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        for row in (r["family"], "total"):
            c = rows[row]
            c["cases"] += 1
            c[r["outcome"]] += 1
            for flag in ("silently_wrong", "ill_conditioned", "lax", "strict"):
                c[flag] += bool(r.get(flag))
            c["disagree"] += bool(r.get("disagree")) and not overflowed(r)
            c["overflowed"] += overflowed(r)
    order = [f for f in FAMILIES if f in rows] + ["total"]
    return {k: rows[k] for k in order if k in rows}


def format_table(records: list[dict]) -> str:
    rows = table(records)
    width = max(len(k) for k in [*rows, "family"])
    head = "family".ljust(width) + "".join(f" {c:>{max(5, len(c))}}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    for name, c in rows.items():
        lines.append(name.ljust(width) + "".join(f" {c[col]:>{max(5, len(col))}}" for col in COLUMNS))
    return "\n".join(lines)


def group_failures(records: list[dict]) -> list[dict]:
    """Failures grouped by (kind, place or reason), largest first, with a sample of each."""
    groups: dict[tuple, dict] = {}
    for r in records:
        for kind in failures_of(r):
            if kind in ("bare", "memory") and r.get("place"):
                key = (kind, r.get("error_type", ""), r["place"])
            elif kind == "disagree":
                key = (kind, r.get("disagree_kind", ""), r.get("mutation", ""))
            elif kind == "silently_wrong":
                key = (kind, r.get("mutation", ""), "")
            elif kind == "harness":
                key = (kind, r.get("error_type", ""), r.get("raised_in", ""))
            else:
                key = (kind, r.get("mutation", ""), r.get("signal", ""))
            g = groups.setdefault(
                key,
                {
                    "kind": kind,
                    "what": key[1],
                    "place": key[2],
                    "count": 0,
                    "families": Counter(),
                    "samples": [],
                },
            )
            g["count"] += 1
            g["families"][r["family"]] += 1
            if len(g["samples"]) < 3:
                g["samples"].append(
                    {
                        k: r.get(k)
                        for k in (
                            "key",
                            "base",
                            "mutation",
                            "detail",
                            "message",
                            "reason",
                            "ort_error",
                            "raised_in",
                        )
                    }
                )
    return sorted(groups.values(), key=lambda g: (-g["count"], g["kind"], g["place"]))


def format_failures(records: list[dict], limit: int = 60) -> str:
    lines = []
    for g in group_failures(records)[:limit]:
        fams = ", ".join(f"{f} {n}" for f, n in g["families"].most_common())
        s = g["samples"][0]
        lines.append(f"[{g['kind']}] x{g['count']} {g['what']} {g['place']}  ({fams})")
        lines.append(f"    e.g. {s['key']} ({s['base']}, {s['mutation']}): {s['detail']}")
        msg = s.get("message") or s.get("reason")
        if msg:
            lines.append(f"    -> {_first_line(msg, 240)}")
        if s.get("ort_error") and g["kind"] == "silently_wrong":
            lines.append(f"    onnxruntime: {_first_line(s['ort_error'], 200)}")
    return "\n".join(lines)
