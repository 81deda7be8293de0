"""The coverage table (layer x runtime: Y native; C on the CPU in the same integer scheme, for a
device's integer runtime; F falls back to CPU float; N unsupported), generated from the
registered ops and runtimes (``lwnn.backends.runtimes``), never written by hand."""

from __future__ import annotations

from dataclasses import dataclass

from lwnn.backends import RUNTIME_COLUMNS, runtime_for_column
from lwnn.graph import Layer
from lwnn.ops import OPS
from lwnn.ops import audio as a
from lwnn.ops import conv as c
from lwnn.ops import detection as d
from lwnn.ops import elementwise as e
from lwnn.ops import pool as p
from lwnn.ops import recurrent as r
from lwnn.ops import shape as s


def _seed_layers() -> list[tuple[str, object]]:
    """The seed's layer table: a label and a representative op (None: no op exists yet)."""
    return [
        ("Conv1D", c.Conv()),
        ("Conv2D", c.Conv()),
        ("DeConv2D", c.ConvTranspose()),
        ("DepthwiseConv2D", c.Conv(group=8)),
        ("DilatedConv2D", c.Conv(dilations=(2, 2))),
        ("PReLU", e.PRelu()),
        ("Element-wise Max", e.Max()),
        ("ReLU", e.Relu()),
        ("Add", e.Add()),
        ("Concat", s.Concat()),
        ("Pad", s.Pad()),
        ("Reshape", s.Reshape()),
        ("BatchNorm", e.BatchNorm()),
        ("Softmax", e.Softmax()),
        ("Dense", c.Dense()),
        ("MaxPool1D/2D", p.MaxPool()),
        ("AvgPool1D/2D", p.AveragePool()),
        # ONNX Upsample and darknet [upsample] import as this nearest Resize (Keras UpSampling2D as
        # the same with nearest_mode "floor", equal for its integer factors).
        ("Upsample", s.Resize(coordinate_transformation_mode="asymmetric", nearest_mode="simple")),
        ("PriorBox", d.PriorBox(min_sizes=(30.0,))),
        ("DetectionOutput", d.DetectionOutput()),
        ("Yolo", d.Yolo(anchors=(10, 13), mask=(0,))),
        ("YoloOutput", d.YoloOutput()),
        ("Mfcc", a.Mfcc()),
        ("LSTM", r.LSTM()),
    ]


@dataclass(frozen=True)
class CoverageRow:
    layer: str
    op_type: str
    support: tuple[str, ...]  # one of "Y", "C", "F", "N" per runtime column


def _support(op, column: str) -> str:
    if op is None:
        return "N"
    runtime = runtime_for_column(column)
    layer = Layer("coverage", op, ("a", "b"), ("y",))  # binary arity: Add and Mul kernels need two
    if runtime.supports(layer):
        return "Y"
    if runtime.backend != "cpu" and runtime.scheme != "float" and \
            runtime_for_column(f"cpu {runtime.scheme}").supports(layer):
        return "C"
    if column != "cpu float" and runtime_for_column("cpu float").supports(layer):
        return "F"
    return "N"


def seed_table() -> list[CoverageRow]:
    """The seed's layers against the runtimes, as the code supports them now."""
    return [
        CoverageRow(label, op.type if op else "-", tuple(_support(op, col) for col in RUNTIME_COLUMNS))
        for label, op in _seed_layers()
    ]


def op_table() -> list[CoverageRow]:
    """Every lwnn op against the runtimes."""
    return [
        CoverageRow(name, name, tuple(_support(cls(), col) for col in RUNTIME_COLUMNS))
        for name, cls in sorted(OPS.items())
    ]


def to_markdown(rows: list[CoverageRow], first: str = "Layer") -> str:
    """A markdown table; the op column is left out when it repeats the first column."""
    show_op = any(r.layer != r.op_type for r in rows)
    lead = [first, "lwnn op"] if show_op else [first]
    header = "| " + " | ".join([*lead, *RUNTIME_COLUMNS]) + " |"
    rule = "|" + " - |" * (len(lead) + len(RUNTIME_COLUMNS))
    body = [
        "| " + " | ".join([r.layer, *([r.op_type] if show_op else []), *r.support]) + " |" for r in rows
    ]
    return "\n".join([header, rule, *body])
