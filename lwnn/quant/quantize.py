"""``lwnn.quantize``: calibrate a float model and assign every tensor its integer parameters."""

from __future__ import annotations

import numpy as np

from lwnn.errors import CalibrationError
from lwnn.graph import Layer
from lwnn.numerics.params import (
    SCHEMES,
    AffineParams,
    QFormat,
    affine_from_range,
    bias_params,
    scheme_of,
    symmetric_from_absmax,
)
from lwnn.numerics.roles import fixed_output, input_roles, same_as_input, weight_channel_axis
from lwnn.quant.folding import quant_graph
from lwnn.quant.linking import linked_frac_bits
from lwnn.quant.observers import TensorObserver, observe
from lwnn.quant.options import (
    check_batch_size,
    check_bool,
    check_choice,
    check_method,
    check_method_options,
    check_model,
    check_scheme,
    checks_call,
    options_for,
    received,
    suggestion,
)
from lwnn.quant.ranges import choose_frac_bits, choose_range, weight_thresholds

LAYER_MODES = ("float", *SCHEMES)
# quantize's own keywords; the range-choice options (lwnn.quant.options.METHOD_OPTIONS) come after.
QUANTIZE_KEYWORDS = ("scheme", "method", "per_channel", "layers", "q16_headroom", "fold", "link_q",
                     "weight_method", "batch_size", "progress")


@checks_call(CalibrationError)
def quantize(
    model,
    calib_feeds,
    scheme: str = "s8",
    method: str = "minmax",
    *,
    per_channel: bool = True,
    layers: dict[str, str] | None = None,
    q16_headroom: str = "full",
    fold: bool = True,
    link_q: bool = False,
    weight_method: str = "minmax",
    batch_size: int | None = None,
    progress: bool = True,
    **method_options,
):
    """Calibrate ``model`` on ``calib_feeds`` and return a ``QuantizedModel``.

    ``scheme``: ``s8`` (TFLite int8), ``q8`` or ``q16`` (power-of-two Q formats).
    ``method``: ``minmax``, ``percentile``, ``kl`` or ``mse`` (options such as ``percentile=``,
    ``kl_bins=`` are passed to ``lwnn.quant.ranges``). ``per_channel``: s8 weights per output
    channel. ``layers``: {layer name: "float" | "s8" | "q8" | "q16"} runs those layers in float
    or under another integer scheme (mixed precision; tensors crossing schemes are converted at
    the boundary). ``q16_headroom``: ``full`` (``Q = 15 - int_bits``) or ``lwnn`` (LWNN's
    ``Q = 8 - int_bits``, 7 bits of headroom against int32 overflow). ``fold``: fold BatchNorm and
    per-channel Add/Sub/Mul/Div into the convolution before them, as deployment does (the
    folded-away tensors then do not exist). ``link_q``: q8/q16 only, LWNN's rule giving the inputs
    and output of every Add/Concat the smallest Q among them. ``weight_method``: range choice for
    constant weights (``minmax``, or ``percentile``/``kl``/``mse`` per output channel for s8, per
    tensor Q for q8/q16; same options as ``method``). ``calib_feeds``: a dict of arrays
    (first axis = samples) or an iterable of feed dicts. ``batch_size``: samples per calibration
    batch of a dict of arrays (default: the model's fixed batch, else 32).

    Range-choice options (``lwnn.quant.options.METHOD_OPTIONS``): ``percentile`` (in (50, 100],
    default 99.99; method ``percentile``), ``kl_bins`` (bins the KL search runs over, default
    2048; ``kl``), ``kl_levels`` (levels per side, s8 only; ``kl``), ``mse_candidates`` (thresholds
    tried per side, s8 only; ``mse``), ``search`` (Q values tried above the minmax Q, q8/q16 only;
    ``kl``, ``mse``). Every argument is checked first: an unknown keyword, an option the chosen
    methods or schemes do not use, or a value of the wrong type or range raises
    ``CalibrationError`` naming it and what it expects.
    """
    args = check_arguments(model, scheme, method, per_channel=per_channel, layers=layers,
                           q16_headroom=q16_headroom, fold=fold, link_q=link_q, weight_method=weight_method,
                           batch_size=batch_size, progress=progress, method_options=method_options)
    scheme, layer_modes, method_options = args["scheme"], args["layer_modes"], args["method_options"]
    qgraph = quant_graph(model, layer_modes, args["fold"])
    observers = observe(model, calib_feeds, progress=args["progress"], batch_size=args["batch_size"])
    options = {k: args[k] for k in ("method", "per_channel", "q16_headroom", "link_q", "weight_method")}
    params = assign_params(qgraph, layer_modes, scheme, observers, options, method_options)
    from lwnn.quant.qmodel import QuantizedModel

    config = dict(**{k: args[k] for k in ("scheme", "method", "per_channel", "q16_headroom", "fold", "link_q",
                                          "weight_method")},
                  layers=dict(layers or {}), method_options=method_options)
    return QuantizedModel(model, scheme, params, layer_modes, config, observers, qgraph=qgraph)


def check_arguments(model, scheme="s8", method="minmax", *, per_channel=True, layers=None,
                    q16_headroom="full", fold=True, link_q=False, weight_method="minmax", batch_size=None,
                    progress=True, method_options=None, where: str = "quantize") -> dict:
    """``quantize``'s arguments checked (``lwnn.quant.options``) and as plain values, plus
    ``layer_modes`` (every layer's mode); raises ``CalibrationError`` naming a bad one. The
    studies call it too, to fail before any work."""
    check_model(where, model)
    out = dict(scheme=check_scheme(scheme), method=check_method(method),
               weight_method=check_method(weight_method, "weight_method"),
               q16_headroom=check_choice("q16_headroom", q16_headroom, ("full", "lwnn")),
               batch_size=check_batch_size(batch_size))
    for name, value in dict(per_channel=per_channel, fold=fold, link_q=link_q, progress=progress).items():
        out[name] = check_bool(name, value)
    out["layer_modes"] = modes = check_layer_modes(model, {} if layers is None else layers, out["scheme"])
    used = set(modes.values())
    out["method_options"] = check_method_options(
        where, method_options or {}, methods=(out["method"], out["weight_method"]),
        schemes=[s for s in SCHEMES if s == out["scheme"] or s in used], other_keywords=QUANTIZE_KEYWORDS)
    return out


def check_layer_modes(model, layers: dict[str, str], scheme: str) -> dict[str, str]:
    """Every source layer's mode: ``scheme`` unless ``layers`` says otherwise (checked)."""
    from collections.abc import Mapping

    from lwnn.graph import _preview

    if not isinstance(layers, Mapping):
        raise CalibrationError(f"layers must be a dict {{layer name: mode}} with modes {LAYER_MODES}. "
                               f"Received {received(layers)}.")
    names = [layer.name for layer in model.layers]
    known = set(names)
    for name, mode in layers.items():
        if name not in known:
            raise CalibrationError(
                f"layers: No layer named {name!r} in model {model.name!r}.{suggestion(name, names)} "
                f"Layers: {_preview(names)}")
        if not isinstance(mode, str) or mode not in LAYER_MODES:
            raise CalibrationError(
                f"Layer {name!r}: unknown mode {mode!r}. Expected one of {LAYER_MODES}."
                f"{suggestion(mode, LAYER_MODES)}")
    return {layer.name: layers.get(layer.name, scheme) for layer in model.layers}


def assign_params(qgraph, layer_modes: dict[str, str], scheme: str, observers, options: dict,
                  method_options: dict) -> dict[str, dict]:
    """{scheme: {tensor: parameters}} for the main scheme and every scheme a layer is forced to.

    Each scheme's parameters cover the whole graph (so a tensor entering a layer of that scheme
    always has them); the main scheme's also serve float layers' tensors.
    """
    used = set(layer_modes.values())
    schemes = [scheme, *(s for s in SCHEMES if s != scheme and s in used)]
    out = {}
    for s in schemes:
        assigner = _ParamAssigner(qgraph, s, observers, options, method_options)
        out[s] = assigner.assign()
    return out


class _ParamAssigner:
    """Walks the layers in order and gives each quantized tensor its parameters."""

    def __init__(self, qgraph, scheme, observers, options: dict, method_options: dict):
        self.layers, self.scheme, self.method = qgraph.layers, scheme, options["method"]
        self.per_channel, self.q16_headroom = options["per_channel"], options["q16_headroom"]
        self.weight_method = options.get("weight_method", "minmax")
        self.observers = observers
        self.constants = qgraph.constants
        self.spec = scheme_of(scheme)
        self.options = options_for(method_options, families=[self.spec.family])  # what its range choice takes
        self.bits = self.spec.bits
        # LWNN's q16 quantizer keeps 7 bits of headroom on every tensor (9-bit Q choices).
        self.lwnn_headroom = self.spec.bits == 16 and self.q16_headroom == "lwnn"
        self.params: dict[str, AffineParams | QFormat] = {}
        self.linked_q: dict[str, int] = {}
        if options.get("link_q") and not self.spec.affine:
            self._walk()
            self.linked_q = linked_frac_bits(self.layers, self.params, self.constants)
            self.params = {}

    def assign(self) -> dict:
        self._walk()
        return self.params

    def _walk(self) -> None:
        for layer in self.layers:
            if not self._is_float_layer(layer):
                continue  # integer shape computations are folded, never quantized
            roles = input_roles(layer, self.constants)
            for name, role in zip(layer.inputs, roles):
                if not name or name in self.params or role == "raw":
                    continue
                if role == "weight":
                    self.params[name] = self._weight(layer, name)
                elif role == "act":
                    self.params[name] = self._activation(name)
            if "bias" in roles:
                b = layer.inputs[roles.index("bias")]
                if b:
                    self.params[b] = self._bias(layer, b)
            for out in layer.outputs:
                self.params[out] = self._output(layer, out)

    def _is_float_layer(self, layer: Layer) -> bool:
        return all(o in self.observers for o in layer.outputs)

    def _observer(self, name: str) -> TensorObserver:
        if name in self.observers:
            return self.observers[name]
        if name in self.constants:
            return TensorObserver.of(np.asarray(self.constants[name], np.float32), name)
        raise CalibrationError(f"Tensor {name!r} was not observed during calibration.")

    def _activation(self, name: str):
        obs = self._observer(name)
        if self.spec.affine:
            choice = choose_range(obs, self.method, bits=8, **self.options)
            return affine_from_range(choice.lo, choice.hi, 8, name=name)
        if name in self.linked_q:
            return QFormat(self.linked_q[name], self.bits)
        bits = 9 if self.lwnn_headroom else self.bits
        q = choose_frac_bits(obs, self.method, bits, **self.options)
        return QFormat(q, self.bits)

    def _output(self, layer: Layer, name: str):
        fixed = fixed_output(layer, self.scheme)
        if fixed is not None:
            return fixed
        if same_as_input(layer) and layer.inputs[0] in self.params:
            return self.params[layer.inputs[0]]
        return self._activation(name)

    def _weight(self, layer: Layer, name: str):
        w = np.asarray(self.constants[name], np.float64)
        if self.spec.affine:
            axis = weight_channel_axis(layer) % w.ndim
            if self.per_channel and self._per_channel_possible(layer, w):
                absmax = np.maximum(self._weight_range(w, axis, name),
                                    self._bias_floor(layer, per_channel=True))
                return symmetric_from_absmax(absmax, 8, axis, name=name)
            absmax = max(float(self._weight_range(w, None, name)),
                         float(np.max(self._bias_floor(layer, per_channel=False))))
            return symmetric_from_absmax(absmax, 8, name=name)
        if self.weight_method != "minmax":
            bits = 9 if self.lwnn_headroom else self.bits
            q = choose_frac_bits(TensorObserver.of(w, name), self.weight_method, bits, **self.options)
            return QFormat(q, self.bits)
        return self._qformat(float(np.abs(w).max()), name)

    def _weight_range(self, w: np.ndarray, axis: int | None, name: str):
        """Symmetric range of a weight: max |w| (minmax), or ``weight_method``'s clipping
        threshold, per channel along ``axis``."""
        if self.weight_method == "minmax":
            reduce = tuple(d for d in range(w.ndim) if d != axis) if axis is not None else None
            return np.abs(w).max(axis=reduce)
        return weight_thresholds(w, axis, self.weight_method, bits=8, name=name, **self.options)

    def _bias_floor(self, layer: Layer, per_channel: bool) -> np.ndarray | float:
        """Smallest weight absmax that keeps the int32 bias ``b / (s_x * s_w)`` within 2^30.

        A channel with near-zero weights but a real bias would otherwise get a bias code beyond
        int32 (TFLite's quantizer widens such weight scales too); 2^30 leaves the accumulation
        a bit of room."""
        roles = input_roles(layer, self.constants)
        if "bias" not in roles or layer.inputs[0] not in self.params:
            return 0.0
        b = np.abs(np.asarray(self.constants[layer.inputs[roles.index("bias")]], np.float64))
        if not per_channel:
            b = b.max(initial=0.0)
        elif b.ndim > 1:
            b = b.reshape(-1, b.shape[-1]).max(axis=0)
        s_x = float(self.params[layer.inputs[0]].scale)
        return b * 127.0 / (s_x * 2.0**30)

    def _per_channel_possible(self, layer: Layer, w: np.ndarray) -> bool:
        if layer.op_type == "FusedActivation":
            layer = layer.op.inner
        if layer.op_type == "ConvTranspose" and layer.op.group > 1:
            return False  # axis 1 of a grouped deconv weight is per group, not per output channel
        if layer.op_type == "MatMul" and w.ndim < 2:
            return False  # a vector B has no output-channel axis
        if layer.op_type == "Dense" and len(layer.inputs) > 2 and layer.inputs[2] in self.constants:
            c = np.asarray(self.constants[layer.inputs[2]])
            channels = w.shape[weight_channel_axis(layer) % w.ndim]
            return c.ndim >= 1 and c.shape[-1] == channels  # one bias per output column
        return True

    def _bias(self, layer: Layer, name: str):
        x, w = self.params[layer.inputs[0]], self.params[layer.inputs[1]]
        if self.spec.affine:
            params = bias_params(x, w)
            bias_rank = np.ndim(self.constants[name])
            if params.per_channel and bias_rank > 1:  # Gemm's C [M, N] or [1, N]: channels last
                params = AffineParams(params.scale, params.zero_point, 32, bias_rank - 1)
            return params
        return self._qformat(float(np.abs(self.constants[name]).max()), name)

    def _qformat(self, absmax: float, name: str) -> QFormat:
        """Q of a constant: full range, or LWNN's 9-bit choice for every q16 blob (weights and
        biases too, as LWNN's quantizer does) when ``q16_headroom="lwnn"``."""
        from lwnn.numerics.params import qformat_from_absmax

        if self.lwnn_headroom:
            return QFormat(qformat_from_absmax(absmax, 16, name=name).frac_bits - 7, 16)
        return qformat_from_absmax(absmax, self.bits, name=name)
