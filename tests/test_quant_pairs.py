"""int8 binary kernels read from a table of every code pair (lwnn.backends.cpu_int.pairs) give
exactly the integers of the direct kernels (which tests/test_s8.py and tests/test_qformat.py check
against onnxruntime and independent integer references), with broadcasting, for every op."""

from __future__ import annotations

import numpy as np
import pytest

from lwnn.backends.cpu_int import IntCall, qformat, s8
from lwnn.backends.cpu_int.pairs import MIN_SIZE
from lwnn.graph import Layer
from lwnn.numerics.params import AffineParams, QFormat
from lwnn.ops import elementwise as ew

OPS = {"Add": ew.Add(), "Sub": ew.Sub(), "Mul": ew.Mul()}
SHAPES = [((2, 8, 16, 16), (2, 8, 16, 16)), ((2, 8, 16, 16), (1, 8, 1, 1)), ((1, 8, 1, 1), (2, 8, 16, 16))]


def params_for(scheme: str, rng, i: int):
    if scheme == "s8":
        return AffineParams(rng.uniform(0.005, 0.2), int(rng.integers(-100, 100)))
    return QFormat(int(rng.integers(-2, 8)) + i % 2, 8)


@pytest.mark.parametrize("scheme", ["s8", "q8"])
@pytest.mark.parametrize("op_type", list(OPS))
@pytest.mark.parametrize("shapes", SHAPES)
def test_pair_table_equals_the_direct_kernel(scheme, op_type, shapes):
    rng = np.random.default_rng(sum(map(ord, f"{scheme}{op_type}{shapes}")))  # fixed per case
    module = s8 if scheme == "s8" else qformat
    a, b = (rng.integers(-128, 128, s).astype(np.int8) for s in shapes)
    assert max(a.size, b.size) >= MIN_SIZE  # the table path is taken
    for trial in range(3):
        pa, pb, out = (params_for(scheme, rng, trial + i) for i in range(3))
        layer = Layer(op_type.lower(), OPS[op_type], ("a", "b"), ("y",))
        call = IntCall(layer, [a, b], [pa, pb], [out], 8)
        compute = module._mul if op_type == "Mul" else module._add
        direct = compute(IntCall(layer, [a, b], [pa, pb], [out], 8), a, b)
        got = module.mul(call) if op_type == "Mul" else module.add(call)
        assert got.dtype == direct.dtype == np.int8 and got.shape == direct.shape
        np.testing.assert_array_equal(got, direct)
        assert "pair table" in call.cache
