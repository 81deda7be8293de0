"""``lwnn.compare``: run a float model and its quantized versions on the same feeds and measure
every layer's output error (docs/architecture.md, "Comparison")."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np

from lwnn.comparison import metrics as M
from lwnn.comparison.table import Comparison, LayerRow
from lwnn.engine import FOLDED
from lwnn.errors import LwnnError
from lwnn.quant.options import check_bool, check_threshold_db, checks_call, suggestion

MODES = ("cumulative", "isolated")
DEFAULT_THRESHOLD_DB = 20.0


@checks_call(LwnnError)
def compare(
    model,
    quantized,
    feeds: dict,
    mode: str = "cumulative",
    *,
    threshold_db: float = DEFAULT_THRESHOLD_DB,
    keep_recordings: bool = True,
    progress: bool = False,
) -> Comparison:
    """Per-layer error of quantized model(s) against the float ``model`` on ``feeds``.

    ``quantized``: a ``QuantizedModel`` (labelled ``scheme/method``) or a dict {label:
    QuantizedModel} to compare several at once. ``feeds``: {input name: array}, may hold a
    batch (metrics pool the whole batch). ``mode``: ``cumulative`` (the whole quantized net runs,
    errors accumulate), ``isolated`` (each quantized layer gets the float model's inputs,
    quantized, so its error is its own) or ``both``. Tensors are matched by the source model's
    names; a tensor with no quantized counterpart (e.g. a BatchNorm folded into its conv) gets a
    row with NaN metrics and a note. Per-channel metrics use axis 1 of tensors of rank >= 2
    (NCHW channels; for 2-D [N, F] tensors, the F features, e.g. a Dense layer's outputs).
    The first layer of each (label, mode) whose SQNR is below ``threshold_db`` is ``flagged``.
    ``keep_recordings``: keep the runs' tensors for ``Comparison.tensors`` (memory: one copy of
    every activation per run).

    Arguments are checked before anything runs: an unknown keyword, an unknown mode or a value of
    the wrong type (``threshold_db`` NaN, ``keep_recordings="yes"``) raises ``LwnnError`` naming it;
    feeds that do not fit the model raise ``FeedError``.
    """
    models = _labelled(model, quantized)
    modes = _modes(mode)
    threshold_db = check_threshold_db(threshold_db)
    keep_recordings = check_bool("keep_recordings", keep_recordings, LwnnError)
    progress = check_bool("progress", progress, LwnnError)
    reference = model.run(feeds, record=True)
    from tqdm.auto import tqdm

    rows: list[LayerRow] = []
    recordings: dict = {"float": reference} if keep_recordings else {}
    jobs = [(label, m) for label in models for m in modes]
    for label, m in tqdm(jobs, desc="comparing", unit="run", disable=not progress):
        q = models[label]
        before = dict(q.overflow)
        with warnings.catch_warnings():
            # The rows carry the overflow counts (column ``overflow``); a warning per run is noise.
            warnings.filterwarnings("ignore", message="int32 accumulator overflow")
            rec = q.run(feeds, record=True) if m == "cumulative" else _isolated(q, reference)
        overflow = {k: v - before.get(k, 0) for k, v in q.overflow.items()}
        rows += _flag(_rows(model, q, reference, rec, label, m, overflow), threshold_db)
        if keep_recordings:
            recordings[(label, m)] = rec
    return Comparison(rows, threshold_db, list(models), modes, recordings, model.name, model.graph.outputs)


def _labelled(model, quantized) -> dict:
    from lwnn.quant.qmodel import QuantizedModel

    if isinstance(model, QuantizedModel) or not hasattr(model, "graph"):
        raise LwnnError(f"compare expects the float lwnn.Model first (lwnn.load), then the quantized "
                        f"model(s). Received {type(model).__name__} first.")
    if isinstance(quantized, QuantizedModel):
        quantized = {f"{quantized.scheme}/{quantized.config.get('method', '?')}": quantized}
    if not isinstance(quantized, Mapping) or not quantized:
        raise LwnnError("compare expects a QuantizedModel or a non-empty dict {label: QuantizedModel}. "
                        f"Received {type(quantized).__name__}.")
    names = [layer.name for layer in model.layers]
    for label, q in quantized.items():
        if not isinstance(q, QuantizedModel):
            raise LwnnError(f"compare: {label!r} is a {type(q).__name__}, expected a QuantizedModel "
                            "(from lwnn.quantize).")
        theirs = [layer.name for layer in q.model.layers]
        if q.model is not model and theirs != names:
            differ = [n for n in theirs if n not in set(names)] or [n for n in names if n not in set(theirs)]
            raise LwnnError(f"compare: quantized model {label!r} was made from another model "
                            f"({q.model.name!r}, {len(theirs)} layers) than {model.name!r} ({len(names)} "
                            f"layers); layers that differ: {differ[:3]}.")
    return {str(k): v for k, v in quantized.items()}


def _modes(mode: str) -> list[str]:
    if mode == "both":
        return list(MODES)
    if not isinstance(mode, str) or mode not in MODES:
        raise LwnnError(f"Unknown comparison mode {mode!r}. Expected 'cumulative', 'isolated' or 'both'."
                        f"{suggestion(mode, (*MODES, 'both'))}")
    return [mode]


def _isolated(q, reference):
    run = getattr(q, "run_isolated", None)
    if run is None:
        raise LwnnError("Isolated comparison needs QuantizedModel.run_isolated, which this version of "
                        "lwnn.quant does not provide yet; use mode='cumulative'.")
    return run(reference)


def grid(params, ndim: int) -> tuple:
    """(step, lo, hi) of a tensor's quantization, broadcastable to a rank-``ndim`` tensor: the LSB
    (``scale`` for s8, ``2**-Q`` for q8/q16) and the range of values that round into the code
    range (half a step beyond the extreme codes): values outside it saturate."""
    if params is None:
        return math.nan, -math.inf, math.inf
    if hasattr(params, "frac_bits"):
        step = params.step
        return step, (params.qmin - 0.5) * step, (params.qmax + 0.5) * step
    scale = np.asarray(params.scale, np.float64)
    zp = np.asarray(params.zero_point, np.float64)
    if params.axis is not None and scale.ndim == 1 and ndim > 0:
        shape = [scale.size if d == params.axis % ndim else 1 for d in range(ndim)]
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    lo, hi = scale * (params.qmin - zp - 0.5), scale * (params.qmax - zp + 0.5)
    if scale.ndim == 0:
        return float(scale), float(lo), float(hi)
    return scale, lo, hi


def _entries(model, reference):
    """(index, layer name, op, tensor) of every float tensor computed at run time, inputs first."""
    out = [(-1, name, "Input", name) for name in model.inputs]
    for i, layer in enumerate(model.layers):
        if reference.executed_by.get(layer.name) in (FOLDED, None):
            continue  # computed from constants while planning: identical in every run
        for t in layer.outputs:
            if t and t in reference and np.asarray(reference[t]).dtype.kind == "f":
                out.append((i, layer.name, layer.op_type, t))
    return out


def _params(q, tensor):
    try:
        return q.tensor_params(tensor)
    except LwnnError:
        return None


def _rows(model, q, reference, rec, label: str, mode: str, overflow: dict) -> list[LayerRow]:
    plan = {p.layer: p for p in q.plan()}
    rows = []
    for index, layer, op, tensor in _entries(model, reference):
        p = plan.get(layer)
        merged = getattr(p, "folded_into", None)  # the merged convolution that ran this layer
        runtime = rec.executed_by.get(layer) or rec.executed_by.get(merged) or (p.runtime if p else "")
        runtime = runtime if index >= 0 else ""
        fell_back = runtime == "cpu/float" and p is not None and p.mode != "float"
        base = dict(layer=layer, op=op, tensor=tensor, label=label, mode=mode, index=index, runtime=runtime,
                    fell_back=fell_back, overflow=int(overflow.get(layer, 0) or overflow.get(merged, 0)))
        if tensor not in rec:
            nan = {m: math.nan for m in M.METRICS}
            rows.append(LayerRow(**base, **nan, note=_missing_note(q, model, layer, tensor, merged, rec)))
            continue
        x, y = np.asarray(reference[tensor]), np.asarray(rec[tensor])
        if x.shape != y.shape:
            raise LwnnError(f"compare: tensor {tensor!r} of layer {layer!r} has shape {x.shape} in float "
                            f"but {y.shape} in {label!r} ({mode}); the models do not match.")
        step, lo, hi = grid(_params(q, tensor), x.ndim)
        per_channel = M.channel_metrics(x, y, step, lo, hi, axis=1) if x.ndim >= 2 else {}
        rows.append(LayerRow(**base, **M.tensor_metrics(x, y, step, lo, hi), step=float(np.max(step)),
                             channel_axis=1 if per_channel else None, shape=tuple(x.shape),
                             per_channel=per_channel))
    return rows


def _missing_note(q, model, layer: str, tensor: str, merged: str | None, rec) -> str:
    """Why a float tensor has no quantized counterpart: the layers it was fused with when
    quantizing (``q.qgraph``), else the first downstream layer whose output the run recorded."""
    qgraph = getattr(q, "qgraph", None)
    members = getattr(qgraph, "members", {})
    merged = getattr(qgraph, "folded_tensors", {}).get(tensor, merged)
    if merged in members:
        others = [m for m in members[merged] if m != layer]
        return "folded: runs fused with " + ", ".join(repr(m) for m in others)
    frontier, seen = [tensor], set()
    while frontier:
        t = frontier.pop(0)
        for layer in model.layers:
            if t in layer.inputs and layer.name not in seen:
                seen.add(layer.name)
                if any(o in rec for o in layer.outputs):
                    return f"not in the quantized run (next recorded layer: {layer.name!r})"
                frontier.extend(layer.outputs)
    return "not in the quantized run"


def _flag(rows: list[LayerRow], threshold_db: float) -> list[LayerRow]:
    from dataclasses import replace

    for i, r in enumerate(rows):
        if r.sqnr_db < threshold_db:
            rows[i] = replace(r, flagged=True)
            break
    return rows
