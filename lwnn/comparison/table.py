"""Comparison results: one frozen ``LayerRow`` per (tensor, quantized model, mode), gathered in a
``Comparison`` with text, HTML and pandas views."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from lwnn.comparison.metrics import HIGHER_IS_BETTER, METRICS, UNITS
from lwnn.errors import LwnnError
from lwnn.quant.options import check_int, check_threshold_db, suggestion


class _ReadOnlyDict(dict):
    """A dict that refuses changes (unlike MappingProxyType, it pickles)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("LayerRow.per_channel is read-only.")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse

    def __reduce__(self):
        return _ReadOnlyDict, (dict(self),)


@dataclass(frozen=True)
class LayerRow:
    """The error of one tensor of one quantized model in one mode, against float.

    ``index``: position of the layer in execution order (-1 for a model input). ``runtime``: what
    executed the layer in the quantized run (``cpu/s8``, ``cpu/float``, ...). ``fell_back``: the
    layer was meant to run integer but ran on CPU float. ``overflow``: int32 accumulator overflows
    of the layer in this run. ``note``: why metrics are missing
    (e.g. ``folded into '/conv1/bn'``). Metrics are NaN when the tensor has no quantized
    counterpart. ``per_channel`` maps metric names to arrays (one value per channel along
    ``channel_axis``); empty when the tensor has no channel axis.
    """

    layer: str
    op: str
    tensor: str
    label: str
    mode: str
    index: int
    sqnr_db: float
    cosine: float
    mse: float
    max_abs_error: float
    rmse_lsb: float
    clip_rate: float
    step: float = math.nan
    runtime: str = ""
    fell_back: bool = False
    overflow: int = 0
    flagged: bool = False
    note: str = ""
    channel_axis: int | None = None
    shape: tuple = ()
    per_channel: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        frozen = {}
        for k, v in dict(self.per_channel).items():
            a = np.array(v, dtype=np.float64)
            a.setflags(write=False)
            frozen[k] = a
        object.__setattr__(self, "per_channel", _ReadOnlyDict(frozen))

    @property
    def metrics(self) -> dict[str, float]:
        """The whole-tensor metrics by name (``METRICS`` order)."""
        return {m: getattr(self, m) for m in METRICS}

    @property
    def compared(self) -> bool:
        """False when the tensor had no quantized counterpart (folded, not recorded)."""
        return not math.isnan(self.sqnr_db)

    @property
    def channels(self) -> int:
        return len(next(iter(self.per_channel.values()))) if self.per_channel else 0

    def __repr__(self) -> str:
        flags = "".join([", FELL BACK" if self.fell_back else "", ", FLAGGED" if self.flagged else "",
                         f", {self.overflow} OVERFLOWS" if self.overflow else "",
                         f", {self.note}" if self.note else ""])
        return (f"LayerRow({self.layer!r} {self.op} [{self.label}, {self.mode}]: "
                f"sqnr {_fmt(self.sqnr_db, 'sqnr_db')} dB, cos {_fmt(self.cosine, 'cosine')}, "
                f"mse {_fmt(self.mse, 'mse')}, max|e| {_fmt(self.max_abs_error, 'max_abs_error')}, "
                f"rmse {_fmt(self.rmse_lsb, 'rmse_lsb')} LSB, clip {_fmt(self.clip_rate, 'clip_rate')}"
                f"{flags})")


def _fmt(v: float, metric: str) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if metric == "sqnr_db":
        return f"{v:.1f}"
    if metric == "cosine":
        return f"{v:.5f}"
    if metric == "clip_rate":
        return "0" if v == 0 else (f"{v:.2%}" if v >= 1e-4 else "<0.01%")
    if metric == "rmse_lsb":
        return f"{v:.2f}"
    return f"{v:.3g}"


_TEXT_COLUMNS = ("#", "layer", "op", "label", "mode", *METRICS, "runtime", "")
_HEADERS = {"sqnr_db": "SQNR dB", "cosine": "cosine", "mse": "MSE", "max_abs_error": "max |err|",
            "rmse_lsb": "RMSE LSB", "clip_rate": "clip"}


def _status(row: LayerRow) -> str:
    parts = ["<- first below threshold" if row.flagged else "", "fell back to float" if row.fell_back else "",
             f"{row.overflow} int32 overflows" if row.overflow else "", row.note]
    return "; ".join(p for p in parts if p)


class Comparison:
    """Per-layer errors of one or several quantized models against float (``lwnn.compare``).

    ``rows``: ``LayerRow``s in execution order, grouped by label then mode. ``labels``/``modes``:
    what was compared. ``threshold_db``: SQNR below which the first layer is flagged.
    ``recordings``: {"float": Recording, (label, mode): Recording} when kept (``tensors``).
    """

    def __init__(self, rows, threshold_db: float, labels, modes, recordings=None, model_name: str = "",
                 outputs=()):
        self.rows: tuple[LayerRow, ...] = tuple(rows)
        self.outputs: tuple[str, ...] = tuple(outputs)  # the model's output tensors
        self.threshold_db = threshold_db
        self.labels: tuple[str, ...] = tuple(labels)
        self.modes: tuple[str, ...] = tuple(modes)
        self.recordings = recordings or {}
        self.model_name = model_name

    # --- selection --------------------------------------------------------------------------
    def select(self, label: str | None = None, mode: str | None = None) -> Comparison:
        """The rows of one label and/or one mode, as a ``Comparison``."""
        if label is not None and label not in self.labels:
            raise LwnnError(f"No label {label!r} in this comparison. Labels: {list(self.labels)}.")
        if mode is not None and mode not in self.modes:
            raise LwnnError(f"No mode {mode!r} in this comparison. Modes: {list(self.modes)}.")
        rows = [r for r in self.rows
                if (label is None or r.label == label) and (mode is None or r.mode == mode)]
        return Comparison(rows, self.threshold_db, [label] if label else self.labels,
                          [mode] if mode else self.modes, self.recordings, self.model_name, self.outputs)

    def row(self, name: str, label: str | None = None, mode: str | None = None) -> LayerRow:
        """The row of a layer or tensor name (of the only/given label and mode)."""
        sub = self.select(label, mode)
        if len(sub.labels) > 1 or len(sub.modes) > 1:
            raise LwnnError(f"Several rows match {name!r}: pass label= (one of {list(sub.labels)}) and "
                            f"mode= (one of {list(sub.modes)}).")
        for r in sub.rows:
            if name in (r.layer, r.tensor):
                return r
        raise LwnnError(f"No layer or tensor {name!r} in this comparison. "
                        f"Layers: {_preview(self.layer_names)}.")

    @property
    def layer_names(self) -> list[str]:
        """Layer names in execution order (each once)."""
        return list(dict.fromkeys(r.layer for r in self.rows))

    def worst(self, n: int = 10, metric: str = "sqnr_db") -> list[LayerRow]:
        """The ``n`` rows with the worst ``metric`` (lowest SQNR/cosine, highest errors)."""
        n = check_int("n", n, lo=0, error=LwnnError)
        _check_metric(metric)
        rows = [r for r in self.rows if not math.isnan(getattr(r, metric))]
        sign = 1 if HIGHER_IS_BETTER[metric] else -1
        return sorted(rows, key=lambda r: (sign * getattr(r, metric), r.index))[:n]

    def first_below(self, threshold_db: float | None = None, *, label: str | None = None,
                    mode: str | None = None) -> LayerRow | None:
        """The earliest row (execution order) whose SQNR is below ``threshold_db`` (default: the
        comparison's threshold), or None."""
        t = self.threshold_db if threshold_db is None else check_threshold_db(threshold_db)
        below = [r for r in self.select(label, mode).rows if r.sqnr_db < t]
        return min(below, key=lambda r: r.index) if below else None

    def fallbacks(self) -> list[LayerRow]:
        """Rows of layers that fell back to CPU float."""
        return [r for r in self.rows if r.fell_back]

    def channel_matrix(self, metric: str = "sqnr_db", label: str | None = None, mode: str | None = None,
                       ) -> tuple[list[LayerRow], np.ndarray]:
        """Rows with channels and a [rows, max channels] matrix of ``metric`` per channel, NaN
        where a row has fewer channels (the data of ``lwnn.viz.error_heatmap``)."""
        _check_metric(metric)
        rows = [r for r in self.one(label, mode).rows if r.per_channel]
        width = max((r.channels for r in rows), default=0)
        matrix = np.full((len(rows), width), np.nan)
        for i, r in enumerate(rows):
            matrix[i, : r.channels] = r.per_channel[metric]
        return rows, matrix

    def tensors(self, name: str, label: str | None = None, mode: str | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """The float and quantized (dequantized) values of one tensor, from the kept recordings."""
        row = self.one(label, mode).row(name)
        rec = self.recordings.get((row.label, row.mode))
        if rec is None or "float" not in self.recordings:
            raise LwnnError("This comparison did not keep its recordings: call lwnn.compare(..., "
                            "keep_recordings=True).")
        if row.tensor not in rec:
            raise LwnnError(f"Tensor {row.tensor!r} has no quantized counterpart "
                            f"({row.note or 'not recorded'}).")
        return self.recordings["float"][row.tensor], rec[row.tensor]

    def one(self, label: str | None = None, mode: str | None = None) -> Comparison:
        """The rows of one label and one mode; either may be left out when the comparison has only one."""
        label = label if label is not None else (self.labels[0] if len(self.labels) == 1 else None)
        mode = mode if mode is not None else (self.modes[0] if len(self.modes) == 1 else None)
        if label is None or mode is None:
            raise LwnnError(f"This comparison holds several labels {list(self.labels)} / modes "
                            f"{list(self.modes)}: pass label= and mode=.")
        return self.select(label, mode)

    # --- summaries and views ----------------------------------------------------------------
    def summary(self) -> list[dict]:
        """Per (label, mode): SQNR of the model's first output (else of the last compared tensor),
        the worst layer, the first layer below threshold, fallbacks and int32 overflows."""
        out = []
        for label in self.labels:
            for mode in self.modes:
                sub = self.select(label, mode)
                rows = [r for r in sub.rows if not math.isnan(r.sqnr_db)]
                if not rows:
                    continue
                worst = min(rows, key=lambda r: r.sqnr_db)
                first = sub.first_below()
                output = next((r for r in rows if self.outputs and r.tensor == self.outputs[0]), rows[-1])
                out.append({"label": label, "mode": mode, "output_sqnr_db": output.sqnr_db,
                            "min_sqnr_db": worst.sqnr_db, "worst_layer": worst.layer,
                            "first_below": first.layer if first else "",
                            "fallbacks": len({r.layer for r in sub.rows if r.fell_back}),
                            "overflows": sum(r.overflow for r in sub.rows)})
        return out

    def to_frame(self):
        """The rows as a pandas DataFrame (one row per LayerRow; per-channel arrays left out)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Comparison.to_frame() needs pandas (pip install pandas); "
                              "Comparison.rows holds the same data without it.") from None
        cols = ["index", "layer", "op", "tensor", "label", "mode", *METRICS, "step", "runtime",
                "fell_back", "overflow", "flagged", "note"]
        return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.rows], columns=cols)

    def to_text(self, max_rows: int | None = None) -> str:
        """A fixed-width table of every row (or the first ``max_rows``)."""
        rows = self.rows if max_rows is None else self.rows[:max_rows]
        table = [[_HEADERS.get(c, c) for c in _TEXT_COLUMNS]]
        table += [_cells(r) for r in rows]
        widths = [max(len(t[c]) for t in table) for c in range(len(table[0]))]
        right = {0, *range(5, 5 + len(METRICS))}
        lines = ["  ".join(v.rjust(w) if c in right else v.ljust(w) for c, (v, w) in enumerate(zip(t, widths))
                           ).rstrip() for t in table]
        if len(rows) < len(self.rows):
            lines.append(f"... {len(self.rows) - len(rows)} more rows (to_text() shows all)")
        return "\n".join(lines)

    def _header(self) -> str:
        return (f"Comparison of {self.model_name or 'model'}: {len(self.layer_names)} layers x labels "
                f"{list(self.labels)} x modes {list(self.modes)}; threshold {self.threshold_db:g} dB")

    def __repr__(self) -> str:
        return self._header() + "\n" + self.to_text(max_rows=60)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def _repr_html_(self, max_rows: int = 500) -> str:
        head = "".join(f"<th>{html.escape(_HEADERS.get(c, c))}</th>" for c in _TEXT_COLUMNS)
        body = []
        for r in self.rows[:max_rows]:
            style = ' style="background:#fdd"' if r.flagged else (' style="background:#ffe9c6"' if r.fell_back
                                                                  else "")
            body.append(f"<tr{style}>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>")
        more = (f"<p>... {len(self.rows) - max_rows} more rows (to_frame() or to_text() has all)</p>"
                if len(self.rows) > max_rows else "")
        return (f"<p>{html.escape(self._header())}</p><table class=\"lwnn-compare\"><thead><tr>{head}</tr>"
                f"</thead><tbody>{''.join(body)}</tbody></table>{more}")


def _cells(r: LayerRow) -> list[str]:
    metrics = [_fmt(getattr(r, m), m) for m in METRICS]
    return [str(r.index), r.layer, r.op, r.label, r.mode, *metrics, r.runtime, _status(r)]


def _check_metric(metric: str) -> None:
    if not isinstance(metric, str) or metric not in METRICS:
        raise LwnnError(f"Unknown metric {metric!r}. Expected one of {list(METRICS)}."
                        f"{suggestion(metric, METRICS)}")


def _preview(names: list[str], n: int = 8) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > n else ""
    return ", ".join(repr(x) for x in names[:n]) + more


__all__ = ["Comparison", "LayerRow", "UNITS"]
