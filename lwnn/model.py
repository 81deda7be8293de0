"""``Model``: an imported graph plus the user-facing run API."""

from __future__ import annotations

import numpy as np

from lwnn.backends import get_runtime
from lwnn.engine import Plan, Recording, build_plan, check_shape, run_float
from lwnn.errors import FeedError
from lwnn.graph import Graph, Layer, _preview


class Model:
    """A float model: ``inputs``/``outputs`` ({name: shape}), ``layers`` and ``run``."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self._plans: dict[tuple, Plan] = {}

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def inputs(self) -> dict[str, tuple]:
        """Input names and shapes; ``None`` marks a dimension the model leaves free. Optional
        inputs (with a default value in the model) come after the required ones."""
        return {n: spec.shape for n, spec in self.graph.inputs.items()}

    @property
    def outputs(self) -> dict[str, tuple | None]:
        """Output names and declared shapes (``None`` where the source format gives none)."""
        specs = self.graph.output_specs
        return {n: specs[n].shape if n in specs else None for n in self.graph.outputs}

    @property
    def layers(self) -> list[Layer]:
        """Layers in execution order (name, op_type, inputs, outputs, op attributes)."""
        return list(self.graph.layers)

    def __repr__(self) -> str:
        ins = ", ".join(f"{n}: {s.describe()}" for n, s in self.graph.inputs.items())
        return f"<lwnn.Model {self.name!r}: {len(self.graph.layers)} layers, inputs {ins}>"

    def check_feeds(self, feeds: dict) -> dict[str, np.ndarray]:
        """Validate names, dtypes and shapes of ``feeds``; return them as arrays of the declared dtype."""
        if not isinstance(feeds, dict):
            raise FeedError(
                f"Feeds must be a dict {{input name: array}} for inputs {list(self.inputs)}. "
                f"Received {type(feeds).__name__}."
            )
        expected = self.graph.inputs
        missing = [n for n, spec in expected.items() if n not in feeds and not spec.optional]
        extra = [n for n in feeds if n not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unexpected {extra}")
            raise FeedError(
                f"Feeds do not match the inputs of model {self.name!r}: {'; '.join(parts)}. "
                f"Expected inputs: {_preview(list(expected))}."
            )
        arrays = {}
        for name, spec in expected.items():
            if name not in feeds:  # an optional input: its default, planned as a constant
                continue
            value = np.asarray(feeds[name])
            want = np.dtype(spec.dtype)
            if value.dtype.kind not in _COMPATIBLE_KINDS.get(want.kind, want.kind):
                raise FeedError(
                    f"Input {name!r} expects dtype {want.name}. Received dtype {value.dtype.name}."
                )
            check_shape(name, spec.shape, value.shape)
            array = np.ascontiguousarray(value, dtype=want)
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                # Past a NaN or an inf, what max/min/ReLU make of it differs between runtimes
                # (ONNX leaves it open), and no quantization can represent it.
                nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
                first = np.unravel_index(int(np.flatnonzero(~np.isfinite(array))[0]), array.shape)
                where = tuple(int(i) for i in first)
                raise FeedError(f"Input {name!r} has {nan} NaN and {inf} Inf values out of {array.size} "
                                f"(the first at index {where}). lwnn runs finite inputs.")
            arrays[name] = array
        return arrays

    def plan(self, input_shapes: dict[str, tuple]) -> Plan:
        """The graph specialised to these input shapes (cached)."""
        key = tuple(sorted((n, tuple(s)) for n, s in input_shapes.items()))
        if key not in self._plans:
            self._plans[key] = build_plan(self.graph, dict(key))
        return self._plans[key]

    def run(self, feeds: dict, backend: str = "cpu", record: bool = False) -> dict | Recording:
        """Run on ``feeds``. Returns {output name: array}, or with ``record=True`` a
        ``Recording`` of every tensor by name and the runtime that executed each layer."""
        runtime = get_runtime(backend)
        arrays = self.check_feeds(feeds)
        plan = self.plan({n: a.shape for n, a in arrays.items()})
        return run_float(plan, arrays, runtime, record)


# A feed may differ in precision from the declared dtype (float64 for float32), not in kind.
_COMPATIBLE_KINDS = {"f": "f", "i": "iu", "u": "iu", "b": "b"}
