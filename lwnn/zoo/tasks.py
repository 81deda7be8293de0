"""Task-level agreement of a quantized model with float, for the real pretrained models of
``lwnn.zoo``: does the integer device still find the same text boxes, the same speech?

Text detection (PP-OCR's DBNet, ``zoo.rapidocr_model("det")``): ``text_boxes`` turns the
probability map into axis-aligned boxes the way DBNet's post-processing does (threshold,
connected components, box score, unclip); ``box_agreement`` matches the quantized model's boxes
to float's one-to-one at an IoU threshold and gives precision, recall and F1 (float is the
reference). ``mask_agreement`` is the fraction of pixels whose text/no-text decision is the same.

Voice activity (``zoo.silero_vad_model()``): ``decision_agreement`` is the fraction of frames
whose speech/non-speech decision is the same; ``speech_segments`` turns per-frame
probabilities into speech segments with silero's hysteresis and minimum durations, and
``segment_agreement`` matches segments like boxes (1-D IoU).

    ref, got = text_boxes(float_map), text_boxes(quant_map)
    box_agreement(ref, got).f1
    decision_agreement(float_probs, quant_probs)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lwnn.errors import LwnnError

# DBNet post-processing as rapidocr configures it (ch_ppocr_det: thresh, box_thresh, unclip_ratio).
TEXT_THRESHOLD, BOX_THRESHOLD, UNCLIP_RATIO = 0.3, 0.5, 1.6
# silero-vad's get_speech_timestamps defaults, in 32 ms frames of 16 kHz audio.
SPEECH_THRESHOLD = 0.5
FRAME_SECONDS = 512 / 16000
MIN_SPEECH_FRAMES = 8  # 250 ms
MIN_SILENCE_FRAMES = 3  # 100 ms


@dataclass(frozen=True)
class Agreement:
    """One-to-one matches between reference (float) and candidate (quantized) detections.

    ``matched``: pairs above the IoU threshold; ``reference``/``candidate``: detections of each.
    Agreements add up (``a + b`` pools the counts of two images or clips). With nothing to find
    and nothing found, precision, recall and F1 are 1.
    """

    matched: int
    reference: int
    candidate: int

    @property
    def precision(self) -> float:
        return self.matched / self.candidate if self.candidate else float(self.reference == 0)

    @property
    def recall(self) -> float:
        return self.matched / self.reference if self.reference else float(self.candidate == 0)

    @property
    def f1(self) -> float:
        total = self.reference + self.candidate
        return 2 * self.matched / total if total else 1.0

    def __add__(self, other: Agreement) -> Agreement:
        return Agreement(self.matched + other.matched, self.reference + other.reference,
                         self.candidate + other.candidate)

    def __repr__(self) -> str:
        return (f"Agreement({self.matched} matched of {self.reference} reference / {self.candidate} "
                f"candidate: precision {self.precision:.3f}, recall {self.recall:.3f}, F1 {self.f1:.3f})")


# --- text boxes --------------------------------------------------------------------------------

def _map2d(prob) -> np.ndarray:
    p = np.asarray(prob, np.float64)
    p = p.reshape(p.shape[-2:]) if p.ndim > 2 and int(np.prod(p.shape[:-2])) == 1 else p
    if p.ndim != 2:
        raise LwnnError("Expected one probability map ([H, W] or [1, 1, H, W]). "
                        f"Received shape {np.shape(prob)}.")
    return p


def text_boxes(prob, threshold: float = TEXT_THRESHOLD, box_threshold: float = BOX_THRESHOLD,
               unclip_ratio: float = UNCLIP_RATIO, min_size: int = 3) -> np.ndarray:
    """Axis-aligned text boxes [N, 4] as (x0, y0, x1, y1) in map pixels, from a DBNet probability
    map ([H, W] or [1, 1, H, W]).

    Pixels above ``threshold`` are grouped into 8-connected components; a component's box is kept
    when its shorter side is at least ``min_size`` and its pixels' mean probability is at least
    ``box_threshold`` (DBNet scores the polygon around the component; a slanted line's upright
    box would hold mostly background); it is then grown on every side by ``area * unclip_ratio / perimeter``
    (DBNet shrinks text regions by that distance in training) and clipped to the map. Boxes are
    ordered top to bottom, then left to right.
    """
    from scipy import ndimage

    p = _map2d(prob)
    labels, _ = ndimage.label(p > threshold, structure=np.ones((3, 3), bool))
    boxes = []
    for index, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        h, w = rows.stop - rows.start, cols.stop - cols.start
        if min(h, w) < min_size or p[rows, cols][labels[rows, cols] == index].mean() < box_threshold:
            continue
        grow = h * w * unclip_ratio / (2 * (h + w))
        boxes.append((max(cols.start - grow, 0.0), max(rows.start - grow, 0.0),
                      min(cols.stop + grow, p.shape[1]), min(rows.stop + grow, p.shape[0])))
    out = np.array(boxes, np.float64).reshape(-1, 4)
    return out[np.lexsort((out[:, 0], out[:, 1]))]


def box_iou(a, b) -> np.ndarray:
    """IoU [len(a), len(b)] of boxes given as (x0, y0, x1, y1)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def interval_iou(a, b) -> np.ndarray:
    """IoU [len(a), len(b)] of intervals given as (start, end)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 2), np.asarray(b, np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]),
                    0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match(iou: np.ndarray, iou_threshold: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one (reference, candidate) pairs from an IoU matrix: greedily, highest IoU first
    (ties: lower indices first), each pair at least ``iou_threshold``."""
    iou = np.asarray(iou, np.float64)
    i, j = np.nonzero(iou >= iou_threshold)
    order = np.lexsort((j, i, -iou[i, j]))
    used_i, used_j, pairs = set(), set(), []
    for k in order:
        if i[k] not in used_i and j[k] not in used_j:
            used_i.add(i[k])
            used_j.add(j[k])
            pairs.append((int(i[k]), int(j[k])))
    return pairs


def box_agreement(reference, candidate, iou_threshold: float = 0.5) -> Agreement:
    """How many of float's text boxes (``reference``) the quantized model finds (``candidate``),
    matched one to one at ``iou_threshold``."""
    reference, candidate = np.asarray(reference).reshape(-1, 4), np.asarray(candidate).reshape(-1, 4)
    pairs = match(box_iou(reference, candidate), iou_threshold)
    return Agreement(len(pairs), len(reference), len(candidate))


def mask_agreement(reference, candidate, threshold: float = TEXT_THRESHOLD) -> float:
    """Fraction of pixels classified the same (text: probability above ``threshold``)."""
    r, c = np.asarray(reference), np.asarray(candidate)
    if r.shape != c.shape:
        raise LwnnError(f"mask_agreement: the maps differ in shape. Received {r.shape} and {c.shape}.")
    return float(np.mean((r > threshold) == (c > threshold)))


def mask_iou(reference, candidate, threshold: float = TEXT_THRESHOLD) -> float:
    """IoU of the text masks (probability above ``threshold``); 1 when neither has text."""
    r, c = np.asarray(reference) > threshold, np.asarray(candidate) > threshold
    if r.shape != c.shape:
        raise LwnnError(f"mask_iou: the maps differ in shape. Received {r.shape} and {c.shape}.")
    union = np.count_nonzero(r | c)
    return np.count_nonzero(r & c) / union if union else 1.0


def text_agreement(reference_maps, candidate_maps, iou_threshold: float = 0.5,
                   threshold: float = TEXT_THRESHOLD) -> dict[str, float]:
    """Agreement of a quantized detector's probability maps with float's, pooled over images
    (two lists of maps, one per image): ``box_f1``, ``box_precision``, ``box_recall`` (boxes
    matched at ``iou_threshold``), ``mask_iou`` (text pixels of all images together) and
    ``pixel_agreement``."""
    pairs = list(zip(reference_maps, candidate_maps, strict=True))
    boxes = Agreement(0, 0, 0)
    for r, c in pairs:
        boxes += box_agreement(text_boxes(r, threshold), text_boxes(c, threshold), iou_threshold)
    r = np.concatenate([np.ravel(r) for r, _ in pairs])
    c = np.concatenate([np.ravel(c) for _, c in pairs])
    return {"box_f1": boxes.f1, "box_precision": boxes.precision, "box_recall": boxes.recall,
            "mask_iou": mask_iou(r, c, threshold), "pixel_agreement": mask_agreement(r, c, threshold)}


# --- speech ------------------------------------------------------------------------------------

def decision_agreement(reference, candidate, threshold: float = SPEECH_THRESHOLD) -> float:
    """Fraction of frames whose speech decision (probability above ``threshold``) is the same."""
    r, c = np.asarray(reference).reshape(-1), np.asarray(candidate).reshape(-1)
    if r.shape != c.shape:
        raise LwnnError(f"decision_agreement: {r.size} reference frames but {c.size} candidate frames.")
    return float(np.mean((r > threshold) == (c > threshold)))


def speech_segments(probs, threshold: float = SPEECH_THRESHOLD, neg_threshold: float | None = None,
                    min_speech: int = MIN_SPEECH_FRAMES, min_silence: int = MIN_SILENCE_FRAMES) -> np.ndarray:
    """Speech segments [N, 2] as (first frame, frame after the last) from per-frame probabilities.

    As silero's ``get_speech_timestamps``: speech starts at a frame at or above ``threshold``;
    it ends at a frame below ``neg_threshold`` (default ``threshold - 0.15``) when, by a later
    frame also below it at least ``min_silence`` frames on, no frame has reached ``threshold``
    again; a segment still open at the end runs to the last frame. Segments shorter than
    ``min_speech`` frames are dropped.
    """
    p = np.asarray(probs, np.float64).reshape(-1)
    low = threshold - 0.15 if neg_threshold is None else neg_threshold
    segments, start, quiet_from = [], None, None
    for t, v in enumerate(p):
        if v >= threshold:
            quiet_from = None  # speech (again): a pause that had begun is cancelled
            start = t if start is None else start
        elif start is not None and v < low:
            quiet_from = t if quiet_from is None else quiet_from
            if t - quiet_from >= min_silence:
                segments.append((start, quiet_from))
                start, quiet_from = None, None
    if start is not None:
        segments.append((start, p.size))
    out = np.array([s for s in segments if s[1] - s[0] >= min_speech], np.int64)
    return out.reshape(-1, 2)


def segment_agreement(reference, candidate, iou_threshold: float = 0.5) -> Agreement:
    """Float's speech segments (``reference``) matched one to one to the quantized model's."""
    reference, candidate = np.asarray(reference).reshape(-1, 2), np.asarray(candidate).reshape(-1, 2)
    pairs = match(interval_iou(reference, candidate), iou_threshold)
    return Agreement(len(pairs), len(reference), len(candidate))


def vad_agreement(reference_probs, candidate_probs, threshold: float = SPEECH_THRESHOLD,
                  iou_threshold: float = 0.5) -> dict[str, float]:
    """Agreement of a quantized VAD's per-frame speech probabilities with float's, pooled over
    clips (two lists, one array per clip): ``decision_agreement`` (frames), ``segment_f1``
    (speech segments matched at ``iou_threshold``) and ``speech_fraction`` (of the candidate's
    frames; float's own fraction tells what a constant answer would score)."""
    pairs = list(zip(reference_probs, candidate_probs, strict=True))
    segments = Agreement(0, 0, 0)
    for r, c in pairs:
        segments += segment_agreement(speech_segments(r, threshold), speech_segments(c, threshold),
                                      iou_threshold)
    r = np.concatenate([np.ravel(r) for r, _ in pairs])
    c = np.concatenate([np.ravel(c) for _, c in pairs])
    return {"decision_agreement": decision_agreement(r, c, threshold), "segment_f1": segments.f1,
            "speech_fraction": float(np.mean(c > threshold))}


# --- pictures (as lwnn.viz: data in, an optional ax, the Figure out, no plt.show) ----------------

def _image(image) -> np.ndarray:
    """An [H, W, 3] picture in [0, 1] from an image array or a rapidocr det feed [1, 3, H, W] in [-1, 1]."""
    x = np.asarray(image, np.float64)
    if x.ndim == 4:
        return np.clip(x[0].transpose(1, 2, 0) * 0.5 + 0.5, 0, 1)
    return x / 255.0 if x.max() > 1 else x


def draw_text_boxes(image, boxes, *, title: str = "", color: str = "tab:red", ax=None):
    """``image`` (an [H, W(, 3)] array, or a det feed [1, 3, H, W]) with ``boxes`` (x0, y0, x1, y1)
    drawn on it. Returns the Figure (or ``ax``)."""
    from matplotlib.patches import Rectangle

    from lwnn.viz._base import new_axes, result

    picture = _image(image)
    fig, ax, owned = new_axes(ax, (8, 8 * picture.shape[0] / picture.shape[1] + 0.5))
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
    for x0, y0, x1, y1 in np.asarray(boxes).reshape(-1, 4):
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, lw=1.2))
    ax.set_title(title or f"{len(boxes)} text boxes")
    ax.set_axis_off()
    return result(fig, ax, owned)


def speech_plot(audio, probs: dict, *, threshold: float = SPEECH_THRESHOLD, rate: int = 16000,
                frame: int = 512, title: str = "", ax=None):
    """The waveform (grey, scaled to peak 1) with each series of per-frame speech probabilities
    (``probs``: {label: probabilities}); the first series' speech segments are shaded. Returns
    the Figure (or ``ax``)."""
    from lwnn.viz._base import new_axes, result

    a = np.asarray(audio, np.float64).reshape(-1)
    fig, ax, owned = new_axes(ax, (10, 3.2))
    ax.plot(np.arange(a.size) / rate, a / max(np.abs(a).max(), 1e-12), color="0.75", lw=0.5, label="waveform")
    for k, (label, p) in enumerate(probs.items()):
        p = np.asarray(p).reshape(-1)
        t = (np.arange(p.size) + 0.5) * frame / rate
        ax.plot(t, p, color="k" if k == 0 else f"C{k - 1}", lw=1.4 if k == 0 else 1.0,
                ls="-" if k == 0 else "--", label=f"P(speech), {label}")
        if k == 0:
            for n, (s, e) in enumerate(speech_segments(p, threshold)):
                ax.axvspan(s * frame / rate, e * frame / rate, color="tab:green", alpha=0.15, lw=0,
                           label=f"speech ({label})" if n == 0 else None)
    ax.axhline(threshold, color="tab:red", lw=0.8, ls=":", label=f"threshold {threshold:g}")
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlim(0, a.size / rate)
    ax.set_xlabel("time (s)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return result(fig, ax, owned)
