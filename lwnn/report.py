"""``lwnn report``: one self-contained HTML file of a model's per-layer float versus s8/q8/q16
behaviour (tables and base64 PNG plots; no external file or URL).

Data: a ``.npz`` whose arrays are keyed by the model's input names (first axis = samples), or a
``.npy``/single-array ``.npz`` for a one-input model; an optional ``labels`` array (int class per
sample) adds top-1 accuracy and a reliability diagram. The first ``calib`` samples calibrate
(default: half), the rest are evaluated (at most ``max_eval``).
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
import warnings
from pathlib import Path

import numpy as np

from lwnn.errors import FeedError, LwnnError
from lwnn.quant.options import checks_call

LABEL_KEYS = ("labels", "label", "y")
CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1250px;color:#222;padding:0 16px}
h1{font-size:24px}h2{font-size:19px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:12.5px}th,td{border:1px solid #ddd;padding:3px 7px;
text-align:left}th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.flagged{background:#fdd}tr.fell_back{background:#ffe9c6}
img{max-width:100%;border:1px solid #eee;margin:6px 0}.note{color:#555;font-size:12.5px}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
.row{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}"""


def load_data(path, model) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """(feeds with a leading sample axis, labels or None) from a ``.npz``/``.npy`` file (see the
    module docstring for the format)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No data file {str(path)!r}.")
    inputs = list(model.inputs)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise FeedError(f"{str(path)!r} is not a NumPy .npz/.npy file: {err}") from None
    if isinstance(loaded, np.ndarray):
        arrays = {inputs[0]: loaded} if len(inputs) == 1 else {}
        if not arrays:
            raise FeedError(f"{str(path)!r} holds one array; model {model.name!r} has inputs {inputs}: use a "
                            ".npz keyed by input name.")
        return arrays, None
    with loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    labels = next((arrays.pop(k) for k in LABEL_KEYS if k in arrays), None)
    if len(inputs) == 1 and inputs[0] not in arrays and len(arrays) == 1:
        arrays = {inputs[0]: next(iter(arrays.values()))}
    missing = [n for n in inputs if n not in arrays]
    if missing:
        raise FeedError(f"{str(path)!r} has no array for inputs {missing} of model {model.name!r}. Arrays: "
                        f"{sorted(arrays)}; expected keys {inputs} (and optionally 'labels').")
    return {n: arrays[n] for n in inputs}, labels


def _png(fig, dpi: int = 80) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(headers, rows, classes=None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(f'<td class="n">{_num(v)}</td>' if _is_number(v)
                        else f"<td>{html.escape(str(v))}</td>" for v in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _num(v) -> str:
    if isinstance(v, int):
        return f"{v:,}"
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3g}"


def _split(feeds: dict, labels, calib: int | None, max_eval: int, model):
    n = len(next(iter(feeds.values())))
    if any(len(v) != n for v in feeds.values()) or (labels is not None and len(labels) != n):
        raise FeedError(f"Every data array needs the same number of samples ({n}).")
    calib = max(1, n // 2) if calib is None else min(max(1, calib), n)
    notes = []
    start = calib if calib < n else 0
    if start == 0:
        notes.append(f"only {n} sample(s): calibrated and evaluated on the same data")
    fixed = [spec.shape[0] for spec in model.graph.inputs.values()
             if spec.shape and spec.shape[0] is not None]
    stop = min(n, start + (fixed[0] if fixed else max_eval))
    take = lambda a, b: {k: v[a:b] for k, v in feeds.items()}  # noqa: E731
    return take(0, calib), take(start, stop), None if labels is None else labels[start:stop], notes


class _Report:
    """Collects the sections of one report."""

    def __init__(self):
        self.parts: list[str] = []

    def h2(self, title: str, anchor: str):
        self.parts.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')

    def add(self, fragment: str):
        self.parts.append(fragment)

    def note(self, text: str):
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')


def _check_arguments(model, feeds, labels, out, schemes, method, calib, max_eval, threshold_db, source,
                     progress) -> dict:
    """``build_report``'s arguments, checked by the rules of ``lwnn.quant.options`` before any work."""
    from collections.abc import Mapping

    from lwnn.numerics.params import SCHEMES
    from lwnn.quant.options import (
        check_bool,
        check_choices,
        check_int,
        check_method,
        check_model,
        check_threshold_db,
        received,
    )

    check_model("build_report", model)
    if not isinstance(feeds, Mapping) or not feeds:
        raise FeedError(f"build_report: feeds must be a non-empty dict {{input name: array}} (first axis = "
                        f"samples). Received {received(feeds)}.")
    inputs = list(model.inputs)
    missing, unexpected = [n for n in inputs if n not in feeds], [n for n in feeds if n not in inputs]
    if missing or unexpected:
        raise FeedError(f"build_report: feeds must have one array per model input {inputs}: missing "
                        f"{missing}, unexpected {unexpected}.")
    feeds = {n: np.asarray(feeds[n]) for n in inputs}
    if any(v.ndim == 0 or len(v) == 0 for v in feeds.values()):
        raise FeedError(f"build_report: every feed needs a first (sample) axis with at least one sample. "
                        f"Received shapes { {n: v.shape for n, v in feeds.items()} }.")
    if labels is not None and np.ndim(labels) != 1:
        raise FeedError(f"build_report: labels must be a 1-D array of class indices (or None). Received "
                        f"{received(labels)}.")
    if not isinstance(out, str | Path):
        raise LwnnError(f"build_report: out must be a file path. Received {received(out)}.")
    if not Path(out).parent.is_dir():
        raise LwnnError(f"build_report: out {str(out)!r}: the folder {str(Path(out).parent)!r} does not "
                        "exist.")
    if not isinstance(source, str):
        raise LwnnError(f"build_report: source must be a string. Received {received(source)}.")
    return dict(feeds=feeds, schemes=check_choices("schemes", schemes, SCHEMES, what="scheme"),
                method=check_method(method), calib=check_int("calib", calib, lo=1, none=True),
                max_eval=check_int("max_eval", max_eval, lo=1, error=LwnnError),
                threshold_db=check_threshold_db(threshold_db),
                progress=check_bool("progress", progress, LwnnError))


@checks_call(LwnnError)
def build_report(model, feeds: dict, labels=None, *, out="report.html", schemes=("s8", "q8", "q16"),
                 method: str = "minmax", calib: int | None = None, max_eval: int = 256,
                 threshold_db: float = 20.0, source: str = "", progress: bool = True) -> Path:
    """Write the HTML report of ``model`` (an ``lwnn.Model``) on ``feeds`` ({input: array with a
    sample axis}) and return its path. See the module docstring for ``calib``/``max_eval``.

    Arguments are checked before any work: unknown schemes or method, ``calib``/``max_eval``
    below 1 or not integers, a NaN threshold, feeds that do not match the model's inputs or an
    ``out`` whose folder does not exist raise an ``LwnnError`` naming the argument."""
    from tqdm.auto import tqdm

    args = _check_arguments(model, feeds, labels, out, schemes, method, calib, max_eval, threshold_db,
                            source, progress)
    feeds, schemes, method, calib, max_eval, threshold_db, progress = (
        args[k] for k in ("feeds", "schemes", "method", "calib", "max_eval", "threshold_db", "progress"))

    import lwnn
    from lwnn import viz
    from lwnn.comparison import calibration_sweep, metrics

    started = time.perf_counter()
    calib_feeds, eval_feeds, eval_labels, notes = _split(feeds, labels, calib, max_eval, model)
    n_calib, n_eval = len(next(iter(calib_feeds.values()))), len(next(iter(eval_feeds.values())))
    bar = tqdm(total=3 + 2 * len(schemes), desc="report", unit="step", disable=not progress)
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        qs = {}
        for s in schemes:
            bar.set_postfix_str(f"calibrating {s}")
            qs[s] = lwnn.quantize(model, calib_feeds, s, method, progress=False)
            bar.update()
        bar.set_postfix_str("comparing")
        mode = "both" if all(hasattr(q, "run_isolated") for q in qs.values()) else "cumulative"
        table = lwnn.compare(model, qs, eval_feeds, mode=mode, threshold_db=threshold_db)
        outputs = {s: q.run(eval_feeds)[model.graph.outputs[0]] for s, q in qs.items()}
        bar.update()
        caught += sorted({str(w.message) for w in seen})
    float_out = table.recordings["float"][model.graph.outputs[0]]
    doc = _Report()
    _header(doc, model, source, schemes, method, n_calib, n_eval, threshold_db, notes)
    _summary(doc, table, qs, float_out, outputs, eval_labels, metrics)
    doc.add(_png(viz.metric_by_layer(table)))
    _worst(doc, table)
    bar.update()
    for s in schemes:
        bar.set_postfix_str(f"pictures {s}")
        _scheme_section(doc, model, table, qs[s], s, calib_feeds, viz, calibration_sweep)
        bar.update()
    _fallbacks_and_overflow(doc, table, qs, caught)
    if eval_labels is not None and float_out.ndim == 2:
        doc.h2("Confidence calibration", "reliability")
        doc.add(_png(viz.reliability_diagram(float_out, outputs, eval_labels)))
    _all_rows(doc, table)
    bar.update()
    bar.close()
    seconds = time.perf_counter() - started
    doc.note(f"Generated by lwnn {lwnn.__version__} in {seconds:.1f} s.")
    out = Path(out)
    title = html.escape(f"lwnn report: {model.name}")
    out.write_text(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
                   f"<style>{CSS}</style></head><body><h1>{title}</h1>{''.join(doc.parts)}</body></html>",
                   encoding="utf-8")
    return out


def _header(doc, model, source, schemes, method, n_calib, n_eval, threshold_db, notes):
    ins = ", ".join(f"{n}: {s.describe()}" for n, s in model.graph.inputs.items())
    where = f" ({html.escape(source)})" if source else ""
    doc.add(f"<p>Model <b>{html.escape(model.name)}</b>{where}: {len(model.layers)} layers, inputs "
            f"{html.escape(ins)}. Schemes {', '.join(schemes)}, calibration <b>{html.escape(method)}</b> on "
            f"{n_calib} samples, evaluated on {n_eval} samples. Threshold {threshold_db:g} dB.</p>")
    doc.add('<p class="note">Per layer output, against float: SQNR = 20 log10(|x| / |x - y|) dB (higher '
            "is better; +inf = exact), cosine similarity, MSE, max |error|, RMSE in LSBs of that tensor's "
            "step, clip rate (float values beyond the representable range). <i>cumulative</i>: the whole "
            "quantized network runs, so errors accumulate; <i>isolated</i>: each layer is fed the float "
            "model's inputs, quantized, so its error is its own. Sections: <a href=\"#summary\">summary</a>, "
            "<a href=\"#worst\">worst layers</a>, per-scheme pictures, <a href=\"#fallbacks\">fallbacks "
            "and overflow</a>, <a href=\"#rows\">every layer</a>.</p>")
    for n in notes:
        doc.note("Note: " + n)


def _summary(doc, table, qs, float_out, outputs, labels, metrics):
    doc.h2("Summary per scheme", "summary")
    classify = float_out.ndim == 2
    headers = ["scheme", "mode", "output SQNR dB", "lowest layer SQNR dB", "lowest layer",
               "first layer below threshold", "integer layers", "fell back", "int32 overflows"]
    if classify:
        headers.append("top-1 agreement with float")
    if classify and labels is not None:
        headers.append("top-1 accuracy")
    rows = []
    by_key = {(s["label"], s["mode"]): s for s in table.summary()}
    for label, q in qs.items():
        plan = q.plan()
        integer = sum(p.runtime != "cpu/float" for p in plan)
        for mode in table.modes:
            s = by_key.get((label, mode))
            if s is None:
                continue
            row = [label, mode, s["output_sqnr_db"], s["min_sqnr_db"], s["worst_layer"],
                   s["first_below"] or "none", f"{integer}/{len(plan)}", s["fallbacks"],
                   s["overflows"] if mode == "cumulative" else "-"]
            if classify:
                agree = metrics.top1_agreement(float_out, outputs[label])
                row.append(f"{agree:.2%}" if mode == "cumulative" else "-")
            if classify and labels is not None:
                accuracy = metrics.top1_accuracy(outputs[label], labels)
                row.append(f"{accuracy:.2%}" if mode == "cumulative" else "-")
            rows.append(row)
    if classify and labels is not None:
        accuracy = metrics.top1_accuracy(float_out, labels)
        rows.append(["float", "", math.inf, math.inf, "", "", "", 0, 0, "100.00%", f"{accuracy:.2%}"])
    doc.add(_table(headers, rows))


def _row_cells(r):
    flags = ("first below threshold" if r.flagged else "", "fell back" if r.fell_back else "", r.note)
    return [r.index, r.layer, r.op, r.label, r.mode, r.sqnr_db, r.cosine, r.rmse_lsb, r.clip_rate, r.runtime,
            "; ".join(p for p in flags if p)]


_ROW_HEADERS = ["#", "layer", "op", "scheme", "mode", "SQNR dB", "cosine", "RMSE LSB", "clip rate", "runtime",
                "note"]


def _classes(rows):
    return ["flagged" if r.flagged else "fell_back" if r.fell_back else "" for r in rows]


def _worst(doc, table):
    doc.h2("Worst layers", "worst")
    for mode in table.modes:
        worst = table.select(mode=mode).worst(12)
        doc.add(f"<p>Lowest SQNR, {mode}:</p>"
                + _table(_ROW_HEADERS, [_row_cells(r) for r in worst], _classes(worst)))


def _worst_row(table, scheme):
    for mode in ("isolated", "cumulative"):
        if mode in table.modes:
            worst = [r for r in table.select(scheme, mode).worst(50)
                     if math.isfinite(r.sqnr_db) and r.index >= 0]
            if worst:
                return worst[0]
    return None


def _scheme_section(doc, model, table, q, scheme, calib_feeds, viz, calibration_sweep):
    doc.h2(f"{scheme}: per-channel error, graph, worst tensor", f"scheme-{scheme}")
    doc.add(_png(viz.error_heatmap(table, label=scheme, mode="cumulative")))
    doc.add(_png(viz.graph_view(model, table, label=scheme, mode="cumulative")))
    row = _worst_row(table, scheme)
    if row is None:
        doc.note("No layer with a finite SQNR to show.")
        return
    doc.note(f"Worst tensor ({row.mode} SQNR {row.sqnr_db:.1f} dB): {row.tensor} of layer {row.layer} "
             f"({row.op}). Histogram and scatter: cumulative run; calibration curve: calibration data.")
    x, y = table.tensors(row.tensor, scheme, "cumulative")
    try:
        params = q.tensor_params(row.tensor)
    except LwnnError:
        params = None
    pictures = _png(viz.tensor_histogram(x, params, name=row.tensor))
    pictures += _png(viz.scatter(x, y, name=row.tensor))
    calib_values = model.run({k: v[:64] for k, v in calib_feeds.items()}, record=True)[row.tensor]
    if np.any(calib_values != 0):
        sweep = calibration_sweep(calib_values, scheme, name=row.tensor)
        pictures += _png(viz.calibration_curve(sweep, values=calib_values, params=params))
    doc.add(f'<div class="row">{pictures}</div>')


def _fallbacks_and_overflow(doc, table, qs, caught):
    doc.h2("Fallbacks and int32 overflow", "fallbacks")
    fell = [r for r in table.rows if r.fell_back and r.mode == "cumulative"]
    if fell:
        cells = [[r.index, r.layer, r.op, r.label, r.runtime] for r in fell]
        doc.add(_table(["#", "layer", "op", "scheme", "runtime"], cells))
    else:
        doc.note("No layer fell back to float: every layer ran on its integer kernel (or was folded).")
    over = [[label, layer, count] for label, q in qs.items()
            for layer, count in sorted(q.overflow.items()) if count]
    if over:
        doc.add("<p>int32 accumulator overflows (the device would wrap these values):</p>"
                + _table(["scheme", "layer", "overflows"], over))
    else:
        doc.note("No int32 accumulator overflow.")
    for message in caught:
        doc.note("Warning during the runs: " + message)


def _all_rows(doc, table):
    doc.h2("Every layer", "rows")
    for label in table.labels:
        rows = table.select(label=label).rows
        doc.add(f"<details><summary>{html.escape(label)}: {len(rows)} rows</summary>"
                + _table(_ROW_HEADERS, [_row_cells(r) for r in rows], _classes(rows)) + "</details>")
