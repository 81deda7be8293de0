"""Deprecated: moved to ``lwnn.zoo.datasets`` with the other demo and data modules
(docs/architecture.md, "Layers"). This alias will be removed in a later version."""

import sys
import warnings

from lwnn.zoo import datasets as _moved

warnings.warn(f"{__name__} moved to {_moved.__name__}; import it from there.", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = _moved
