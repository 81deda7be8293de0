"""Recurrent layers: LSTM with ONNX semantics (directions, sequence lengths, initial states,
peepholes, activation list with alpha/beta, clip, input_forget, both layouts)."""

from __future__ import annotations

from dataclasses import dataclass

from lwnn.errors import ShapeError, UnsupportedOpError
from lwnn.ops.base import Op, expect_rank

# Activation name -> (takes alpha, takes beta, default alpha, default beta). The defaults are
# those of the ONNX operators of the same name, as the LSTM specification says.
RNN_ACTIVATIONS: dict[str, tuple[bool, bool, float, float]] = {
    "Sigmoid": (False, False, 0.0, 0.0),
    "Tanh": (False, False, 0.0, 0.0),
    "Relu": (False, False, 0.0, 0.0),
    "Affine": (True, True, 1.0, 0.0),
    "LeakyRelu": (True, False, 0.01, 0.0),
    "ThresholdedRelu": (True, False, 1.0, 0.0),
    "ScaledTanh": (True, True, 1.0, 1.0),
    "HardSigmoid": (True, True, 0.2, 0.5),
    "Elu": (True, False, 1.0, 0.0),
    "Softsign": (False, False, 0.0, 0.0),
    "Softplus": (False, False, 0.0, 0.0),
}
DIRECTIONS = ("forward", "reverse", "bidirectional")
LSTM_DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")


def canonical_activation(name: str) -> str:
    """The canonical spelling of an RNN activation name (ONNX runtimes accept any case)."""
    for known in RNN_ACTIVATIONS:
        if known.lower() == name.lower():
            return known
    raise UnsupportedOpError(
        f"RNN activation {name!r} is not supported. Supported: {', '.join(RNN_ACTIVATIONS)}."
    )


@dataclass(frozen=True)
class LSTM(Op):
    """ONNX LSTM. Inputs: X, W, R, [B, sequence_lens, initial_h, initial_c, P].
    Outputs: Y, Y_h, Y_c (each optional in the layer's output list).

    ``activations`` holds (f, g, h) per direction (empty: Sigmoid, Tanh, Tanh for each);
    ``activation_alpha``/``activation_beta`` are consumed in activation order by the activations
    that take them, as in ONNX. ``clip`` (0: none) bounds every gate pre-activation.
    ``layout`` 0 is [seq, batch, ...], 1 is [batch, seq, ...].
    """

    type = "LSTM"
    hidden_size: int = 0
    direction: str = "forward"
    activations: tuple[str, ...] = ()
    activation_alpha: tuple[float, ...] = ()
    activation_beta: tuple[float, ...] = ()
    clip: float = 0.0
    input_forget: bool = False
    layout: int = 0

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    def resolved_activations(self) -> list[tuple[str, float, float]]:
        """(name, alpha, beta) for f, g, h of each direction, with ONNX's defaults."""
        names = self.activations or LSTM_DEFAULT_ACTIVATIONS * self.num_directions
        if len(names) != 3 * self.num_directions:
            raise UnsupportedOpError(
                f"LSTM ({self.direction}) expects {3 * self.num_directions} activations (f, g, h per "
                f"direction). Received {list(names)}."
            )
        alphas, betas = list(self.activation_alpha), list(self.activation_beta)
        out = []
        for name in names:
            name = canonical_activation(name)
            takes_a, takes_b, alpha, beta = RNN_ACTIVATIONS[name]
            if takes_a and alphas:
                alpha = alphas.pop(0)
            if takes_b and betas:
                beta = betas.pop(0)
            out.append((name, float(alpha), float(beta)))
        return out

    def infer(self, shapes, values):
        if self.direction not in DIRECTIONS:
            raise UnsupportedOpError(
                f"LSTM direction {self.direction!r} is not supported. Supported: {', '.join(DIRECTIONS)}."
            )
        if self.layout not in (0, 1):
            raise UnsupportedOpError(f"LSTM layout must be 0 or 1. Received {self.layout}.")
        self.resolved_activations()
        x, w, r = shapes[0], shapes[1], shapes[2]
        expect_rank(self, x, (3,), "X")
        expect_rank(self, w, (3,), "W")
        expect_rank(self, r, (3,), "R")
        seq, batch = (x[0], x[1]) if self.layout == 0 else (x[1], x[0])
        dirs, hidden = self.num_directions, r[2]
        if self.hidden_size and self.hidden_size != hidden:
            raise ShapeError(
                f"LSTM hidden_size is {self.hidden_size} but R has shape {tuple(r)} (hidden size {hidden})."
            )
        want = {
            1: ("W", (dirs, 4 * hidden, x[2])),
            2: ("R", (dirs, 4 * hidden, hidden)),
            3: ("B", (dirs, 8 * hidden)),
            4: ("sequence_lens", (batch,)),
            5: ("initial_h", (dirs, batch, hidden) if self.layout == 0 else (batch, dirs, hidden)),
            6: ("initial_c", (dirs, batch, hidden) if self.layout == 0 else (batch, dirs, hidden)),
            7: ("P", (dirs, 3 * hidden)),
        }
        for i, (what, expected) in want.items():
            if i < len(shapes) and shapes[i] is not None and tuple(shapes[i]) != expected:
                raise ShapeError(
                    f"LSTM ({self.direction}, hidden {hidden}, X {tuple(x)}, layout {self.layout}) expects "
                    f"{what} of shape {expected}. Received shape {tuple(shapes[i])}."
                )
        if self.layout == 0:
            return [(seq, dirs, batch, hidden), (dirs, batch, hidden), (dirs, batch, hidden)]
        return [(batch, seq, dirs, hidden), (batch, dirs, hidden), (batch, dirs, hidden)]
