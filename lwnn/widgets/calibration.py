"""Calibration explorer: move one tensor's clipping threshold, watch its error and histogram.

The curve and each calibration method's pick come from ``lwnn.comparison.calibration_sweep``
(s8: a threshold ``t`` keeps ``[max(min, -t), min(max, t)]`` of the observed range, widened to
contain 0); the slider's point is measured the same way (``range_error`` of that range's affine
parameters). Pictures are ``lwnn.viz.calibration_curve`` and ``lwnn.viz.tensor_histogram``.
``CalibrationExplorer.state`` computes a view; the widget only wires it to a dropdown and a slider.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as w
import numpy as np

from lwnn import viz
from lwnn.comparison.calibration import CalibrationSweep, RangeError, calibration_sweep, range_error, s8_range
from lwnn.errors import CalibrationError
from lwnn.numerics.params import affine_from_range
from lwnn.quant.ranges import METHODS
from lwnn.widgets._render import new_figure, png_bytes


def slider_error(values: np.ndarray, threshold: float) -> RangeError:
    """The s8 error of the range a clipping ``threshold`` leaves of ``values`` (as the sweep)."""
    if not threshold > 0:
        raise CalibrationError(f"A clipping threshold must be > 0. Received {threshold!r}.")
    x = np.asarray(values, np.float64).reshape(-1)
    lo, hi = s8_range(float(x.min()), float(x.max()), threshold)
    return range_error(x, affine_from_range(lo, hi, 8), lo, hi)  # its threshold: max(-lo, hi)


@dataclass(frozen=True)
class CalibrationState:
    """What the explorer shows for one tensor at one threshold: the slider's error and the sweep."""

    tensor: str
    current: RangeError
    sweep: CalibrationSweep

    def text(self) -> str:
        """The readout as plain text (rounded, so notebooks print it deterministically)."""
        lines = [f"{self.tensor}: threshold {self.current.threshold:.4g} (max |x| {self.sweep.absmax:.4g})",
                 f"{'':<11}{'threshold':>10}{'range':>22}{'clip':>9}{'MSE':>11}{'SQNR dB':>9}"]
        for label, e in [("slider", self.current), *self.sweep.picks.items()]:
            rng = f"[{e.lo:.4g}, {e.hi:.4g}]"
            lines.append(f"{label:<11}{e.threshold:>10.4g}{rng:>22}{e.clip_rate:>9.2%}{e.mse:>11.3g}"
                         f"{e.sqnr_db:>9.1f}")
        return "\n".join(lines)


SAMPLES = 200_000


def _sample(values, samples: int) -> np.ndarray:
    """At most ``samples`` values at a fixed stride, plus the extremes (which minmax needs): the
    sweep, the slider and the histogram all measure these, so their numbers agree."""
    x = np.asarray(values).reshape(-1)
    if x.size <= samples:
        return x
    return np.concatenate([x[:: -(-x.size // samples)], [x.min(), x.max()]])


class CalibrationExplorer:
    """Threshold exploration over a set of named float tensors (the calibration set's values).

    ``state(tensor, threshold)`` computes everything one view needs; each tensor's sweep is
    computed once and cached. Each tensor is measured on at most ``samples`` of its values (a
    fixed stride, plus its extremes), the methods' picks included: minmax is exact, the others
    can differ slightly from what ``lwnn.quantize`` picks from every value. ``options`` go to the
    range choice (e.g. ``percentile=99.9``).
    """

    def __init__(self, tensors: dict[str, np.ndarray], methods=METHODS, *, samples: int = SAMPLES, **options):
        usable = {n: _sample(v, samples) for n, v in tensors.items()
                  if np.asarray(v).dtype.kind == "f" and np.any(np.asarray(v) != 0)}
        if not usable:
            raise CalibrationError("No float tensor with a nonzero value to explore. "
                                   f"Received {list(tensors)[:10]}.")
        self.tensors, self.methods, self.options = usable, tuple(methods), options
        self._sweeps: dict[str, CalibrationSweep] = {}

    @property
    def names(self) -> list[str]:
        return list(self.tensors)

    def values(self, tensor: str) -> np.ndarray:
        try:
            return self.tensors[tensor]
        except KeyError:
            raise CalibrationError(f"No tensor {tensor!r} to explore. "
                                   f"Tensors: {self.names[:10]}...") from None

    def sweep(self, tensor: str) -> CalibrationSweep:
        if tensor not in self._sweeps:
            x = self.values(tensor)  # already sampled: the sweep measures exactly these values
            self._sweeps[tensor] = calibration_sweep(x, "s8", name=tensor, methods=self.methods,
                                                     samples=x.size, **self.options)
        return self._sweeps[tensor]

    def state(self, tensor: str, threshold: float) -> CalibrationState:
        return CalibrationState(tensor, slider_error(self.values(tensor), threshold), self.sweep(tensor))


def draw_calibration(state: CalibrationState, values: np.ndarray):
    """Two panels: ``viz.calibration_curve`` with the slider's threshold and error marked, and
    ``viz.tensor_histogram`` with the slider's range and grid. Returns the Figure."""
    fig = new_figure(12, 3.9)
    ax_curve, ax_hist = fig.subplots(1, 2)
    viz.calibration_curve(state.sweep, ax=ax_curve)
    e = state.current
    ax_curve.axvline(e.threshold, color="k", ls="--", lw=1)
    ax_curve.plot([e.threshold], [e.mse], "k*", ms=12, label=f"slider: t={e.threshold:.4g}, MSE {e.mse:.3g}")
    ax_curve.legend(fontsize=7)
    viz.tensor_histogram(values, affine_from_range(e.lo, e.hi, 8), name=state.tensor, ax=ax_hist)
    ax_hist.set_title(f"slider: clip [{e.lo:.4g}, {e.hi:.4g}], {e.clip_rate:.2%} of the values clipped")
    return fig


def calibration_explorer(model, calib_feeds: dict, tensor: str | None = None, *, max_samples: int = 256,
                         **options):
    """An ipywidgets explorer of one tensor's clipping threshold (see the module docstring).

    ``model``: an ``lwnn.Model``; ``calib_feeds``: {input name: array}, first axis the samples (at
    most ``max_samples`` are used); ``tensor``: the tensor shown first (default: the first layer's
    output). ``options`` go to the range choice (e.g. ``percentile=99.9``). Returns the widget
    (a ``CalibrationExplorerWidget``, an ipywidgets ``VBox``).
    """
    feeds = {name: np.asarray(v)[:max_samples] for name, v in calib_feeds.items()}
    rec = model.run(feeds, record=True)
    names = [n for layer in model.layers for n in layer.outputs if n in set(rec)]
    explorer = CalibrationExplorer({n: rec[n] for n in names}, **options)
    return CalibrationExplorerWidget(explorer, tensor or explorer.names[0])


class CalibrationExplorerWidget(w.VBox):
    """The explorer's widget: ``tensor`` (Dropdown), ``threshold`` (FloatSlider), ``readout``
    (HTML), ``plot`` (Image, PNG). ``state`` is the ``CalibrationState`` on display."""

    def __init__(self, explorer: CalibrationExplorer, tensor: str):
        self.explorer = explorer
        self.tensor = w.Dropdown(options=explorer.names, value=tensor, description="tensor",
                                 layout=w.Layout(width="480px"))
        self.threshold = w.FloatSlider(description="threshold", continuous_update=False, readout_format=".4g",
                                       layout=w.Layout(width="480px"))
        self.readout = w.HTML()
        self.plot = w.Image(format="png")
        for widget, css in ((self.tensor, "lwnn-tensor"), (self.threshold, "lwnn-threshold"),
                            (self.readout, "lwnn-readout"), (self.plot, "lwnn-plot")):
            widget.add_class(css)
        self.state: CalibrationState | None = None
        self._quiet = False
        self._set_slider(tensor)
        super().__init__([w.HBox([self.tensor, self.threshold]), self.readout, self.plot])
        self.add_class("lwnn-calibration-explorer")
        self.tensor.observe(self._on_tensor, names="value")
        self.threshold.observe(self._on_threshold, names="value")
        self.refresh()

    def _set_slider(self, tensor: str) -> None:
        absmax = self.explorer.sweep(tensor).absmax
        step = absmax / 100
        self._quiet = True  # one refresh for the new tensor, not one per slider trait
        try:
            with self.threshold.hold_trait_notifications():
                self.threshold.min = step
                self.threshold.max = absmax
                self.threshold.step = step / 4
                self.threshold.value = absmax  # start at minmax: no clipping
        finally:
            self._quiet = False

    def _on_tensor(self, change) -> None:
        self._set_slider(change["new"])
        self.refresh()

    def _on_threshold(self, change) -> None:
        if not self._quiet:
            self.refresh()

    def refresh(self) -> None:
        """Recompute the view for the current tensor and threshold."""
        self.state = self.explorer.state(self.tensor.value, self.threshold.value)
        self.readout.value = f"<pre>{html.escape(self.state.text())}</pre>"
        fig = draw_calibration(self.state, self.explorer.values(self.tensor.value))
        self.plot.value = png_bytes(fig)
