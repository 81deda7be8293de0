"""Every error lwnn raises on purpose is an ``LwnnError``.

Messages name the layer, op or tensor involved and say what was expected versus what was
received, so a user can act on them without reading a traceback.
"""

from __future__ import annotations


class LwnnError(Exception):
    """Base class of all lwnn errors."""


class ModelFormatError(LwnnError):
    """The file or object is not a model lwnn can read (corrupt, truncated, wrong format)."""


class UnsupportedOpError(LwnnError):
    """An op, or an attribute value of an op, that lwnn does not implement."""


class ShapeError(LwnnError):
    """A tensor has a shape that the model or an op cannot accept."""


class FeedError(LwnnError):
    """The feeds given to ``run`` do not match the model's inputs (names or dtypes)."""


class CalibrationError(LwnnError):
    """Calibration data cannot produce a valid quantization."""


class BackendUnavailable(LwnnError):
    """The requested backend is unknown or cannot run on this machine."""


class KernelError(LwnnError):
    """A kernel produced a result that contradicts the op's shape inference (an lwnn bug)."""


class MemoryLimitError(LwnnError):
    """A tensor the model would create is larger than lwnn's memory limit (``lwnn.set_memory_limit``)."""
