"""lwnn: a workbench for running and quantizing neural networks for edge devices.

    import lwnn
    m = lwnn.load("model.onnx")
    y = m.run({"x": x})                      # CPU float reference
    rec = m.run({"x": x}, record=True)       # every tensor by name, and who ran each layer
    table = lwnn.compare(m, lwnn.quantize(m, calib), {"x": x})   # per-layer error against float
"""

from lwnn.comparison import Comparison, LayerRow, compare
from lwnn.engine import Recording
from lwnn.errors import (
    BackendUnavailable,
    CalibrationError,
    FeedError,
    KernelError,
    LwnnError,
    MemoryLimitError,
    ModelFormatError,
    ShapeError,
    UnsupportedOpError,
)
from lwnn.graph import Graph, Layer, TensorSpec
from lwnn.loader import load
from lwnn.memory import memory_limit, set_memory_limit
from lwnn.model import Model
from lwnn.quant.qmodel import QuantizedModel
from lwnn.quant.quantize import quantize
from lwnn.tolerance import Approx, ClaimError, approx, leaders

__version__ = "0.1.0"

__all__ = [
    "Approx", "BackendUnavailable", "CalibrationError", "ClaimError", "Comparison", "FeedError", "Graph",
    "KernelError", "Layer", "LayerRow", "LwnnError", "MemoryLimitError", "Model", "ModelFormatError",
    "QuantizedModel", "Recording", "ShapeError", "TensorSpec", "UnsupportedOpError", "approx", "compare",
    "leaders", "load", "memory_limit", "quantize", "set_memory_limit",
]
