"""``lwnn.quantize``: calibrate a float model and assign every tensor its integer parameters."""

from __future__ import annotations

import numpy as np

from lwnn.errors import CalibrationError
from lwnn.graph import Layer
from lwnn.quant import rules
from lwnn.quant.observers import TensorObserver, observe
from lwnn.quant.params import AffineParams, QFormat, affine_from_range, bias_params, symmetric_from_absmax
from lwnn.quant.ranges import METHODS, choose_frac_bits, choose_range

SCHEMES = ("s8", "q8", "q16")
LAYER_MODES = ("float", *SCHEMES)


def quantize(
    model,
    calib_feeds,
    scheme: str = "s8",
    method: str = "minmax",
    *,
    per_channel: bool = True,
    layers: dict[str, str] | None = None,
    q16_headroom: str = "full",
    batch_size: int | None = None,
    progress: bool = True,
    **method_options,
):
    """Calibrate ``model`` on ``calib_feeds`` and return a ``QuantizedModel``.

    ``scheme``: ``s8`` (TFLite int8), ``q8`` or ``q16`` (power-of-two Q formats).
    ``method``: ``minmax``, ``percentile``, ``kl`` or ``mse`` (options such as ``percentile=``,
    ``kl_bins=`` are passed to ``lwnn.quant.ranges``). ``per_channel``: s8 weights per output
    channel. ``layers``: {layer name: "float"} keeps those layers in float (mixed precision).
    ``q16_headroom``: ``full`` (``Q = 15 - int_bits``) or ``lwnn`` (LWNN's ``Q = 8 - int_bits``,
    7 bits of headroom against int32 overflow). ``calib_feeds``: a dict of arrays (first axis =
    samples) or an iterable of feed dicts.
    """
    if scheme not in SCHEMES:
        raise CalibrationError(f"Unknown scheme {scheme!r}. Expected one of {SCHEMES}.")
    if method not in METHODS:
        raise CalibrationError(f"Unknown calibration method {method!r}. Expected one of {METHODS}.")
    if q16_headroom not in ("full", "lwnn"):
        raise CalibrationError(f"q16_headroom must be 'full' or 'lwnn'. Received {q16_headroom!r}.")
    layer_modes = _check_layer_modes(model, layers or {}, scheme)
    observers = observe(model, calib_feeds, progress=progress, batch_size=batch_size)
    assigner = _ParamAssigner(model, scheme, method, per_channel, q16_headroom, observers, method_options)
    params = assigner.assign(layer_modes)
    from lwnn.quant.qmodel import QuantizedModel

    config = dict(scheme=scheme, method=method, per_channel=per_channel, q16_headroom=q16_headroom,
                  layers=dict(layers or {}), method_options=method_options)
    return QuantizedModel(model, scheme, params, layer_modes, config, observers)


def _check_layer_modes(model, layers: dict[str, str], scheme: str) -> dict[str, str]:
    names = {layer.name for layer in model.layers}
    for name, mode in layers.items():
        if name not in names:
            model.graph.layer(name)  # raises with the list of layer names
        if mode not in ("float", scheme):
            raise CalibrationError(
                f"Layer {name!r}: mode {mode!r} is not supported yet. Expected 'float' or {scheme!r} "
                "(mixing two integer schemes in one model is not implemented)."
            )
    return {layer.name: layers.get(layer.name, scheme) for layer in model.layers}


class _ParamAssigner:
    """Walks the layers in order and gives each quantized tensor its parameters."""

    def __init__(self, model, scheme, method, per_channel, q16_headroom, observers, options):
        self.model, self.scheme, self.method = model, scheme, method
        self.per_channel, self.q16_headroom = per_channel, q16_headroom
        self.observers, self.options = observers, options
        self.constants = model.graph.constants
        self.bits = 16 if scheme == "q16" else 8
        self.params: dict[str, AffineParams | QFormat] = {}

    def assign(self, layer_modes: dict[str, str]) -> dict:
        for layer in self.model.layers:
            if not self._is_float_layer(layer):
                continue  # integer shape computations are folded, never quantized
            roles = rules.input_roles(layer, self.constants)
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
        return self.params

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
        if self.scheme == "s8":
            choice = choose_range(obs, self.method, bits=8, **self.options)
            return affine_from_range(choice.lo, choice.hi, 8, name=name)
        bits = 9 if self.scheme == "q16" and self.q16_headroom == "lwnn" else self.bits
        q = choose_frac_bits(obs, self.method, bits, **self.options)
        return QFormat(q, self.bits)

    def _output(self, layer: Layer, name: str):
        fixed = rules.fixed_output(layer, self.scheme)
        if fixed is not None:
            return fixed
        if rules.same_as_input(layer) and layer.inputs[0] in self.params:
            return self.params[layer.inputs[0]]
        return self._activation(name)

    def _weight(self, layer: Layer, name: str):
        w = np.asarray(self.constants[name], np.float64)
        if self.scheme == "s8":
            axis = rules.weight_channel_axis(layer) % w.ndim
            if self.per_channel and self._per_channel_possible(layer, w):
                reduce = tuple(d for d in range(w.ndim) if d != axis)
                absmax = np.maximum(np.abs(w).max(axis=reduce), self._bias_floor(layer, per_channel=True))
                return symmetric_from_absmax(absmax, 8, axis, name=name)
            absmax = max(float(np.abs(w).max()), float(np.max(self._bias_floor(layer, per_channel=False))))
            return symmetric_from_absmax(absmax, 8, name=name)
        return self._qformat(float(np.abs(w).max()), name)

    def _bias_floor(self, layer: Layer, per_channel: bool) -> np.ndarray | float:
        """Smallest weight absmax that keeps the int32 bias ``b / (s_x * s_w)`` within 2^30.

        A channel with near-zero weights but a real bias would otherwise get a bias code beyond
        int32 (TFLite's quantizer widens such weight scales too); 2^30 leaves the accumulation
        a bit of room."""
        roles = rules.input_roles(layer, self.constants)
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
        if layer.op_type == "ConvTranspose" and layer.op.group > 1:
            return False  # axis 1 of a grouped deconv weight is per group, not per output channel
        if layer.op_type == "MatMul" and w.ndim < 2:
            return False  # a vector B has no output-channel axis
        if layer.op_type == "Dense" and len(layer.inputs) > 2 and layer.inputs[2] in self.constants:
            c = np.asarray(self.constants[layer.inputs[2]])
            channels = w.shape[rules.weight_channel_axis(layer) % w.ndim]
            return c.ndim >= 1 and c.shape[-1] == channels  # one bias per output column
        return True

    def _bias(self, layer: Layer, name: str):
        x, w = self.params[layer.inputs[0]], self.params[layer.inputs[1]]
        if self.scheme == "s8":
            params = bias_params(x, w)
            bias_rank = np.ndim(self.constants[name])
            if params.per_channel and bias_rank > 1:  # Gemm's C [M, N] or [1, N]: channels last
                params = AffineParams(params.scale, params.zero_point, 32, bias_rank - 1)
            return params
        return self._qformat(float(np.abs(self.constants[name]).max()), name)

    def _qformat(self, absmax: float, name: str) -> QFormat:
        """Q of a constant: full range, or LWNN's 9-bit choice for every q16 blob (weights and
        biases too, as LWNN's quantizer does) when ``q16_headroom="lwnn"``."""
        from lwnn.quant.params import qformat_from_absmax

        if self.scheme == "q16" and self.q16_headroom == "lwnn":
            return QFormat(qformat_from_absmax(absmax, 16, name=name).frac_bits - 7, 16)
        return qformat_from_absmax(absmax, self.bits, name=name)
