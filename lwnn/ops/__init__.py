"""Every op lwnn knows, defined once: attributes (frozen dataclass) and shape inference.

``OPS`` maps op type names to op classes; backends register kernels for these names.
"""

from lwnn.ops import audio, conv, detection, elementwise, pool, recurrent, shape  # noqa: F401  (fills OPS)
from lwnn.ops.base import OPS, Op, op_types

__all__ = ["OPS", "Op", "op_types"]
