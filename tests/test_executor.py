"""The executor's own contract (lwnn.executor): the per-layer hook, freeing after the last reader,
and the errors a runtime's misbehaviour raises. Float and quantized results are checked against
their oracles elsewhere; here the loop itself."""

from __future__ import annotations

import numpy as np
import pytest

import lwnn
from lwnn import data
from lwnn.backends import get_runtime
from lwnn.backends.runtime import HostMemory, LayerResult
from lwnn.executor import Schedule, Step, execute


@pytest.fixture(scope="module")
def model_and_feeds():
    model = lwnn.load(data.default_model_path())
    images, _ = data.default_samples()
    return model, model.check_feeds({"image": images[:3]})


class Watcher:
    """A consumer that notes, after each step, its outputs and which tensors the run still holds."""

    def __init__(self):
        self.seen: list[tuple[str, dict, set]] = []

    def started(self, run):
        pass

    def layer_done(self, step, run):
        outs = {n: run.real(n).copy() for n in step.layer.outputs}
        self.seen.append((step.layer.name, outs, set(run.values["float"])))

    def finished(self, run):
        pass


def test_hook_sees_every_output_before_it_is_freed(model_and_feeds):
    model, feeds = model_and_feeds
    plan = model.plan({n: a.shape for n, a in feeds.items()})
    schedule = Schedule(plan, [Step(layer, get_runtime("cpu")) for layer in plan.steps])
    watcher = Watcher()
    run = execute(schedule, feeds, hook=watcher)
    want = model.run(feeds, record=True)
    assert [name for name, _, _ in watcher.seen] == [layer.name for layer in plan.steps]
    for _, outs, _ in watcher.seen:
        for name, value in outs.items():
            np.testing.assert_array_equal(value, want[name])
    np.testing.assert_array_equal(run.outputs["probs"], want["probs"])
    # Unrecorded: when a step's hook runs, the run holds only what this step or a later one reads
    # (its inputs are freed after the hook) and the outputs.
    reads_from_here = set()
    for i in range(len(plan.steps) - 1, -1, -1):
        reads_from_here |= {n for n in plan.steps[i].inputs if n}
        held = watcher.seen[i][2] - set(plan.constants)
        assert held <= reads_from_here | set(plan.outputs) | set(plan.steps[i].outputs), plan.steps[i].name
    assert max(len(held - set(plan.constants)) for _, _, held in watcher.seen) <= 3


class WrongShape(HostMemory):
    name, backend, scheme = "cpu/broken", "cpu", "float"

    def supports(self, layer):
        return True

    def run_layer(self, layer, args, binding=None):
        return LayerResult([np.zeros((1, 2), np.float32) for _ in layer.outputs], self.name)


def test_a_runtime_returning_the_wrong_shape_is_named(model_and_feeds):
    model, feeds = model_and_feeds
    plan = model.plan({n: a.shape for n, a in feeds.items()})
    first = plan.steps[0]
    schedule = Schedule(plan, [Step(first, WrongShape())])
    with pytest.raises(lwnn.LwnnError) as err:
        execute(schedule, feeds)
    message = str(err.value)
    assert f"Layer {first.name!r} ({first.op_type})" in message and "cpu/broken" in message
    assert f"shape (1, 2); shape inference expects {plan.shapes[first.outputs[0]]}" in message


def test_a_tensor_nothing_produces_is_named(model_and_feeds):
    model, feeds = model_and_feeds
    plan = model.plan({n: a.shape for n, a in feeds.items()})
    second = plan.steps[1]  # without the first step, its input is never produced
    schedule = Schedule(plan, [Step(second, get_runtime("cpu"))])
    with pytest.raises(lwnn.LwnnError, match=f"Layer {second.name!r}.*tensor {second.inputs[0]!r}"):
        execute(schedule, feeds)
