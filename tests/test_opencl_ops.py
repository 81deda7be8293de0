"""Every op on OpenCL against the CPU float backend, over test_ops' attribute grid.

The grid itself lives in ``test_ops``: each of its op tests takes the ``backend`` fixture
(conftest.py) and runs once per backend, ``test_ops.py::test_conv2d[opencl-...]`` being the OpenCL
run (``pytest tests/test_ops.py -k opencl`` runs only those). The OpenCL oracle is lwnn's CPU float
backend (itself checked against onnxruntime by the "cpu" runs), within the float bound of
docs/architecture.md, "Float accuracy" (1e-5 relative, absolute below magnitude 1); each case also
checks that the layer ran on the device where the runtime has a kernel for it, and on the CPU (with
the copies recorded) where it does not (``opencl_helpers.check_op_on_opencl``).

This module checks that the grid really runs on the device.
"""

from __future__ import annotations

import functools
import inspect

import opencl_helpers
import pytest
import test_ops
from helpers import check_op

RNG_SEED = test_ops.RNG_SEED


@pytest.mark.parametrize("backend", ["opencl"], indirect=True)  # conftest's fixture, OpenCL only
def test_grid_takes_the_backend_and_runs_on_the_device(rng, backend, monkeypatch):
    """Every op test of the grid runs once per backend, and a conv of the grid runs on the device."""
    tests = {name: obj for name, obj in vars(test_ops).items() if name.startswith("test_") and callable(obj)}
    grid = {"test_conv2d", "test_conv_transpose2d", "test_gemm", "test_resize_linear", "test_pad"}
    assert grid <= set(tests)
    assert test_ops.CPU_ONLY <= set(tests)
    for name, test in tests.items():
        assert ("check" in inspect.signature(test).parameters) == (name not in test_ops.CPU_ONLY), name
    calls = []
    real = opencl_helpers.check_model_on_opencl

    def spy(model, feeds, rtol):
        rec, out = real(model, feeds, rtol)
        calls.append(dict(rec.executed_by))
        return rec, out

    monkeypatch.setattr(opencl_helpers, "check_model_on_opencl", spy)
    test_ops.test_conv2d(functools.partial(check_op, backend=backend), rng, 3, 2, "p1", 2, "grouped", True)
    assert calls == [{"conv0": "opencl/float"}]
