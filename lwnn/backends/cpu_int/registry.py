"""The integer kernel table: scheme family ("s8" or "qformat") -> op type -> kernel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lwnn.graph import Layer
from lwnn.numerics.params import scheme_of

INT_KERNELS: dict[str, dict[str, Callable]] = {"s8": {}, "qformat": {}}


@dataclass
class IntCall:
    """One integer layer execution: raw inputs with their parameters, and the output parameters.

    ``inputs[i]`` is a raw integer tensor for quantized inputs, the plain constant for inputs the
    op needs as is (shapes, axes, BatchNorm statistics). Kernels add the number of int32
    accumulator overflows they detect to ``overflow``.
    """

    layer: Layer
    inputs: list
    params: list
    out: list
    bits: int
    roles: list = field(default_factory=list)  # lwnn.numerics.roles roles of the inputs
    overflow: int = 0
    # Per-layer memo that lives as long as the quantized model (parameters never change there):
    # kernels keep derived constants in it (multipliers, tables, centred weights).
    cache: dict = field(default_factory=dict)

    def role(self, index: int) -> str:
        """Role of input ``index`` ("act" when the caller did not say)."""
        return self.roles[index] if index < len(self.roles) else "act"

    @property
    def family(self) -> str:
        """The kernel family of the call's scheme ("s8" or "qformat"), as its parameters say."""
        return self.out[0].family

    @property
    def affine(self) -> bool:
        """An s8 call (scale and zero point) rather than a q8/q16 one (power-of-two formats)."""
        return self.out[0].family == "s8"

    def memo(self, key, compute):
        """``compute()`` once per layer and key."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    @property
    def op(self):
        return self.layer.op


def int_kernel(family: str, *op_types: str):
    """Register the decorated function as the ``family`` kernel of ``op_types``."""

    def register(fn: Callable) -> Callable:
        for t in op_types:
            INT_KERNELS[family][t] = fn
        return fn

    return register


@dataclass(frozen=True)
class IntBinding:
    """One integer layer of a quantized model, bound once: its kernel, the parameters of its inputs
    (None for omitted inputs and for inputs it reads as they are) and outputs, the inputs' roles,
    and the kernel's memo of derived constants (``IntCall.cache``)."""

    kernel: Callable
    params: list
    out: list
    roles: tuple
    cache: dict


def kernel_for(scheme, layer: Layer) -> Callable | None:
    """The integer kernel that runs ``layer`` under ``scheme`` (a name or a ``Scheme``), or None
    (the layer falls back)."""
    return family_kernel(scheme_of(scheme).family, layer)


def family_kernel(family: str, layer: Layer) -> Callable | None:
    """The kernel of family ``family`` ("s8", "qformat") for ``layer``, or None."""
    fn = INT_KERNELS[family].get(layer.op_type)
    supports = getattr(fn, "supports", None)
    if fn is not None and supports is not None and not supports(layer):
        return None
    return fn
