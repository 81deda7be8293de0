"""Quantization explorer: pick model, scheme, calibration method, layer and channel; see the
layer's metrics against float (cumulative and isolated) and its pictures.

``Explorer`` holds the models and data and computes a view (``ExplorerState``) for any choice:
it quantizes with ``lwnn.quantize`` and measures with ``lwnn.compare`` (both cached per model,
scheme and method). ``ExplorerWidget`` only wires dropdowns to it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass

import ipywidgets as w
import numpy as np
from matplotlib.patches import Rectangle

from lwnn import viz
from lwnn.comparison import Comparison, LayerRow, compare
from lwnn.comparison.metrics import METRICS
from lwnn.errors import LwnnError
from lwnn.model import Model
from lwnn.numerics.params import SCHEMES, scheme_of
from lwnn.quant.options import METHOD_OPTIONS, options_for
from lwnn.quant.qmodel import QuantizedModel
from lwnn.quant.quantize import quantize
from lwnn.quant.ranges import METHODS
from lwnn.widgets._render import new_figure, png_bytes

ALL_CHANNELS = -1
_LABELS = {"sqnr_db": "SQNR dB", "cosine": "cosine", "mse": "MSE", "max_abs_error": "max |error|",
           "rmse_lsb": "RMSE LSB", "clip_rate": "clip rate"}
_MODES = ("cumulative", "isolated")


@dataclass(frozen=True)
class Workload:
    """A model with the feeds it is compared on and the feeds it is calibrated on."""

    model: Model
    feeds: Mapping
    calib_feeds: Mapping


@dataclass(frozen=True)
class ExplorerState:
    """One view: the chosen layer's rows (one per mode), its metrics for the chosen channel (or
    the whole tensor), and the float / quantized values behind the pictures."""

    model: str
    scheme: str
    method: str
    layer: str
    channel: int  # ALL_CHANNELS for the whole tensor
    rows: dict[str, LayerRow]  # mode -> row
    metrics: dict[str, dict[str, float]]  # mode -> metric -> value
    comparison: Comparison
    quantized: QuantizedModel

    @property
    def channels(self) -> int:
        return next(iter(self.rows.values())).channels

    def text(self) -> str:
        """The metrics as a rounded plain-text table (deterministic, for notebooks and tests)."""
        row = next(iter(self.rows.values()))
        where = ("all channels" if self.channel == ALL_CHANNELS
                 else f"channel {self.channel} of {row.channels}")
        lines = [f"{self.model} {self.scheme}/{self.method}  {self.layer} ({row.op}, {where})",
                 f"{'metric':<14}" + "".join(f"{m:>12}" for m in self.rows)]
        for metric in METRICS:
            lines.append(f"{_LABELS[metric]:<14}" + "".join(f"{_fmt(self.metrics[m][metric]):>12}"
                                                          for m in self.rows))
        lines.append(f"{'runtime':<14}" + "".join(f"{r.runtime:>12}" for r in self.rows.values()))
        return "\n".join(lines)


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.4g}"


class Explorer:
    """Models and data to explore (``workloads``: {name: Workload}); see the module docstring."""

    def __init__(self, workloads: Mapping[str, Workload], schemes=SCHEMES, methods=METHODS,
                 modes=_MODES, **quantize_options):
        if not workloads:
            raise LwnnError("The explorer needs at least one model. Received none.")
        self.workloads = dict(workloads)
        self.schemes, self.methods, self.modes = tuple(schemes), tuple(methods), tuple(modes)
        self.quantize_options = quantize_options
        self._runs: dict[tuple[str, str, str], tuple[QuantizedModel, Comparison]] = {}

    def quantized(self, model: str, scheme: str, method: str) -> tuple[QuantizedModel, Comparison]:
        """The quantized model and its comparison against float (computed once per choice)."""
        key = (model, scheme, method)
        if key not in self._runs:
            if model not in self.workloads:
                raise LwnnError(f"No model {model!r} in the explorer. Models: {list(self.workloads)}.")
            wl = self.workloads[model]
            q = quantize(wl.model, wl.calib_feeds, scheme, method, progress=False,
                         **self._options_for(scheme, method))
            mode = "both" if len(self.modes) == 2 else self.modes[0]
            self._runs[key] = q, compare(wl.model, q, wl.feeds, mode)
        return self._runs[key]

    def _options_for(self, scheme: str, method: str) -> dict:
        """The explorer's quantize options that this (scheme, method) takes: a method's options
        (``percentile=``, ``kl_bins=``...) go only to that method, and to the schemes it serves."""
        general = {k: v for k, v in self.quantize_options.items() if k not in METHOD_OPTIONS}
        of_methods = {k: v for k, v in self.quantize_options.items() if k in METHOD_OPTIONS}
        return {**general, **options_for(of_methods, methods=[method], families=[scheme_of(scheme).family])}

    def comparison(self, model: str, scheme: str, method: str) -> Comparison:
        return self.quantized(model, scheme, method)[1]

    def layers(self, model: str, scheme: str, method: str) -> list[str]:
        """Layers with metrics (folded layers, whose tensors the integer run never makes, left out)."""
        c = self.comparison(model, scheme, method)
        return list(dict.fromkeys(r.layer for r in c.rows if r.index >= 0 and not math.isnan(r.sqnr_db)))

    def state(self, model: str, scheme: str, method: str, layer: str,
              channel: int = ALL_CHANNELS) -> ExplorerState:
        q, c = self.quantized(model, scheme, method)
        rows = {mode: c.row(layer, mode=mode) for mode in c.modes}
        first = next(iter(rows.values()))
        if channel != ALL_CHANNELS and not 0 <= channel < first.channels:
            raise LwnnError(f"Layer {layer!r} has {first.channels} channels. Received channel {channel}.")
        metrics = {mode: (r.metrics if channel == ALL_CHANNELS
                          else {m: float(r.per_channel[m][channel]) for m in METRICS})
                   for mode, r in rows.items()}
        return ExplorerState(model, scheme, method, layer, channel, rows, metrics, c, q)


def draw_state(state: ExplorerState):
    """Four ``lwnn.viz`` panels, the chosen layer (and channel) marked: SQNR by layer, the layer x
    channel SQNR heatmap, quantized against float values, and the float histogram with the
    layer's quantization grid. Returns the Figure."""
    c, mode = state.comparison, state.comparison.modes[0]
    fig = new_figure(13, 8.2)
    (ax_layers, ax_heat), (ax_scatter, ax_hist) = fig.subplots(2, 2)
    viz.metric_by_layer(c, ax=ax_layers)
    ax_layers.axvline(c.layer_names.index(state.layer), color="k", lw=6, alpha=0.15)
    row = state.rows[mode]
    if row.channels:
        viz.error_heatmap(c, mode=mode, ax=ax_heat)
        rows, _ = c.channel_matrix(mode=mode)
        y = [r.layer for r in rows].index(state.layer)
        columns = (0, row.channels) if state.channel == ALL_CHANNELS else (state.channel, 1)
        ax_heat.add_patch(Rectangle((columns[0] - 0.5, y - 0.5), columns[1], 1, fill=False, ec="k", lw=2))
    else:
        ax_heat.set_axis_off()
        ax_heat.text(0.5, 0.5, f"{state.layer}: no channel axis", ha="center", va="center")
    x, y = c.tensors(state.layer, mode=mode)
    where = state.layer
    if state.channel != ALL_CHANNELS:
        x, y = np.take(x, state.channel, axis=1), np.take(y, state.channel, axis=1)
        where += f" channel {state.channel}"
    viz.scatter(x, y, name=where, ax=ax_scatter)
    try:
        params = state.quantized.tensor_params(row.tensor)
    except LwnnError:  # the tensor stays float (a layer kept in float)
        params = None
    viz.tensor_histogram(x, params, name=where, ax=ax_hist)
    return fig


class ExplorerWidget(w.VBox):
    """Dropdowns ``model``, ``scheme``, ``method``, ``layer``, ``channel``; ``metrics`` (HTML)
    and ``plot`` (Image, PNG) update on every change. ``state`` is the view on display."""

    def __init__(self, explorer: Explorer, model: str | None = None, scheme: str | None = None,
                 method: str | None = None, layer: str | None = None):
        self.explorer = explorer
        names = list(explorer.workloads)
        self.model = w.Dropdown(options=names, value=model or names[0], description="model")
        self.scheme = w.Dropdown(options=explorer.schemes, value=scheme or explorer.schemes[0],
                                 description="scheme")
        self.method = w.Dropdown(options=explorer.methods, value=method or explorer.methods[0],
                                 description="method")
        self.layer = w.Dropdown(description="layer", layout=w.Layout(width="420px"))
        self.channel = w.Dropdown(description="channel")
        self.metrics = w.HTML()
        self.plot = w.Image(format="png")
        for name in ("model", "scheme", "method", "layer", "channel", "metrics", "plot"):
            getattr(self, name).add_class(f"lwnn-{name}")
        self.state: ExplorerState | None = None
        self._quiet = False
        self._set_layers(layer)
        super().__init__([w.HBox([self.model, self.scheme, self.method]), w.HBox([self.layer, self.channel]),
                          self.metrics, self.plot])
        self.add_class("lwnn-explorer")
        for dropdown in (self.model, self.scheme, self.method):
            dropdown.observe(self._on_quantization, names="value")
        for dropdown in (self.layer, self.channel):
            dropdown.observe(self._on_view, names="value")
        self.refresh()

    def _choice(self) -> tuple[str, str, str]:
        return self.model.value, self.scheme.value, self.method.value

    def _set_layers(self, prefer: str | None = None) -> None:
        """Layer (and channel) options for the current model/scheme/method, keeping the choice."""
        layers = self.explorer.layers(*self._choice())
        keep = prefer if prefer in layers else self.layer.value if self.layer.value in layers else layers[0]
        self._quiet = True
        try:
            self.layer.options = layers
            self.layer.value = keep
            self._set_channels()
        finally:
            self._quiet = False

    def _set_channels(self) -> None:
        row = self.explorer.comparison(*self._choice()).row(self.layer.value, mode=self.explorer.modes[0])
        keep = self.channel.value
        self.channel.options = [("all", ALL_CHANNELS)] + [(str(i), i) for i in range(row.channels)]
        self.channel.value = keep if keep is not None and keep < row.channels else ALL_CHANNELS

    def _on_quantization(self, change) -> None:
        self._set_layers()
        self.refresh()

    def _on_view(self, change) -> None:
        if self._quiet:
            return
        if change["owner"] is self.layer:
            self._quiet = True
            try:
                self._set_channels()
            finally:
                self._quiet = False
        self.refresh()

    def refresh(self) -> None:
        """Recompute the metrics and pictures for the current choice."""
        self.state = self.explorer.state(*self._choice(), self.layer.value, self.channel.value)
        self.metrics.value = f"<pre>{html.escape(self.state.text())}</pre>"
        self.plot.value = png_bytes(draw_state(self.state))


def explorer(models, feeds: Mapping, calib_feeds: Mapping | None = None, *, schemes=SCHEMES,
             methods=METHODS, layer: str | None = None, **quantize_options) -> ExplorerWidget:
    """An ipywidgets explorer of per-layer quantization error (see the module docstring).

    ``models``: an ``lwnn.Model``, with ``feeds`` (compared on) and ``calib_feeds`` (calibrated
    on; default: ``feeds``) as {input name: array}; or {name: Model} with ``feeds`` and
    ``calib_feeds`` as {name: {input name: array}}. ``schemes``/``methods``: the choices offered.
    ``quantize_options`` go to ``lwnn.quantize`` (e.g. ``q16_headroom="lwnn"``). Returns the widget.
    """
    if not isinstance(models, Mapping):
        name = models.name
        models, feeds = {name: models}, {name: feeds}
        calib_feeds = None if calib_feeds is None else {name: calib_feeds}
    calib_feeds = calib_feeds or feeds
    missing = [n for n in models if n not in feeds or n not in calib_feeds]
    if missing:
        raise LwnnError(f"explorer: no feeds for models {missing}. With several models, feeds and "
                        "calib_feeds are {model name: {input name: array}}.")
    workloads = {n: Workload(m, feeds[n], calib_feeds[n]) for n, m in models.items()}
    return ExplorerWidget(Explorer(workloads, schemes, methods, **quantize_options), layer=layer)
