"""Every op lwnn knows, defined once: attributes (frozen dataclass) and shape inference.

``OPS`` maps op type names to op classes; backends register kernels for these names.
"""

from lwnn.ops import conv, elementwise, pool, shape  # noqa: F401  (fills OPS)
from lwnn.ops.base import OPS, Op

__all__ = ["OPS", "Op"]
