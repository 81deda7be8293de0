"""lwnn.zoo.tasks: text boxes, matching and agreement, speech decisions and segments, against cases
worked out by hand; then DBNet's boxes on the real page."""

from __future__ import annotations

import numpy as np
import pytest

from lwnn.errors import LwnnError
from lwnn.zoo import tasks
from lwnn.zoo.tasks import Agreement


def test_agreement_counts_give_precision_recall_f1():
    a = Agreement(matched=2, reference=3, candidate=4)
    assert a.precision == pytest.approx(0.5)
    assert a.recall == pytest.approx(2 / 3)
    assert a.f1 == pytest.approx(4 / 7)  # 2 * 2 / (3 + 4)
    pooled = a + Agreement(1, 1, 1)
    assert (pooled.matched, pooled.reference, pooled.candidate) == (3, 4, 5)
    assert pooled.f1 == pytest.approx(6 / 9)


def test_agreement_with_nothing_to_find():
    assert Agreement(0, 0, 0).f1 == Agreement(0, 0, 0).precision == Agreement(0, 0, 0).recall == 1.0
    missed = Agreement(0, 2, 0)  # float found two, the quantized model none
    assert (missed.precision, missed.recall, missed.f1) == (0.0, 0.0, 0.0)
    spurious = Agreement(0, 0, 3)
    assert (spurious.precision, spurious.recall, spurious.f1) == (0.0, 0.0, 0.0)
    assert "F1 0.571" in repr(Agreement(2, 3, 4))


def test_box_iou_by_hand():
    a = [[0, 0, 2, 2], [10, 10, 11, 11]]
    b = [[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]]
    iou = tasks.box_iou(a, b)
    assert iou.shape == (2, 3)
    assert iou[0, 0] == pytest.approx(1 / 7)  # overlap 1, areas 4 + 4
    assert iou[0, 1] == pytest.approx(1.0)
    assert iou[0, 2] == 0.0 and not iou[1].any()
    assert tasks.box_iou(np.zeros((0, 4)), b).shape == (0, 3)


def test_interval_iou_by_hand():
    iou = tasks.interval_iou([[0, 10], [20, 30]], [[5, 15], [20, 25], [40, 41]])
    np.testing.assert_allclose(iou, [[5 / 15, 0, 0], [0, 0.5, 0]])


def test_match_is_greedy_one_to_one_highest_iou_first():
    iou = np.array([[0.9, 0.6], [0.8, 0.0]])
    # (0, 0) goes first; row 1's only candidate is taken, column 1 is below nothing else.
    assert tasks.match(iou, 0.5) == [(0, 0)]
    assert tasks.match(iou, 0.95) == []
    iou = np.array([[0.55, 0.7], [0.6, 0.2]])
    assert tasks.match(iou, 0.5) == [(0, 1), (1, 0)]
    assert tasks.match(np.array([[0.5, 0.5]]), 0.5) == [(0, 0)]  # a tie goes to the lower index


def test_box_agreement():
    ref = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]
    got = [[1, 0, 10, 10], [20, 0, 24, 10], [60, 0, 70, 10]]  # IoU 0.9, 0.4, 0
    a = tasks.box_agreement(ref, got, 0.5)
    assert (a.matched, a.reference, a.candidate) == (1, 3, 3)
    assert tasks.box_agreement(ref, got, 0.3).matched == 2
    assert tasks.box_agreement(ref, []).f1 == 0.0


def dbnet_map() -> np.ndarray:
    """A 20 x 40 map with: a confident 4 x 10 line, a faint 3 x 8 blob (mean 0.35 < box
    threshold), a confident 2-pixel-high sliver (shorter side below min_size), and a confident
    L-shaped line joined diagonally (8-connectivity) to a second piece."""
    p = np.zeros((20, 40))
    p[2:6, 3:13] = 0.9
    p[10:13, 2:10] = 0.35
    p[16:18, 2:20] = 0.9
    p[8:11, 20:30] = 0.8
    p[11:14, 30:33] = 0.8  # touches the block above only at its corner (10, 29) - (11, 30)
    return p[None, None]


def test_text_boxes_threshold_components_score_and_unclip():
    boxes = tasks.text_boxes(dbnet_map(), threshold=0.3, box_threshold=0.5, unclip_ratio=1.6, min_size=3)
    assert boxes.shape == (2, 4)
    # The line: h 4, w 10 -> grown by 4 * 10 * 1.6 / (2 * 14) = 2.2857 on each side, clipped at 0.
    g = 64 / 28
    np.testing.assert_allclose(boxes[0], [3 - g, 0, 13 + g, 6 + g])
    # The joined piece: rows 8..13, columns 20..32 -> h 6, w 13: grown by 6 * 13 * 1.6 / 38.
    g = 6 * 13 * 1.6 / 38
    np.testing.assert_allclose(boxes[1], [20 - g, 8 - g, 33 + g, 14 + g])


def test_text_boxes_options():
    p = dbnet_map()
    assert len(tasks.text_boxes(p, box_threshold=0.3)) == 3  # the faint blob is kept
    assert len(tasks.text_boxes(p, min_size=2)) == 3  # the sliver is kept
    assert len(tasks.text_boxes(p, threshold=0.85)) == 1  # the 0.8 pieces go; the 0.9 sliver is too thin
    raw = tasks.text_boxes(p[0, 0], unclip_ratio=0.0)
    np.testing.assert_allclose(raw[0], [3, 2, 13, 6])
    assert tasks.text_boxes(np.zeros((8, 8))).shape == (0, 4)
    with pytest.raises(LwnnError, match="one probability map"):
        tasks.text_boxes(np.zeros((2, 1, 8, 8)))


def test_mask_agreement():
    r = np.array([[0.1, 0.5], [0.9, 0.31]])
    c = np.array([[0.4, 0.2], [0.8, 0.29]])
    assert tasks.mask_agreement(r, c, threshold=0.3) == pytest.approx(0.25)  # only 0.9 / 0.8 agree
    assert tasks.mask_agreement(r, r) == 1.0
    with pytest.raises(LwnnError, match="differ in shape"):
        tasks.mask_agreement(r, c[:1])


def test_decision_agreement_is_strictly_above_threshold():
    r = [0.2, 0.6, 0.7, 0.5]
    c = [0.6, 0.6, 0.4, 0.4]  # 0.5 is not speech: the last frame agrees
    assert tasks.decision_agreement(r, c) == pytest.approx(0.5)
    assert tasks.decision_agreement(np.array(r)[:, None], np.array(r)) == 1.0
    with pytest.raises(LwnnError, match="3 candidate frames"):
        tasks.decision_agreement(r, c[:3])


def test_speech_segments_hysteresis_and_minimum_lengths():
    p = [0, 0.6, 0.7, 0.4, 0.6, 0.2, 0.2, 0.2, 0.2, 0, 0.9, 0.9]
    # 0.4 at frame 3 lies between neg_threshold 0.35 and 0.5: no pause. The pause starting at 5
    # is long enough at frame 8 (8 - 5 >= 3): speech 1..5. Speech restarts at 10, runs to the end.
    seg = tasks.speech_segments(p, threshold=0.5, min_speech=2, min_silence=3)
    np.testing.assert_array_equal(seg, [[1, 5], [10, 12]])
    np.testing.assert_array_equal(tasks.speech_segments(p, min_speech=3, min_silence=3), [[1, 5]])
    # Frames at 0.4 end speech only when neg_threshold is above 0.4.
    p = [0.9, 0.4, 0.4, 0.4, 0.4, 0.9]
    np.testing.assert_array_equal(tasks.speech_segments(p, min_speech=1, min_silence=2), [[0, 6]])
    np.testing.assert_array_equal(tasks.speech_segments(p, neg_threshold=0.45, min_speech=1, min_silence=2),
                                  [[0, 1], [5, 6]])


def test_speech_segments_pause_cancelled_by_speech():
    p = [0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1]
    np.testing.assert_array_equal(tasks.speech_segments(p, min_speech=1, min_silence=3), [[0, 6]])
    np.testing.assert_array_equal(tasks.speech_segments(p, min_speech=1, min_silence=1), [[0, 2], [4, 6]])
    assert tasks.speech_segments(np.zeros(10)).shape == (0, 2)


def test_segment_agreement():
    a = tasks.segment_agreement([[0, 10], [20, 30]], [[0, 9], [20, 22], [40, 50]])
    assert (a.matched, a.reference, a.candidate) == (1, 2, 3)


def test_pictures_return_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    feed = np.zeros((1, 3, 20, 40), np.float32)
    fig = tasks.draw_text_boxes(feed, tasks.text_boxes(dbnet_map()))
    assert len(fig.axes[0].patches) == 2 and fig.axes[0].get_title() == "2 text boxes"
    fig2 = tasks.speech_plot(np.sin(np.arange(16000) / 10), {"float": np.r_[np.zeros(10), np.ones(21)],
                                                           "s8": np.ones(31)})
    assert len(fig2.axes[0].lines) >= 3  # waveform, two probability series (and the threshold)
    plt.close("all")


def test_dbnet_boxes_on_the_real_page():
    """PP-OCR's float detector finds the page's seven text lines at three scales."""
    import importlib.util

    if importlib.util.find_spec("rapidocr_onnxruntime") is None:  # not imported: it would need OpenCV
        pytest.skip("the rapidocr-onnxruntime wheel provides the model")
    import lwnn
    from lwnn import zoo

    model = lwnn.load(zoo.rapidocr_model("det"))
    page = zoo.text_image()
    for side in (256, 320):
        feeds = zoo.rapidocr_input("det", page, side)
        prob = model.run(feeds)[model.graph.outputs[0]]
        boxes = tasks.text_boxes(prob)
        assert len(boxes) == 7, side
        # Top to bottom; the title spans most of the width but ends before the right margin.
        assert np.all(np.diff(boxes[:, 1]) > 0)
        width = feeds["x"].shape[3]
        assert 0.6 * width < boxes[0, 2] - boxes[0, 0] < 0.85 * width
        assert tasks.box_agreement(boxes, boxes).f1 == 1.0


def test_mask_iou():
    r = np.array([0.9, 0.9, 0.1, 0.1])
    c = np.array([0.9, 0.1, 0.9, 0.1])
    assert tasks.mask_iou(r, c) == pytest.approx(1 / 3)  # 1 pixel in both, 3 in either
    assert tasks.mask_iou(np.zeros(4), np.zeros(4)) == 1.0


def test_text_agreement_pools_images():
    p = dbnet_map()
    empty = np.zeros_like(p)
    got = tasks.text_agreement([p, p], [p, empty])
    # Two boxes per float map; the second image's candidate finds none: 2 matched of 4 / 2.
    assert got["box_f1"] == pytest.approx(2 * 2 / 6)
    assert got["box_precision"] == 1.0 and got["box_recall"] == pytest.approx(0.5)
    text = np.count_nonzero(p > 0.3)
    assert got["mask_iou"] == pytest.approx(0.5)  # the text pixels of the first image only
    assert got["pixel_agreement"] == pytest.approx(1 - text / (2 * p.size))
    with pytest.raises(ValueError):
        tasks.text_agreement([p, p], [p])


def test_vad_agreement_pools_clips():
    speech = np.r_[np.zeros(4), np.ones(16), np.zeros(4)]
    half = np.r_[np.zeros(4), np.ones(8), np.zeros(12)]
    got = tasks.vad_agreement([speech, speech], [speech, half], iou_threshold=0.5)
    assert got["decision_agreement"] == pytest.approx(40 / 48)
    # Segments [4, 20] twice against [4, 20] and [4, 12] (IoU 0.5, matched at 0.5).
    assert got["segment_f1"] == 1.0
    assert tasks.vad_agreement([speech], [half], iou_threshold=0.6)["segment_f1"] == 0.0
    # Shorter than the 8-frame minimum, a segment is not one: nothing matches.
    short = np.r_[np.zeros(4), np.ones(7), np.zeros(13)]
    assert tasks.vad_agreement([speech], [short])["segment_f1"] == 0.0
    assert got["speech_fraction"] == pytest.approx(24 / 48)
