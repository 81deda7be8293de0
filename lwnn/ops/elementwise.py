"""Element-wise ops: broadcasting arithmetic, activations, BatchNormalization and Softmax."""

from __future__ import annotations

from dataclasses import dataclass

from lwnn.errors import ShapeError
from lwnn.ops.base import Op, broadcast, expect_rank, normalize_axis


@dataclass(frozen=True)
class _Broadcasting(Op):
    elementwise = 2

    def infer(self, shapes, values):
        return [broadcast(self, shapes)]


@dataclass(frozen=True)
class Add(_Broadcasting):
    type = "Add"


@dataclass(frozen=True)
class Sub(_Broadcasting):
    type = "Sub"


@dataclass(frozen=True)
class Mul(_Broadcasting):
    type = "Mul"


@dataclass(frozen=True)
class Div(_Broadcasting):
    type = "Div"


@dataclass(frozen=True)
class Pow(_Broadcasting):
    type = "Pow"

    def infer(self, shapes, values):
        # ONNX Pow broadcasts the exponent onto the base; the result has the base's rank or more.
        return [broadcast(self, shapes)]


@dataclass(frozen=True)
class Max(_Broadcasting):
    """Element-wise maximum over any number of inputs."""

    type = "Max"


@dataclass(frozen=True)
class Min(_Broadcasting):
    type = "Min"


@dataclass(frozen=True)
class _Unary(Op):
    elementwise = 1

    def infer(self, shapes, values):
        return [tuple(shapes[0])]


@dataclass(frozen=True)
class Identity(_Unary):
    type = "Identity"
    moves_values = True


@dataclass(frozen=True)
class Relu(_Unary):
    type = "Relu"


@dataclass(frozen=True)
class LeakyRelu(_Unary):
    type = "LeakyRelu"
    alpha: float = 0.01


@dataclass(frozen=True)
class PRelu(Op):
    """Inputs: x and a slope broadcastable to x (per channel in CNNs)."""

    type = "PRelu"

    def infer(self, shapes, values):
        out = broadcast(self, shapes)
        if out != tuple(shapes[0]):
            raise ShapeError(
                f"PRelu slope of shape {tuple(shapes[1])} must broadcast to the input shape "
                f"{tuple(shapes[0])}."
            )
        return [out]


@dataclass(frozen=True)
class Clip(_Unary):
    """Clamp to [min, max]; Clip(0, 6) is ReLU6."""

    type = "Clip"
    min: float = float("-inf")
    max: float = float("inf")


@dataclass(frozen=True)
class Sigmoid(_Unary):
    type = "Sigmoid"


@dataclass(frozen=True)
class HardSigmoid(_Unary):
    type = "HardSigmoid"
    alpha: float = 0.2
    beta: float = 0.5


@dataclass(frozen=True)
class HardSwish(_Unary):
    type = "HardSwish"


@dataclass(frozen=True)
class Tanh(_Unary):
    type = "Tanh"


@dataclass(frozen=True)
class Elu(_Unary):
    type = "Elu"
    alpha: float = 1.0


@dataclass(frozen=True)
class Sqrt(_Unary):
    type = "Sqrt"


@dataclass(frozen=True)
class Exp(_Unary):
    type = "Exp"


@dataclass(frozen=True)
class Log(_Unary):
    type = "Log"


@dataclass(frozen=True)
class Neg(_Unary):
    type = "Neg"


@dataclass(frozen=True)
class Abs(_Unary):
    type = "Abs"


@dataclass(frozen=True)
class Reciprocal(_Unary):
    type = "Reciprocal"


@dataclass(frozen=True)
class Erf(_Unary):
    type = "Erf"


@dataclass(frozen=True)
class BatchNorm(Op):
    """Inference-mode BatchNormalization. Inputs: x [N, C, ...], scale, bias, mean, var (all [C])."""

    type = "BatchNorm"
    epsilon: float = 1e-5

    def infer(self, shapes, values):
        x = shapes[0]
        expect_rank(self, x, (2, 3, 4, 5))
        for name, s in zip(("scale", "bias", "mean", "var"), shapes[1:5]):
            if tuple(s) != (x[1],):
                raise ShapeError(
                    f"BatchNorm expects {name} of shape ({x[1]},) for input {tuple(x)}. "
                    f"Received {tuple(s)}."
                )
        return [tuple(x)]


@dataclass(frozen=True)
class Softmax(Op):
    """Softmax along ``axis``; ``coerce_2d`` gives the opset < 13 semantics (normalise over all
    dims from ``axis`` on)."""

    type = "Softmax"
    axis: int = -1
    coerce_2d: bool = False

    def infer(self, shapes, values):
        normalize_axis(self, self.axis, len(shapes[0]))
        return [tuple(shapes[0])]
