"""``fold_elementwise_chains``: which element-wise sub-graphs become one lookup-table layer, and
that the merged layer computes what its members compute (oracle: the formula in NumPy)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import lwnn
from lwnn.passes.chains import ElementwiseChain, fold_elementwise_chains


def graph_of(nodes, outputs=("y",), scalars=None):
    """A model reading x [1, 4, 5, 5] (and a Conv weight ``w`` when a node names it)."""
    scalars = {"three": 3.0, "six": 6.0, "zero": 0.0, "half": 0.5, **(scalars or {})}
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in scalars.items()]
    inits.append(numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.3, (4, 4, 1, 1))
                                         .astype(np.float32), "w"))
    proto = helper.make_model(
        helper.make_graph(list(nodes), "chain",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, 4, 5, 5])
                           for o in outputs],
                          inits),
        opset_imports=[helper.make_opsetid("", 17)])
    return lwnn.load(proto).graph


def fold(graph, can_join=lambda first, layer: True):
    return fold_elementwise_chains(list(graph.layers), graph.constants, list(graph.outputs), can_join)


HARD_SWISH = [  # x * clip(x + 3, 0, 6) / 6, as PyTorch exports it
    helper.make_node("Add", ["x", "three"], ["a"], name="add"),
    helper.make_node("Clip", ["a", "zero", "six"], ["c"], name="clip"),
    helper.make_node("Mul", ["x", "c"], ["m"], name="mul"),
    helper.make_node("Div", ["m", "six"], ["y"], name="div"),
]


def test_hard_swish_written_out_becomes_one_layer_that_computes_it():
    layers, groups = fold(graph_of(HARD_SWISH))
    (merged,) = layers
    assert isinstance(merged.op, ElementwiseChain) and merged.name == "add+clip+mul+div"
    assert merged.inputs == ("x",) and merged.outputs == ("y",)
    assert [m.name for m in groups[merged.name]] == ["add", "clip", "mul", "div"]
    x = np.linspace(-5, 5, 101, dtype=np.float32)
    np.testing.assert_allclose(merged.op.evaluate(x), x * np.clip(x + 3, 0, 6) / 6, rtol=1e-6, atol=1e-7)


def test_a_chain_after_a_convolution_is_folded_up_to_the_convolution():
    nodes = [helper.make_node("Conv", ["x", "w"], ["x1"], name="conv"),
             helper.make_node("Relu", ["x1"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "half"], ["y"], name="scale")]
    layers, groups = fold(graph_of(nodes))
    assert [layer.name for layer in layers] == ["conv", "relu+scale"]
    assert layers[1].op.source == "x1" and layers[1].op.constants == (("half", 0.5),)


def test_an_intermediate_read_outside_the_chain_stops_it():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "half"], ["m"], name="scale"),
             helper.make_node("Conv", ["r", "w"], ["c"], name="conv"),  # reads r too
             helper.make_node("Add", ["m", "c"], ["y"], name="join")]
    layers, groups = fold(graph_of(nodes))
    assert not groups and [layer.name for layer in layers] == ["relu", "scale", "conv", "join"]


def test_an_intermediate_graph_output_stops_the_chain():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "half"], ["m"], name="scale"),
             helper.make_node("Sigmoid", ["m"], ["y"], name="sigmoid")]
    layers, groups = fold(graph_of(nodes, outputs=("y", "m")))
    # relu+scale hands on m, a graph output, which the merged layer still writes; sigmoid stays.
    assert [layer.name for layer in layers] == ["relu+scale", "sigmoid"]
    assert layers[0].outputs == ("m",)


def test_two_tensor_inputs_and_single_layers_are_not_folded():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Add", ["x", "c"], ["s"], name="residual"),  # two tensors: not f(x)
             helper.make_node("Relu", ["s"], ["y"], name="relu")]  # alone after it: nothing to merge
    layers, groups = fold(graph_of(nodes))
    assert not groups and [layer.name for layer in layers] == ["conv", "residual", "relu"]


@pytest.mark.parametrize("refuse", ["clip", "div"])
def test_can_join_keeps_layers_of_another_mode_out(refuse):
    layers, groups = fold(graph_of(HARD_SWISH), can_join=lambda first, layer: layer.name != refuse)
    names = [layer.name for layer in layers]
    if refuse == "clip":  # add cannot grow: its only consumer is refused
        assert names == ["add", "clip", "mul", "div"] and not groups
    else:  # the chain grows until div, which stays on its own
        assert names == ["add+clip+mul", "div"]
