"""lwnn.viz: structure of every picture (axes, labels, cells, bars, lines, colour bars), never
pixels; nothing calls plt.show(); a given ax is drawn on and returned."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import lwnn  # noqa: E402
from lwnn import viz  # noqa: E402
from lwnn.comparison import Comparison, LayerRow, Study, calibration_sweep  # noqa: E402
from lwnn.numerics.params import AffineParams, QFormat  # noqa: E402


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a picture called plt.show()")

    monkeypatch.setattr(plt, "show", refuse)
    yield
    plt.close("all")


def synthetic(n: int = 250, channels: int = 16) -> Comparison:
    """A comparison of ``n`` layers (more than a real model's labels fit) without running one."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        per = {m: rng.uniform(5, 45, channels) for m in lwnn.comparison.METRICS}
        folded = i % 40 == 7
        nan = float("nan")
        rows.append(LayerRow(
            f"block{i}/conv_with_a_rather_long_name", "Conv", f"t{i}", "s8", "cumulative", i,
            nan if folded else float(per["sqnr_db"].mean()), nan if folded else 0.99, nan if folded else 1e-3,
            nan if folded else 0.1, nan if folded else 1.0, nan if folded else 0.0,
            fell_back=i % 50 == 3, flagged=i == 100, note="folded: runs fused with 'x'" if folded else "",
            channel_axis=None if folded else 1, per_channel={} if folded else per))
    return Comparison(rows, 20.0, ["s8"], ["cumulative"], model_name="synthetic")


@pytest.fixture(scope="module")
def fashion(bundled_model, bundled_samples):
    model, (images, labels) = bundled_model, bundled_samples
    calib, test = images[:64], images[200:232]
    qs = {s: lwnn.quantize(model, {"image": calib}, s, progress=False) for s in ("s8", "q8")}
    table = lwnn.compare(model, qs, {"image": test}, mode="both")
    return model, qs, table, calib, test, labels[200:232]


def _colorbar_labels(fig) -> list[str]:
    return [a.get_ylabel() for a in fig.axes if a.get_label() == "<colorbar>"]


def test_error_heatmap_cells_colorbar_and_labels(fashion):
    model, qs, table, *_ = fashion
    fig = viz.error_heatmap(table, label="s8", mode="cumulative")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    image = [c for c in ax.get_children() if isinstance(c, AxesImage)][0]
    rows, matrix = table.channel_matrix("sqnr_db", "s8", "cumulative")
    assert image.get_array().shape == (len(rows), min(matrix.shape[1], 128))  # max_channels=128
    assert any("SQNR (dB)" in lab for lab in _colorbar_labels(fig))
    assert len(ax.get_yticklabels()) == len(rows)  # a small model: every layer labelled
    assert "channel" in ax.get_xlabel() and "layer" in ax.get_ylabel()
    mse = viz.error_heatmap(table, "mse", label="q8", mode="isolated")
    assert any(lab == "MSE" for lab in _colorbar_labels(mse))


def test_error_heatmap_stays_readable_on_hundreds_of_layers():
    table = synthetic()
    fig = viz.error_heatmap(table, max_labels=40)
    ax = fig.axes[0]
    labels = ax.get_yticklabels()
    assert len(labels) <= 41  # every k-th layer, plus the flagged one
    red = [t.get_text() for t in labels if t.get_color() == "red"]
    assert red == ["100 …" + "block100/conv_with_a_rather_long_name"[-31:]]
    assert "every 7th labelled" in ax.get_ylabel()
    w, h = fig.get_size_inches()
    assert w <= 14 and h <= 14
    part = viz.error_heatmap(table, layers=slice(10, 20))
    image = [c for c in part.axes[0].get_children() if isinstance(c, AxesImage)][0]
    assert image.get_array().shape == (10, 16)
    with pytest.raises(lwnn.LwnnError, match="no layer 'nope'"):
        viz.error_heatmap(table, layers=["nope"])
    narrow = viz.error_heatmap(table, max_channels=4)
    assert [c for c in narrow.axes[0].get_children() if isinstance(c, AxesImage)][0].get_array().shape[1] == 4
    assert "first 4 shown" in narrow.axes[0].get_xlabel()


def test_pictures_draw_on_a_given_ax(fashion):
    model, qs, table, calib, *_ = fashion
    fig, axes = plt.subplots(1, 3)
    assert viz.error_heatmap(table, label="s8", mode="cumulative", ax=axes[0]) is axes[0]
    assert viz.metric_by_layer(table, ax=axes[1]) is axes[1]
    assert viz.scatter(np.arange(10.0), np.arange(10.0), ax=axes[2]) is axes[2]


def test_metric_by_layer_one_line_per_label_and_mode(fashion):
    _, _, table, *_ = fashion
    ax = viz.metric_by_layer(table).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["s8, cumulative", "s8, isolated", "q8, cumulative", "q8, isolated", "threshold 20 dB",
                      "first below threshold", "fell back to float"]
    assert ax.get_ylabel().startswith("SQNR (dB)") and len(ax.get_xticklabels()) == len(table.layer_names)
    assert ax.get_ylim()[1] <= 100  # an input exact to float precision (~145 dB) does not squash the rest


def test_tensor_histogram_range_and_grid():
    x = np.linspace(-1.2, 1.0, 1000)
    q = QFormat(6, 8)  # step 1/64, range [-2, 127/64]: 256 levels, too many to draw
    ax = viz.tensor_histogram(x, q, name="t").axes[0]
    dashed = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert dashed == pytest.approx([-2.0, 127 / 64])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "grid: 256 levels, step 0.01562 (too fine to draw)" in legend
    assert not [c for c in ax.collections if isinstance(c, LineCollection)]
    zoom = viz.tensor_histogram(x, q, xlim=(0.0, 0.25)).axes[0]  # 17 grid values in view: drawn
    grid = [c for c in zoom.collections if isinstance(c, LineCollection)]
    assert len(grid) == 1 and len(grid[0].get_segments()) == 17
    s8 = AffineParams(0.01, -128)  # represents [0, 2.55]: the negative values clip
    ax = viz.tensor_histogram(x, s8).axes[0]
    assert "clipped (saturates)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_ylabel() == "count (log)" and ax.get_xlabel() == "value"
    per_channel = AffineParams(np.array([0.1, 0.2]), 0, axis=0)
    with pytest.raises(lwnn.LwnnError, match="pass channel="):
        viz.tensor_histogram(x, per_channel)
    lines = viz.tensor_histogram(x, per_channel, channel=1).axes[0].get_lines()
    dashed = [line.get_xdata()[0] for line in lines if line.get_linestyle() == "--"]
    assert dashed == pytest.approx([-25.6, 25.4])
    plain = viz.tensor_histogram(x).axes[0]  # no parameters: just the histogram
    assert not [line for line in plain.get_lines() if line.get_linestyle() == "--"]


def test_scatter_points_and_diagonal():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50_000)
    ax = viz.scatter(x, np.round(x * 8) / 8, max_points=1000, name="t").axes[0]
    points = [c for c in ax.collections if isinstance(c, PathCollection)][0]
    assert 1000 <= len(points.get_offsets()) <= 1002
    assert ax.get_xlabel() == "float value" and "quantized" in ax.get_ylabel()
    assert any(line.get_label() == "y = x" for line in ax.get_lines())
    with pytest.raises(lwnn.LwnnError, match="differ in size"):
        viz.scatter(x, x[:10])


def test_calibration_sweep_and_curve():
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_t(3, 20_000)).astype(np.float32)  # heavy tail: methods disagree
    sweep = calibration_sweep(x, "s8", name="relu", points=40)
    assert len(sweep.thresholds) == 40 and np.all(np.diff(sweep.thresholds) > 0)
    assert set(sweep.picks) == {"minmax", "percentile", "kl", "mse"}
    assert sweep.picks["minmax"].threshold == pytest.approx(float(x.max()))
    assert sweep.picks["minmax"].clip_rate == 0
    assert sweep.mse[-1] == pytest.approx(sweep.picks["minmax"].mse)  # the last threshold is minmax's range
    assert sweep.picks["mse"].mse < sweep.picks["minmax"].mse  # clipping the tail pays off here
    fig = viz.calibration_curve(sweep, values=x)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "threshold" in ax.get_xlabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum(t.split(":")[0] in sweep.picks for t in legend) == 4
    assert len(fig.axes) == 2  # the histogram's twin axis
    q8 = calibration_sweep(x, "q8", name="relu")
    assert np.allclose(np.log2(q8.thresholds), np.round(np.log2(q8.thresholds)))  # powers of two
    assert viz.calibration_curve(q8).axes[0].get_xscale() == "log"
    inherited = AffineParams(0.4, 0)  # a range of [-51.2, 50.8], far wider than the values
    ax = viz.calibration_curve(sweep, params=inherited).axes[0]
    used = [line for line in ax.get_lines() if line.get_label().startswith("range in the model")]
    assert len(used) == 1 and used[0].get_xdata()[0] == pytest.approx(51.2)
    assert ax.get_xlim()[1] >= 51.2
    with pytest.raises(lwnn.CalibrationError, match="Unknown scheme"):
        calibration_sweep(x, "s4")


def test_study_pictures():
    study = Study([8, 32, 128], {"minmax": [20.0, 25.0, 27.0], "kl": [22.0, 24.0, 28.0]},
                  "calibration samples", "output SQNR (dB)", "t")
    ax = viz.metric_vs_calibration_size(study).axes[0]
    assert len([line for line in ax.get_lines() if not line.get_label().startswith("_")]) == 2
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "output SQNR (dB)"
    schemes = Study(["s8", "q8", "q16"], {"minmax": [0.9, 0.88, 0.6], "kl": [0.85, 0.9, 0.7]}, "scheme",
                    "top-1 accuracy", "t", reference=0.91)
    ax = viz.metric_vs_scheme(schemes).axes[0]
    assert len([p for p in ax.patches if isinstance(p, Rectangle)]) == 6
    assert [t.get_text() for t in ax.get_xticklabels()] == ["s8", "q8", "q16"]
    assert any(line.get_label() == "float" for line in ax.get_lines())


def test_reliability_diagram(fashion):
    model, qs, _, _, test, labels = fashion
    float_probs = model.run({"image": test})["probs"]
    quant = {k: q.run({"image": test})["probs"] for k, q in qs.items()}
    ax = viz.reliability_diagram(float_probs, quant, labels).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "perfectly calibrated" and len(legend) == 4
    assert all("ECE" in t for t in legend[1:])
    assert ax.get_xlim() == (0, 1) and "confidence" in ax.get_xlabel() and "accuracy" in ax.get_ylabel()
    with pytest.raises(lwnn.LwnnError, match="samples, classes"):
        viz.reliability_diagram(float_probs, float_probs[:3], labels)


def test_graph_view_one_cell_per_layer(fashion):
    model, _, table, *_ = fashion
    fig = viz.graph_view(model, table, label="s8", mode="cumulative")
    ax = fig.axes[0]
    cells = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(cells) == len(table.layer_names)
    folded = [p for p in cells if p.get_hatch()]
    assert len(folded) == sum(not r.compared for r in table.select("s8", "cumulative").rows)
    assert any("SQNR (dB)" in lab for lab in _colorbar_labels(fig))


def test_graph_view_compact_for_hundreds_of_layers():
    table = synthetic(300)
    fig = viz.graph_view(None, table)
    ax = fig.axes[0]
    cells = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(cells) == 300
    assert sum(p.get_edgecolor()[:3] == matplotlib.colors.to_rgb("red") for p in cells) == 1
    assert sum(bool(p.get_hatch()) for p in cells) == 8
    columns = {round(p.get_x(), 3) for p in cells}
    assert 8 <= len(columns) <= 16
    w, h = fig.get_size_inches()
    assert w <= 18 and h <= 16
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == "0 Conv" and len(texts) == 300
