"""The OpenCL runtime itself: device choice, program and buffer caches, host/device copies and
CPU fallbacks as recorded, and the errors (no platform, a kernel that fails to build, a buffer
larger than the device can allocate)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import make_node_model
from onnx import TensorProto, helper

import lwnn
from lwnn import zoo
from lwnn.backends import get_runtime
from lwnn.backends.opencl import DeviceMemoryError, choose_device, describe_devices
from lwnn.engine import device_layers


@pytest.fixture(scope="module")
def rt():
    return get_runtime("opencl")


def test_runtime_is_registered_and_names_its_device(rt):
    assert rt.name == "opencl/float"
    assert rt.device_name  # "platform / device"
    lines = describe_devices()
    assert lines and all(line[0].isdigit() and ":" in line for line in lines)


def test_device_choice_by_index_and_by_name():
    first = describe_devices()[0]
    index, rest = first.split(" ", 1)
    assert choose_device(index).name.strip() in rest
    platform = rest.split(" / ")[0]
    assert choose_device(platform[:6].lower()).platform.name == choose_device(index).platform.name


def test_unknown_device_lists_the_devices():
    with pytest.raises(lwnn.BackendUnavailable, match="matches no OpenCL device") as err:
        choose_device("no-such-device-xyz")
    assert describe_devices()[0].split(" ", 1)[1].split(" / ")[0] in str(err.value)


def test_default_device_is_a_gpu_when_there_is_one():
    import pyopencl as cl

    has_gpu = any(d.type & cl.device_type.GPU for p in cl.get_platforms() for d in p.get_devices())
    chosen = choose_device("")
    assert bool(chosen.type & cl.device_type.GPU) == has_gpu


def test_no_platform_names_the_fix(tmp_path):
    """With no ICD registered (an empty vendors directory), run() says what to install."""
    script = textwrap.dedent("""
        import numpy as np, lwnn
        from helpers import make_node_model
        m = lwnn.load(make_node_model("Relu", {"x": np.ones((2, 3), np.float32)}))
        try:
            m.run({"x": np.ones((2, 3), np.float32)}, backend="opencl")
        except lwnn.BackendUnavailable as err:
            print("UNAVAILABLE:", err)
    """)
    env = dict(os.environ, OCL_ICD_VENDORS=str(tmp_path), PYTHONPATH=os.path.dirname(__file__))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert "UNAVAILABLE:" in out.stdout, out.stdout + out.stderr
    assert "pocl-opencl-icd" in out.stdout and "ICD" in out.stdout


def test_kernel_build_failure_shows_the_build_log(rt):
    bad = "__kernel void broken(__global float *x) { x[0] = not_declared_anywhere + 1.0f; }"
    with pytest.raises(lwnn.KernelError, match="failed to build") as err:
        rt.ctx.program(bad, ("-DLWNN_TEST_BROKEN=1",))
    assert "not_declared_anywhere" in str(err.value)  # the compiler's log names the culprit
    assert "-DLWNN_TEST_BROKEN=1" in str(err.value)


def test_allocation_beyond_the_device_names_tensor_and_bytes(rt):
    x = np.ones((1, 1, 4, 4), np.float32)
    scales = np.array([1, 1, 60000, 60000], np.float32)
    model = lwnn.load(
        make_node_model(
            "Resize", {"x": x, "roi": None, "scales": scales}, {"mode": "nearest"}, const=("scales",)
        )
    )
    nbytes = 4 * 240000 * 240000
    lwnn.set_memory_limit(1 << 40)  # past the planning guard (tests/test_bad_models.py), to the device
    try:
        with pytest.raises(DeviceMemoryError, match=f"{nbytes} bytes for tensor 'y0'") as err:
            model.run({"x": x}, backend="opencl")
    finally:
        lwnn.set_memory_limit(None)
    assert isinstance(err.value, lwnn.LwnnError)
    assert "resize0" in str(err.value)  # the layer is named too


def test_programs_are_built_once_and_buffers_reused(rt):
    model = lwnn.load(zoo.rapidocr_model("cls"))
    feeds = zoo.rapidocr_input("cls")
    model.run(feeds, backend="opencl")
    programs, kernels = len(rt.ctx._programs), len(rt.ctx._kernels)
    allocated = rt.ctx.pool.allocated_bytes
    model.run(feeds, backend="opencl")
    model.run(feeds, backend="opencl")
    assert (len(rt.ctx._programs), len(rt.ctx._kernels)) == (programs, kernels)
    assert rt.ctx.pool.allocated_bytes == allocated  # the second and third runs allocated nothing
    k = rt.ctx.kernel("eltwise.cl", "unary_op")
    assert rt.ctx.kernel("eltwise.cl", "unary_op") is k


def test_tensors_stay_on_the_device_between_layers(rt):
    model = lwnn.load(zoo.rapidocr_model("cls"))
    feeds = zoo.rapidocr_input("cls")
    model.run(feeds, backend="opencl")
    copies = [(t.tensor, t.direction, t.reason) for t in rt.last_transfers]
    assert copies == [("x", "to_device", "input"), (next(iter(model.outputs)), "to_host", "output")]


def _cast_model():
    """Relu -> Cast(int32) -> Cast(float) -> Mul: the casts have no OpenCL kernel."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Cast", ["r"], ["i"], to=TensorProto.INT32, name="to_int"),
        helper.make_node("Cast", ["i"], ["f"], to=TensorProto.FLOAT, name="to_float"),
        helper.make_node("Mul", ["f", "x"], ["y"], name="mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "casts",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_fallback_layers_run_on_the_cpu_with_the_copies_recorded(rt):
    model = lwnn.load(_cast_model())
    x = np.linspace(-3, 3, 10, dtype=np.float32).reshape(2, 5) * 1.7
    rec = model.run({"x": x}, backend="opencl", record=True)
    ref = model.run({"x": x}, record=True)
    assert rec.executed_by == {
        "relu": "opencl/float",
        "to_int": "cpu/float",
        "to_float": "cpu/float",
        "mul": "opencl/float",
    }
    for name in ref:
        np.testing.assert_array_equal(rec[name], ref[name])
    copies = [(t.tensor, t.direction, t.layer, t.reason) for t in rec.transfers]
    assert ("r", "to_host", "to_int", "fallback") in copies  # the device tensor the CPU layer read
    assert ("f", "to_device", "mul", "input") in copies  # the CPU result the device layer read
    assert ("x", "to_device", "relu", "input") in copies
    assert sum(1 for c in copies if c[3] == "fallback") == 1
    assert all(t.nbytes == rec[t.tensor].nbytes for t in rec.transfers)


def test_unrecorded_run_keeps_only_output_copies(rt):
    model = lwnn.load(_cast_model())
    x = np.arange(10, dtype=np.float32).reshape(2, 5) - 4.5
    y = model.run({"x": x}, backend="opencl")
    np.testing.assert_array_equal(y["y"], model.run({"x": x})["y"])
    reasons = sorted(t.reason for t in rt.last_transfers)
    assert reasons == ["fallback", "input", "input", "output"]


def test_unknown_backend_lists_opencl():
    with pytest.raises(lwnn.BackendUnavailable, match="opencl"):
        get_runtime("vulkan")


def test_running_on_opencl_first_leaves_the_cpu_result_unchanged():
    # Planning is shared between runtimes: an OpenCL run must not alter the plan the CPU uses.
    proto = make_node_model("Softmax", {"x": np.arange(12, dtype=np.float32).reshape(3, 4)})
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    m = lwnn.load(proto)
    a = m.run({"x": x}, backend="opencl")["y0"]
    b = m.run({"x": x})["y0"]
    np.testing.assert_array_equal(b, lwnn.load(proto).run({"x": x})["y0"])  # as if OpenCL never ran
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def _hardswish_model(extra_reader: bool):
    """Conv -> Add 3 -> Clip(0, 6) -> Div 6 -> Mul(conv) (hard-swish written out) -> Relu; with
    ``extra_reader`` the conv output is also a graph output, so it cannot be fused away."""
    rng = np.random.default_rng(5)
    inits = [
        helper.make_tensor(n, TensorProto.FLOAT, v.shape, v.reshape(-1))
        for n, v in {
            "w": rng.standard_normal((6, 3, 3, 3)).astype(np.float32),
            "b": rng.standard_normal(6).astype(np.float32),
            "three": np.array(3.0, np.float32),
            "six": np.array(6.0, np.float32),
        }.items()
    ]
    inits += [
        helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0]),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Add", ["c", "three"], ["a"], name="add"),
        helper.make_node("Clip", ["a", "lo", "hi"], ["k"], name="clip"),
        helper.make_node("Div", ["k", "six"], ["d"], name="div"),
        helper.make_node("Mul", ["c", "d"], ["h"], name="mul"),
        helper.make_node("Relu", ["h"], ["y"], name="relu"),
    ]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_reader:
        outs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes,
        "hswish",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 9, 7])],
        outs,
        initializer=inits,
    )
    return lwnn.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))


@pytest.mark.parametrize("extra_reader", [False, True])
def test_element_wise_chains_fuse_into_the_conv(rt, extra_reader):
    model = _hardswish_model(extra_reader)
    x = np.random.default_rng(6).standard_normal((2, 3, 9, 7)).astype(np.float32) * 3
    plan = model.plan({"x": x.shape})
    steps = device_layers(plan, rt)
    if extra_reader:  # the conv output is needed as it is: nothing may be fused into the conv
        assert [s.op_type for s in steps][0] == "Conv"
    else:
        # Four stages (the kernels' limit) join the conv; the Relu after them runs on its own.
        assert [s.op_type for s in steps] == ["OpenCLFused", "Relu"]
        assert steps[0].op.head.type == "Conv" and len(steps[0].op.chain) == 4
    ref, got = model.run({"x": x}), model.run({"x": x}, backend="opencl")
    for name in ref:
        assert np.abs(got[name] - ref[name]).max() <= 1e-5 * max(1.0, np.abs(ref[name]).max()), name


def test_fused_layers_fall_back_to_their_parts_on_the_cpu(rt):
    model = _hardswish_model(False)
    x = np.random.default_rng(7).standard_normal((2, 3, 9, 7)).astype(np.float32)
    plan = model.plan({"x": x.shape})
    fused = device_layers(plan, rt)[0]
    args = [x, plan.constants[fused.inputs[1]], plan.constants[fused.inputs[2]]]
    (y,) = get_runtime("cpu").run_layer(fused, args).outputs
    np.testing.assert_array_equal(np.maximum(y, 0), model.run({"x": x})["y"])


def test_fusion_cuts_the_launches_of_real_models_and_keeps_results(rt):
    model = lwnn.load(zoo.rapidocr_model("cls"))
    feeds = zoo.rapidocr_input("cls")
    plan = model.plan({"x": feeds["x"].shape})
    assert len(device_layers(plan, rt)) < 0.6 * len(plan.fast_steps)
    fused = model.run(feeds, backend="opencl")
    rt.fuse = False
    try:
        unfused = model.run(feeds, backend="opencl")
    finally:
        rt.fuse = True
    for name in fused:
        np.testing.assert_allclose(fused[name], unfused[name], rtol=1e-5, atol=1e-6)
