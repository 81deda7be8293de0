"""Argument checks of the public entry points, each rule written once.

``lwnn.quantize``, ``observe``, the range choice (``lwnn.quant.ranges``), ``lwnn.compare``, the
studies, ``calibration_sweep``, ``build_report`` and the command line check their arguments with
these functions before doing any work. A bad argument raises an ``LwnnError`` (a
``CalibrationError`` for calibration and quantization options) that names the argument, says what
it expects and what it received; an unknown keyword lists the valid ones and suggests the closest.

Types: booleans are ``True``/``False`` (or NumPy booleans), never strings or numbers; integers
are ``int`` or NumPy integers, never floats (``2.0`` included) or booleans; numbers are ints or
floats, never booleans, strings or NaN. Checked values come back as plain Python values, so a
configuration holding them stays JSON-serialisable.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lwnn.errors import CalibrationError, LwnnError

METHODS = ("minmax", "percentile", "kl", "mse")  # calibration methods (lwnn.quant.ranges)

# --- messages --------------------------------------------------------------------------------


def received(value) -> str:
    """``value`` as an error message shows it: its repr (shortened) and its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def suggestion(name, valid: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the valid name closest to ``name``, or ``""``."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, [str(v) for v in valid], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_keywords(where: str, given: Iterable[str], valid: Sequence[str], error=CalibrationError) -> None:
    """Raise ``error`` for the first of ``given`` that is not in ``valid``, listing ``valid``."""
    for name in given:
        if name not in valid:
            raise error(f"{where}: unknown keyword argument {name!r}.{suggestion(name, valid)} "
                        f"Valid keywords: {', '.join(valid)}.")


def checks_call(error=LwnnError, where: str | None = None):
    """Decorator: a call that does not fit the function's signature (an unknown keyword, a
    missing argument, too many positional arguments) raises ``error`` listing the parameters,
    instead of Python's ``TypeError``. Keywords a ``**options`` parameter collects are the
    function's own business (it checks them with ``check_keywords``)."""

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        plain = signature.replace(  # as messages show it: names and defaults
            parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
            return_annotation=signature.empty)
        name = where or fn.__name__
        params = signature.parameters
        keywords = [p.name for p in params.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            try:
                signature.bind(*args, **kwargs)
            except TypeError as err:
                takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
                if not takes_any:
                    check_keywords(name, kwargs, keywords, error)
                raise error(f"{name}: {err}. Signature: {name}{plain}") from None
            return fn(*args, **kwargs)

        return checked

    return decorate


# --- value rules -----------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def check_bool(name: str, value, error=CalibrationError) -> bool:
    """``value`` as a bool; strings (``"no"``), numbers and None are refused."""
    if not isinstance(value, bool | np.bool_):
        raise error(f"{name} must be True or False. Received {received(value)}.")
    return bool(value)


def _bounds(lo, hi, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return ""


def _within(value, lo, hi, lo_open: bool, hi_open: bool) -> bool:
    if lo is not None and (value <= lo if lo_open else value < lo):
        return False
    return not (hi is not None and (value >= hi if hi_open else value > hi))


def check_int(name: str, value, *, lo: int | None = None, hi: int | None = None, none: bool = False,
              error=CalibrationError) -> int | None:
    """``value`` as an int within ``[lo, hi]`` (None allowed when ``none``). Floats (2.0 too),
    booleans and strings are refused; NumPy integers are accepted."""
    if value is None and none:
        return None
    bounds = _bounds(lo, hi, False, False)
    if not _is_int(value) or not _within(int(value), lo, hi, False, False):
        kind = "an integer" + (" or None" if none else "")
        rule = f"{name} must be {bounds} ({kind})" if bounds else f"{name} must be {kind}"
        raise error(f"{rule}. Received {received(value)}.")
    return int(value)


def check_number(name: str, value, *, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = False, error=CalibrationError) -> float:
    """``value`` as a float within the bounds; NaN, booleans and strings are refused."""
    bounds = _bounds(lo, hi, lo_open, hi_open)
    if not _is_number(value) or math.isnan(value) or not _within(float(value), lo, hi, lo_open, hi_open):
        rule = f"{name} must be {bounds} (a number)" if bounds else f"{name} must be a number (not NaN)"
        raise error(f"{rule}. Received {received(value)}.")
    return float(value)


def check_choice(name: str, value, choices: Sequence, *, what: str | None = None, error=CalibrationError):
    """``value`` if it is one of ``choices``; else "Unknown {what} ..." listing them."""
    try:
        ok = isinstance(value, str) and value in choices
    except TypeError:
        ok = False
    if not ok:
        raise error(f"Unknown {what or name} {value!r}. Expected one of {tuple(choices)}."
                    f"{suggestion(value, choices)}")
    return value


def check_choices(name: str, values, choices: Sequence, *, what: str | None = None,
                  error=CalibrationError) -> tuple:
    """A non-empty list or tuple of ``choices`` (a single string is refused: ``("s8",)``,
    not ``"s8"``), each checked by ``check_choice``; duplicates are refused."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise error(f"{name} must be a non-empty list or tuple of {tuple(choices)}. Received "
                    f"{received(values)}.")
    for v in values:
        check_choice(name, v, choices, what=what, error=error)
    if len(set(values)) != len(values):
        raise error(f"{name} lists a value twice. Received {tuple(values)!r}.")
    return tuple(values)


def check_counts(name: str, values, *, lo: int = 1, error=CalibrationError) -> tuple[int, ...]:
    """A non-empty list or tuple of integers >= ``lo``."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray) or len(values) == 0:
        raise error(f"{name} must be a non-empty list of integers >= {lo}. Received {received(values)}.")
    return tuple(check_int(f"{name}[{i}]", v, lo=lo, error=error) for i, v in enumerate(values))


# --- the options shared by several entry points ----------------------------------------------


def check_scheme(scheme, error=CalibrationError) -> str:
    """A scheme name (``s8``, ``q8``, ``q16``) or ``Scheme``, as its name."""
    from lwnn.numerics.params import SCHEMES, Scheme

    if isinstance(scheme, Scheme):
        scheme = scheme.name
    return check_choice("scheme", scheme, SCHEMES, what="scheme", error=error)


def check_method(method, name: str = "method", error=CalibrationError) -> str:
    """A calibration method: ``minmax``, ``percentile``, ``kl`` or ``mse``."""
    return check_choice(name, method, METHODS, what="calibration method" if name == "method" else name,
                        error=error)


def check_batch_size(batch_size) -> int | None:
    return check_int("batch_size", batch_size, lo=1, none=True)


def check_percentile(percentile) -> float:
    return check_number("percentile", percentile, lo=50, hi=100, lo_open=True)


def check_threshold_db(threshold_db, error=LwnnError) -> float:
    """An SQNR threshold in dB: any number but NaN (+-inf flag everything or nothing)."""
    return check_number("threshold_db", threshold_db, error=error)


@dataclass(frozen=True)
class MethodOption:
    """An option of the range choice: the methods that use it, the scheme families whose range
    functions take it (``s8``: ``choose_range``; ``qformat``: ``choose_frac_bits``), its rule."""

    methods: tuple[str, ...]
    families: tuple[str, ...]
    check: Callable


METHOD_OPTIONS: dict[str, MethodOption] = {
    "percentile": MethodOption(("percentile",), ("s8", "qformat"), check_percentile),
    "kl_bins": MethodOption(("kl",), ("s8", "qformat"), lambda v: check_int("kl_bins", v, lo=1)),
    "kl_levels": MethodOption(("kl",), ("s8",), lambda v: check_int("kl_levels", v, lo=2, none=True)),
    "mse_candidates": MethodOption(("mse",), ("s8",), lambda v: check_int("mse_candidates", v, lo=1)),
    "search": MethodOption(("kl", "mse"), ("qformat",), lambda v: check_int("search", v, lo=0, hi=64)),
}


def check_method_options(where: str, options: Mapping, *, methods: Iterable[str], schemes: Iterable[str],
                         other_keywords: Sequence[str] = ()) -> dict:
    """The range-choice ``options`` of a call that calibrates with ``methods`` under ``schemes``,
    checked and as plain values.

    Each must be a known option (else the error lists ``other_keywords`` and the options), be
    taken by the range function of one of the schemes' families, be used by one of the methods,
    and satisfy its rule."""
    from lwnn.numerics.params import scheme_of

    methods, schemes = tuple(dict.fromkeys(methods)), tuple(dict.fromkeys(schemes))
    check_keywords(where, options, [*other_keywords, *METHOD_OPTIONS])
    families = {scheme_of(s).family for s in schemes}
    out = {}
    for name, value in options.items():
        option = METHOD_OPTIONS[name]
        if not families & set(option.families):
            takes = [n for n, o in METHOD_OPTIONS.items() if families & set(o.families)]
            raise CalibrationError(
                f"{where}: {name} applies to the {' and '.join(option.families)} family of schemes only; "
                f"this call quantizes with {', '.join(schemes)}. Options for these schemes: "
                f"{', '.join(takes)}.")
        if not set(methods) & set(option.methods):
            used = [n for n, o in METHOD_OPTIONS.items() if set(methods) & set(o.methods)
                    and families & set(o.families)]
            raise CalibrationError(
                f"{where}: {name} is an option of method {' or '.join(map(repr, option.methods))}, "
                f"which this call does not use (methods {', '.join(map(repr, methods))}). Options of these "
                f"methods: {', '.join(used) or 'none'}.")
        out[name] = option.check(value)
    return out


def options_for(options: Mapping, *, methods: Iterable[str] | None = None,
                families: Iterable[str] | None = None) -> dict:
    """The subset of range-choice ``options`` that one of ``methods`` uses and that the range
    function of one of the scheme ``families`` takes (either filter may be left out)."""
    methods = None if methods is None else set(methods)
    families = None if families is None else set(families)
    return {k: v for k, v in options.items()
            if (families is None or families & set(METHOD_OPTIONS[k].families))
            and (methods is None or methods & set(METHOD_OPTIONS[k].methods))}


def check_model(where: str, model, error=LwnnError):
    """The float ``lwnn.Model`` an entry point starts from (a QuantizedModel is refused)."""
    from lwnn.quant.qmodel import QuantizedModel

    if isinstance(model, QuantizedModel) or not (hasattr(model, "graph") and hasattr(model, "layers")):
        raise error(f"{where} expects the float lwnn.Model first (lwnn.load). Received "
                    f"{type(model).__name__}.")
    return model
