"""Quantization parameters: values that travel with tensors (docs/architecture.md, "Quantization schemes").

Two schemes, each with one rounding rule for turning floats into integers:

* ``AffineParams`` (s8, TFLite int8): ``real = scale * (q - zero_point)``, per tensor or per
  channel along ``axis``. Floats are rounded **half away from zero**, as TFLite's reference
  ``AffineQuantize`` and its weight/bias quantizers do (``TfLiteRound`` is ``std::round``); the
  integer rescale of the same scheme (gemmlowp ``RoundingDivideByPOT``) rounds ties the same way.
  onnxruntime's ``QuantizeLinear`` rounds ties to even instead; the two differ only on exact ties.
* ``QFormat`` (q8/q16, CMSIS-NN legacy q7/q15): ``real = q * 2**-frac_bits``, no zero offset.
  Floats are rounded **half up** (``floor(v + 1/2)``), the rule of CMSIS ``NN_ROUND`` in the
  integer kernels, so quantizing a value and right-shifting an exact fixed-point value agree.

Both saturate out-of-range values to ``[qmin, qmax]``. Invalid parameters raise
``CalibrationError`` saying what was expected and what was received.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwnn.errors import CalibrationError, FeedError
from lwnn.numerics.rounding import round_half_away, round_half_up

BITS = (8, 16, 32)


@dataclass(frozen=True)
class Scheme:
    """An integer scheme (docs/architecture.md, "Quantization schemes"): its name, the bits of its
    activations, and its kernel family — "s8" (TFLite int8, ``AffineParams``) or "qformat"
    (CMSIS-NN q7/q15, ``QFormat``), the family whose kernels run it. Code asks a scheme what it
    is (``scheme.affine``, ``scheme.bits``) instead of comparing names."""

    name: str
    bits: int
    family: str

    @property
    def affine(self) -> bool:
        """Scale and zero point (s8) rather than a power-of-two format (q8, q16)."""
        return self.family == "s8"

    def __str__(self) -> str:
        return self.name


S8, Q8, Q16 = Scheme("s8", 8, "s8"), Scheme("q8", 8, "qformat"), Scheme("q16", 16, "qformat")
_SCHEMES = {s.name: s for s in (S8, Q8, Q16)}
SCHEMES = tuple(_SCHEMES)  # the names users pass, in this order everywhere
SCHEME_BITS = {s.name: s.bits for s in _SCHEMES.values()}


def scheme_of(scheme: str | Scheme) -> Scheme:
    """The ``Scheme`` named ``scheme`` (a Scheme is returned as it is); CalibrationError names
    the known ones."""
    if isinstance(scheme, Scheme):
        return scheme
    try:
        return _SCHEMES[scheme]
    except (KeyError, TypeError):
        raise CalibrationError(f"Unknown scheme {scheme!r}. Expected one of {', '.join(SCHEMES)}.") from None

_DTYPES = {8: np.int8, 16: np.int16, 32: np.int32}
# Below this a float32 scale is subnormal (or zero); onnxruntime's quantizer uses 1.0 instead.
_TINY = float(np.finfo(np.float32).tiny)


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or int(bits) not in BITS:
        raise CalibrationError(f"Quantization bits must be one of {BITS}. Received: {bits!r}.")
    return int(bits)


def _first_bad(values: np.ndarray, bad: np.ndarray) -> str:
    idx = np.flatnonzero(bad)
    where = f" at channel {int(idx[0])}" if values.ndim else ""
    return f"{values.reshape(-1)[idx[0]]!r}{where} ({idx.size} of {values.size} values)"


def _check_finite(x: np.ndarray, what: str) -> None:
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = ~np.isfinite(x)
        raise FeedError(
            f"Cannot quantize {what}: expected finite values. Received {int(bad.sum())} NaN/Inf "
            f"of {x.size} values."
        )


class _Codes:
    """The signed codes of ``bits`` bits that both parameter types quantize to; ``narrow_range``
    drops the lowest (symmetric int8 weights use [-127, 127])."""

    bits: int
    narrow_range: bool = False

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) + int(bool(self.narrow_range))

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def dtype(self) -> type[np.signedinteger]:
        """The integer type the device stores these values in."""
        return _DTYPES[self.bits]


@dataclass(frozen=True, eq=False, repr=False)
class AffineParams(_Codes):
    """s8-style affine parameters: ``real = scale * (q - zero_point)``.

    ``scale`` (float32) and ``zero_point`` (int32) are 0-d for a per-tensor quantization, or 1-D
    with one entry per channel of dimension ``axis``. ``narrow_range`` drops the most negative
    code (TFLite's symmetric weights use ``[-127, 127]``).
    """

    family: ClassVar[str] = "s8"  # the kernel family of the scheme these parameters belong to (Scheme)
    scale: np.ndarray
    zero_point: np.ndarray
    bits: int = 8
    axis: int | None = None
    narrow_range: bool = False

    def __post_init__(self) -> None:
        bits = _check_bits(self.bits)
        scale = np.array(self.scale, dtype=np.float32)
        if self.axis is None:
            if scale.size != 1:
                raise CalibrationError(
                    "A per-tensor AffineParams (axis=None) expects one scale. "
                    f"Received {scale.size} scales; pass axis= for per-channel parameters."
                )
            scale = scale.reshape(())
        elif scale.ndim != 1 or scale.size == 0:
            raise CalibrationError(
                f"A per-channel AffineParams (axis={self.axis}) expects a 1-D array of scales. "
                f"Received shape {scale.shape}."
            )
        bad = ~(np.isfinite(scale) & (scale > 0))
        if bad.any():
            raise CalibrationError(
                f"Quantization scale must be finite and > 0. Received {_first_bad(scale, bad)}."
            )
        zp = np.asarray(self.zero_point)
        if zp.dtype.kind not in "iuf" or (zp.dtype.kind == "f" and not np.all(zp == np.round(zp))):
            raise CalibrationError(f"Zero point must be an integer. Received {zp!r}.")
        if zp.size == 1:
            zp = zp.reshape(())
        try:
            zp = np.broadcast_to(zp.astype(np.int64), scale.shape)
        except ValueError:
            raise CalibrationError(
                f"Zero points must be one value or one per channel ({scale.size}). "
                f"Received shape {zp.shape}."
            ) from None
        object.__setattr__(self, "bits", bits)
        lo, hi = self.qmin, self.qmax
        bad = (zp < lo) | (zp > hi)
        if bad.any():
            raise CalibrationError(
                f"Zero point must lie in [{lo}, {hi}] for {bits}-bit "
                f"{'narrow-range ' if self.narrow_range else ''}quantization. "
                f"Received {_first_bad(zp, bad)}."
            )
        scale.setflags(write=False)
        zp = zp.astype(np.int32)  # a fresh copy, so freezing it freezes nobody else's array
        zp.setflags(write=False)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zp)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    def _along(self, values: np.ndarray, ndim: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """``values`` reshaped to broadcast along ``axis`` of a rank-``ndim`` tensor."""
        if self.axis is None:
            return values
        if not -ndim <= self.axis < ndim:
            raise CalibrationError(
                f"Per-channel parameters along axis {self.axis} need a tensor of rank > {self.axis}. "
                f"Received rank {ndim}."
            )
        axis = self.axis % ndim
        if shape is not None and shape[axis] != values.size:
            raise CalibrationError(
                f"Per-channel parameters have {values.size} channels along axis {self.axis}. "
                f"Received a tensor of shape {tuple(shape)}."
            )
        return values.reshape([values.size if d == axis else 1 for d in range(ndim)])

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float -> integer codes of ``dtype``: round half away from zero, then saturate."""
        x = np.asarray(x)
        _check_finite(x, "a tensor")
        scale = self._along(self.scale.astype(np.float64), x.ndim, x.shape)
        zp = self._along(self.zero_point.astype(np.float64), x.ndim)
        # float64 so that 32-bit bias codes and ties are computed exactly from the float32 inputs.
        q = round_half_away(x.astype(np.float64) / scale) + zp
        return np.clip(q, self.qmin, self.qmax).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Integer codes -> float32 ``scale * (q - zero_point)`` (computed in float64, as TFLite)."""
        q = np.asarray(q)
        scale = self._along(self.scale.astype(np.float64), q.ndim, q.shape)
        zp = self._along(self.zero_point.astype(np.int64), q.ndim)
        return (scale * (q.astype(np.int64) - zp)).astype(np.float32)

    def activation_range(self, lo: float | None = None, hi: float | None = None) -> tuple[int, int]:
        """Integer clamp bounds for a fused activation clipping reals to ``[lo, hi]``.

        As TFLite's ``CalculateActivationRangeQuantized``, in float32 as it computes:
        ``clamp(zero_point + round(bound / scale), qmin, qmax)``. ReLU is ``lo=0`` (clamps at the
        zero point), ReLU6 ``lo=0, hi=6``; ``None`` or an infinite bound leaves that side at
        ``qmin``/``qmax``. The s8 kernels (CPU and OpenCL) clamp with exactly these bounds.
        """
        if self.per_channel:
            raise CalibrationError("activation_range needs per-tensor parameters. Received axis="
                                   f"{self.axis}.")

        def code(bound, default: int) -> int:
            if bound is None or not np.isfinite(bound):
                return default
            steps = float(round_half_away(np.float32(bound) / np.float32(self.scale)))
            return int(np.clip(int(self.zero_point) + steps, self.qmin, self.qmax))

        return code(lo, self.qmin), code(hi, self.qmax)

    def to_dict(self) -> dict:
        """JSON-ready description; ``from_dict`` restores it exactly (float32 scales round-trip)."""
        return {"scheme": "affine", "scale": self.scale.tolist(), "zero_point": self.zero_point.tolist(),
                "bits": self.bits, "axis": self.axis, "narrow_range": bool(self.narrow_range)}

    @classmethod
    def from_dict(cls, d: dict) -> AffineParams:
        return cls(np.array(d["scale"], dtype=np.float32), np.array(d["zero_point"]), d["bits"],
                   d["axis"], d.get("narrow_range", False))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AffineParams):
            return NotImplemented
        return (self.bits, self.axis, self.narrow_range) == (other.bits, other.axis, other.narrow_range) \
            and np.array_equal(self.scale, other.scale) and np.array_equal(self.zero_point, other.zero_point)

    def __hash__(self) -> int:
        return hash((self.scale.tobytes(), self.zero_point.tobytes(), self.bits, self.axis,
                     self.narrow_range))

    def __repr__(self) -> str:
        extra = f", axis={self.axis}" if self.per_channel else ""
        extra += ", narrow_range=True" if self.narrow_range else ""
        if self.per_channel:
            s, z = self.scale, self.zero_point
            scale = f"[{s.size} channels, {s.min():.4g}..{s.max():.4g}]"
            zp = str(int(z[0])) if np.all(z == z[0]) else f"[{z.min()}..{z.max()}]"
        else:
            scale, zp = f"{float(self.scale):.6g}", str(int(self.zero_point))
        return f"AffineParams(scale={scale}, zero_point={zp}, bits={self.bits}{extra})"


def _named(name: str | None, err: CalibrationError) -> CalibrationError:
    return CalibrationError(f"Tensor {name!r}: {err}") if name else err


def _check_range_values(values: np.ndarray, what: str, name: str | None) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise _named(name, CalibrationError(f"{what} must be finite. Received {_first_bad(values, bad)}."))


def affine_from_range(
    lo, hi, bits: int = 8, axis: int | None = None, *, name: str | None = None
) -> AffineParams:
    """Asymmetric parameters covering ``[lo, hi]`` (activations), as TFLite chooses them.

    The range is widened to include 0 and the zero point is nudged to an integer in
    ``[qmin, qmax]``, so real 0 (padding, ReLU) is exactly representable; the zero point comes
    from whichever end of the range gives the smaller rounding error (TFLite's
    ``ChooseQuantizationParams``). A zero range (all-zero tensor) gets scale 1.0 and zero point 0,
    as onnxruntime's quantizer does: every value is 0, which any scale represents exactly.
    ``lo``/``hi`` may be per-channel arrays (with ``axis``).
    """
    bits = _check_bits(bits)
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    _check_range_values(lo, "Range minimum", name)
    _check_range_values(hi, "Range maximum", name)
    if np.any(lo > hi):
        raise _named(name, CalibrationError(
            f"Range minimum must not exceed the maximum. Received [{lo!r}, {hi!r}]."))
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    rmin, rmax = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    scale = (rmax - rmin) / (qmax - qmin)
    zero_range = scale.astype(np.float32) < _TINY
    scale = np.where(zero_range, 1.0, scale)
    zp_from_min = qmin - rmin / scale
    zp_from_max = qmax - rmax / scale
    from_min_err = abs(qmin) + np.abs(rmin / scale)
    from_max_err = abs(qmax) + np.abs(rmax / scale)
    zp = np.where(from_min_err < from_max_err, zp_from_min, zp_from_max)
    zp = np.clip(round_half_away(zp), qmin, qmax)
    zp = np.where(zero_range, 0.0, zp)
    try:
        return AffineParams(scale, zp.astype(np.int64), bits, axis)
    except CalibrationError as err:
        raise _named(name, err) from None


def symmetric_from_absmax(
    absmax, bits: int = 8, axis: int | None = None, *, name: str | None = None
) -> AffineParams:
    """Symmetric parameters (weights): zero point 0, codes ``[-(2^(bits-1)-1), 2^(bits-1)-1]``.

    ``scale = absmax / 127`` for 8 bits, per channel along ``axis`` when ``absmax`` is an array.
    An all-zero channel gets scale 1.0 (as onnxruntime's quantizer; its codes are all 0).
    """
    bits = _check_bits(bits)
    absmax = np.asarray(absmax, dtype=np.float64)
    _check_range_values(absmax, "Absolute maximum", name)
    if np.any(absmax < 0):
        raise _named(name, CalibrationError(f"Absolute maximum must be >= 0. Received {absmax!r}."))
    scale = absmax / ((1 << (bits - 1)) - 1)
    scale = np.where(scale.astype(np.float32) < _TINY, 1.0, scale)
    try:
        return AffineParams(scale, np.zeros(scale.shape, np.int64), bits, axis, narrow_range=True)
    except CalibrationError as err:
        raise _named(name, err) from None


def bias_params(x: AffineParams, w: AffineParams) -> AffineParams:
    """int32 bias parameters of a conv/dense layer: ``scale = s_in * s_w[c]``, zero point 0.

    The product is taken in float32, as TFLite's and onnxruntime's quantizers store it. The
    result is per channel (``axis=0`` of the 1-D bias) when the weights are.
    """
    if x.per_channel:
        raise CalibrationError(f"Bias parameters need a per-tensor input scale. Received {x!r}.")
    scale = x.scale * w.scale  # float32 x float32 -> float32
    return AffineParams(scale, np.zeros(scale.shape, np.int64), 32, 0 if w.per_channel else None)


@dataclass(frozen=True)
class QFormat(_Codes):
    """q8/q16 power-of-two format: ``real = q * 2**-frac_bits``, symmetric, no zero offset.

    ``frac_bits`` (the ``Q`` of docs/architecture.md) may be negative: then each step is ``2**-frac_bits``
    > 1. Codes saturate to ``[-2^(bits-1), 2^(bits-1)-1]`` (CMSIS ``__SSAT``).
    """

    family: ClassVar[str] = "qformat"
    frac_bits: int
    bits: int = 8

    def __post_init__(self) -> None:
        q = self.frac_bits
        if isinstance(q, bool) or not isinstance(q, int | np.integer):
            raise CalibrationError(f"QFormat frac_bits must be an integer. Received {q!r}.")
        object.__setattr__(self, "frac_bits", int(q))
        object.__setattr__(self, "bits", _check_bits(self.bits))

    @property
    def step(self) -> float:
        """The real value of one LSB, ``2**-frac_bits``."""
        return math.ldexp(1.0, -self.frac_bits)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float -> codes: ``floor(x * 2**Q + 1/2)`` (round half up, as ``NN_ROUND``), saturated."""
        x = np.asarray(x)
        _check_finite(x, "a tensor")
        q = round_half_up(np.ldexp(x.astype(np.float64), self.frac_bits))  # ldexp is exact
        return np.clip(q, self.qmin, self.qmax).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Codes -> float32 ``q * 2**-Q``."""
        return np.ldexp(np.asarray(q).astype(np.float64), -self.frac_bits).astype(np.float32)

    def to_dict(self) -> dict:
        return {"scheme": "qformat", "frac_bits": self.frac_bits, "bits": self.bits}

    @classmethod
    def from_dict(cls, d: dict) -> QFormat:
        return cls(d["frac_bits"], d["bits"])


def qformat_from_absmax(absmax: float, bits: int = 8, *, name: str | None = None) -> QFormat:
    """The full-range Q (docs/architecture.md, "Quantization schemes"): ``Q = (bits-1) - ceil(log2(absmax))``.

    An all-zero tensor (``absmax == 0``) gets ``Q = bits-1`` (range about +-1): any Q represents
    0 exactly, and this one keeps shifts small.
    """
    bits = _check_bits(bits)
    a = float(absmax)
    if not math.isfinite(a) or a < 0:
        raise _named(name, CalibrationError(
            f"Absolute maximum must be finite and >= 0. Received {absmax!r}."))
    if a == 0:
        return QFormat(bits - 1, bits)
    return QFormat(frac_bits_for(a, bits), bits)


def frac_bits_for(absmax: float, bits: int) -> int:
    """LWNN's Q for a range of ``absmax``: ``(bits-1) - ceil(log2(absmax))``, exact at powers of 2."""
    if not absmax > 0 or not math.isfinite(absmax):
        raise CalibrationError(f"Expected a finite range > 0 for a Q format. Received {absmax!r}.")
    # ceil(log2) from the exact exponent: math.log2 can round 2**k * (1 + eps) down to k.
    mantissa, exponent = math.frexp(absmax)  # absmax = mantissa * 2**exponent, mantissa in [0.5, 1)
    return (bits - 1) - (exponent - 1 if mantissa == 0.5 else exponent)
