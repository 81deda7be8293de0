"""lwnn.compare: rows matched by tensor name, metrics against independent formulas, flags,
fallbacks, missing tensors, several quantized models in one call, and the table views."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import lwnn
from lwnn.comparison import Comparison, LayerRow


@pytest.fixture(scope="module")
def fashion(bundled_model, bundled_samples):
    images, _ = bundled_samples
    return bundled_model, images[:64], images[200:216]


@pytest.fixture(scope="module")
def s8(fashion):
    model, calib, _ = fashion
    return lwnn.quantize(model, {"image": calib}, scheme="s8", progress=False)


@pytest.fixture(scope="module")
def q8(fashion):
    model, calib, _ = fashion
    return lwnn.quantize(model, {"image": calib}, scheme="q8", progress=False)


@pytest.fixture(scope="module")
def table(fashion, s8):
    model, _, x = fashion
    return lwnn.compare(model, s8, {"image": x})


def _sqnr(x, y):  # the textbook formula, written out independently of lwnn.comparison.metrics
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return 20 * math.log10(math.sqrt((x**2).sum()) / math.sqrt(((x - y) ** 2).sum()))


def test_one_row_per_recorded_tensor_in_execution_order(fashion, s8, table):
    model, _, x = fashion
    assert isinstance(table, Comparison) and table.labels == ("s8/minmax",) and table.modes == ("cumulative",)
    ref = model.run({"image": x}, record=True)
    expected = ["image"] + [t for layer in model.layers for t in layer.outputs if t in ref]
    assert [r.tensor for r in table.rows] == expected
    assert [r.index for r in table.rows] == sorted(r.index for r in table.rows)
    assert table.rows[0].op == "Input" and table.rows[-1].tensor == "probs"


def test_metrics_match_independent_computation(fashion, s8, table):
    model, _, x = fashion
    ref = model.run({"image": x}, record=True)
    got = s8.run({"image": x}, record=True)
    for row in table.rows:
        if not row.compared:
            continue
        a, b = ref[row.tensor], got[row.tensor]
        if np.array_equal(a, b):
            assert row.sqnr_db == math.inf
        else:
            assert row.sqnr_db == pytest.approx(_sqnr(a, b), rel=1e-9)
        assert row.mse == pytest.approx(float(np.mean((a.astype(np.float64) - b) ** 2)), rel=1e-9)
        assert row.max_abs_error == pytest.approx(float(np.max(np.abs(a.astype(np.float64) - b))))
        p = s8.tensor_params(row.tensor)
        assert row.step == pytest.approx(float(p.scale))
        assert row.rmse_lsb == pytest.approx(math.sqrt(row.mse) / float(p.scale), rel=1e-9)
        lo = float(p.scale) * (p.qmin - int(p.zero_point) - 0.5)
        hi = float(p.scale) * (p.qmax - int(p.zero_point) + 0.5)
        assert row.clip_rate == pytest.approx(float(np.mean((a < lo) | (a > hi))))


def test_per_channel_metrics_on_axis_1(fashion, table):
    model, _, x = fashion
    row = table.row("/conv2/relu/Relu")
    a, b = table.tensors("/conv2/relu/Relu")
    assert row.channel_axis == 1 and row.channels == a.shape[1] and row.shape == a.shape
    for c in (0, a.shape[1] - 1):
        expected = _sqnr(a[:, c], b[:, c]) if not np.array_equal(a[:, c], b[:, c]) else math.inf
        assert row.per_channel["sqnr_db"][c] == pytest.approx(expected, rel=1e-9)
    assert set(row.per_channel) == set(lwnn.comparison.METRICS)
    dense = table.row("/fc/Gemm")  # 2-D [N, F]: per output feature
    assert dense.channels == 10
    assert table.row("image").per_channel["sqnr_db"].shape == (1,)


def test_first_layer_below_threshold_is_flagged(fashion, s8):
    model, _, x = fashion
    base = lwnn.compare(model, s8, {"image": x}, threshold_db=30)
    below = [r for r in base.rows if r.sqnr_db < 30]
    assert below, "the bundled model's s8 run has layers below 30 dB"
    flagged = [r for r in base.rows if r.flagged]
    assert flagged == [below[0]] and base.first_below() is below[0]
    assert base.first_below(-1000) is None
    never = lwnn.compare(model, s8, {"image": x}, threshold_db=-1000)
    assert not any(r.flagged for r in never.rows)


def test_several_quantized_models_in_one_call(fashion, s8, q8):
    model, _, x = fashion
    both = lwnn.compare(model, {"s8": s8, "q8": q8}, {"image": x})
    assert both.labels == ("s8", "q8")
    n = len(both.select(label="s8"))
    assert len(both) == 2 * n and len(both.select(label="q8")) == n
    assert all(r.label == "q8" for r in both.select(label="q8").rows)
    assert sum(r.flagged for r in both.rows) <= 2  # at most one per (label, mode)
    summary = both.summary()
    assert {s["label"] for s in summary} == {"s8", "q8"}
    assert summary[0]["output_sqnr_db"] == both.row("probs", label="s8").sqnr_db
    assert summary[0]["min_sqnr_db"] == min(r.sqnr_db for r in both.select(label="s8").rows if r.compared)
    with pytest.raises(lwnn.LwnnError, match="pass label="):
        both.row("probs")
    assert both.row("probs", label="q8").label == "q8"


def test_rows_are_frozen_and_repr_shows_metrics(table):
    row = table.row("/conv1/relu/Relu")
    assert isinstance(row, LayerRow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.sqnr_db = 0.0
    with pytest.raises(ValueError):
        row.per_channel["sqnr_db"][0] = 0.0
    with pytest.raises(TypeError):
        row.per_channel["x"] = np.zeros(1)
    text = repr(row)
    assert "sqnr" in text and "dB" in text and "array" not in text
    assert row.metrics["sqnr_db"] == row.sqnr_db


def test_worst_and_views(table):
    worst = table.worst(3)
    assert len(worst) == 3
    sqnrs = [r.sqnr_db for r in table.rows if r.compared]
    assert [r.sqnr_db for r in worst] == sorted(sqnrs)[:3]
    assert table.worst(1, "mse")[0].mse == max(r.mse for r in table.rows if r.compared)
    text = table.to_text()
    assert "SQNR dB" in text and "/conv2/conv/Conv" in text and len(text.splitlines()) == len(table) + 1
    assert "Comparison of fashion_cnn" in repr(table)
    html = table._repr_html_()
    assert html.count("<tr") == len(table) + 1 and "/fc/Gemm" in html
    frame = table.to_frame()
    assert list(frame["tensor"]) == [r.tensor for r in table.rows]
    assert {"sqnr_db", "cosine", "mse", "max_abs_error", "rmse_lsb", "clip_rate", "fell_back"} <= set(frame)
    rows, matrix = table.channel_matrix("sqnr_db")
    assert matrix.shape == (len(rows), max(r.channels for r in rows))
    assert np.isnan(matrix[0, 1:]).all()  # the 1-channel input is padded with NaN


def test_tensor_missing_from_the_quantized_run_gets_a_note(fashion, s8, monkeypatch):
    """A tensor the quantized model does not have (folded away) is shown with a note, never
    compared against the wrong tensor and never a crash."""
    model, _, x = fashion
    run = s8.run

    def without_fc(feeds, record=False):
        rec = run(feeds, record=record)
        tensors = {n: rec[n] for n in rec if n != "/fc/Gemm_output_0"}
        return lwnn.Recording(tensors, rec.executed_by, rec.output_names, rec.seconds)

    monkeypatch.setattr(s8, "run", without_fc)
    table = lwnn.compare(model, s8, {"image": x})
    row = table.row("/fc/Gemm")
    assert not row.compared and math.isnan(row.sqnr_db)
    assert row.note == "not in the quantized run (next recorded layer: '/softmax/Softmax')"
    assert row not in table.worst(100) and "/fc/Gemm" in table.to_text()
    assert table.row("/softmax/Softmax").compared
    with pytest.raises(lwnn.LwnnError, match="no quantized counterpart"):
        table.tensors("/fc/Gemm")


def test_folded_batchnorms_are_noted(fashion):
    import inspect

    model, calib, x = fashion
    if "fold" not in inspect.signature(lwnn.quantize).parameters:
        pytest.skip("lwnn.quantize has no fold option in this version")
    q = lwnn.quantize(model, {"image": calib}, scheme="s8", fold=True, progress=False)
    table = lwnn.compare(model, q, {"image": x})
    missing = [r for r in table.rows if not r.compared]
    assert missing and all(r.note.startswith("folded: runs fused with") for r in missing)
    assert "/conv1/bn/BatchNormalization" in table.row("/conv1/conv/Conv").note
    conv1 = [r for r in table.rows if r.layer.startswith("/conv1/")]
    assert conv1[-1].compared  # the fused layer writes the last member's output


def prelu_model():
    """Conv -> PRelu -> Conv: PRelu has no s8 kernel, so s8 runs it on CPU float (a fallback)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((2, 4, 1, 1)).astype(np.float32)
    slope = np.full((4, 1, 1), 0.1, np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
         helper.make_node("PRelu", ["a", "slope"], ["b"], name="prelu"),
         helper.make_node("Conv", ["b", "w2"], ["y"], name="conv2")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2, 8, 8])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
         numpy_helper.from_array(slope, "slope")],
    )
    model = lwnn.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    return model, rng.standard_normal((8, 1, 8, 8)).astype(np.float32)


def test_fallback_layers_are_marked():
    model, x = prelu_model()
    q = lwnn.quantize(model, {"x": x}, "s8", progress=False)
    table = lwnn.compare(model, q, {"x": x[:2]})
    assert table.row("prelu").fell_back and table.row("prelu").runtime == "cpu/float"
    assert not table.row("conv1").fell_back and table.row("conv1").runtime == "cpu/s8"
    assert table.fallbacks() == [table.row("prelu")]
    assert "fell back to float" in table.to_text()


def test_isolated_mode_measures_each_layers_own_error(fashion, s8):
    model, _, x = fashion
    if not hasattr(s8, "run_isolated"):
        with pytest.raises(lwnn.LwnnError, match="run_isolated"):
            lwnn.compare(model, s8, {"image": x}, mode="isolated")
        return
    both = lwnn.compare(model, s8, {"image": x}, mode="both")
    assert both.modes == ("cumulative", "isolated")
    iso, cum = both.select(mode="isolated"), both.select(mode="cumulative")
    assert [r.tensor for r in iso.rows] == [r.tensor for r in cum.rows]
    # a layer fed exact float inputs errs less than one fed its predecessors' errors
    last = cum.rows[-1].tensor
    assert iso.row(last).sqnr_db > cum.row(last).sqnr_db


def test_bad_input_is_a_clear_error(fashion, s8):
    model, _, x = fashion
    with pytest.raises(lwnn.LwnnError, match="Unknown comparison mode 'sideways'"):
        lwnn.compare(model, s8, {"image": x}, mode="sideways")
    with pytest.raises(lwnn.LwnnError, match="expected a QuantizedModel"):
        lwnn.compare(model, {"oops": model}, {"image": x})
    with pytest.raises(lwnn.LwnnError, match="float lwnn.Model first"):
        lwnn.compare(s8, s8, {"image": x})
    with pytest.raises(lwnn.FeedError, match="image"):
        lwnn.compare(model, s8, {"x": x})
    table = lwnn.compare(model, s8, {"image": x})
    with pytest.raises(lwnn.LwnnError, match="No layer or tensor 'nope'.*'/conv1/conv/Conv'"):
        table.row("nope")
    with pytest.raises(lwnn.LwnnError, match="Unknown metric"):
        table.worst(3, "snr")
    with pytest.raises(lwnn.LwnnError, match="No label"):
        table.select(label="q8")


def test_quantized_model_of_another_model_is_rejected(fashion, s8):
    from lwnn import zoo

    model, _, x = fashion
    other = lwnn.load(zoo.rapidocr_model("cls"))
    q_other = lwnn.quantize(other, zoo.rapidocr_input("cls"), "s8", progress=False)
    with pytest.raises(lwnn.LwnnError, match="made from another model"):
        lwnn.compare(model, {"s8": s8, "cls": q_other}, {"image": x})


def test_to_frame_without_pandas_says_what_to_install(table, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("no pandas")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match="pip install pandas"):
        table.to_frame()


def test_comparison_pickles(table):
    import pickle

    back = pickle.loads(pickle.dumps(table.select()))
    assert [r.tensor for r in back.rows] == [r.tensor for r in table.rows]
    row = back.row("/conv2/relu/Relu")
    original = table.row("/conv2/relu/Relu").per_channel["sqnr_db"]
    np.testing.assert_array_equal(row.per_channel["sqnr_db"], original)
    with pytest.raises(TypeError):
        row.per_channel["x"] = np.zeros(1)
