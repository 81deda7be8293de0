"""Every public entry point checks its arguments (issue 13, part 4): an unknown keyword or a bad
option value of ``quantize``, ``observe``, the range choice, ``compare``, the studies,
``calibration_sweep``, ``build_report`` and the CLI raises an ``LwnnError`` at the entry point that
names the argument, what it expects and what it received, never a bare Python exception from
deep inside; and valid calls (NumPy integers included) still work."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import lwnn
from lwnn import cli, data
from lwnn.comparison import calibration_size_study, calibration_sweep, scheme_study
from lwnn.errors import CalibrationError, FeedError, LwnnError
from lwnn.quant.observers import TensorObserver, observe
from lwnn.quant.ranges import choose_frac_bits, choose_range

RNG_SEED = 13
RELU = "/conv1/relu/Relu"
NAN = float("nan")
SCHEMES = "('s8', 'q8', 'q16')"
METHODS = "('minmax', 'percentile', 'kl', 'mse')"


def assert_raises(error, fragments, call):
    """``call()`` raises exactly ``error`` and its message contains every fragment."""
    with pytest.raises(LwnnError) as info:
        call()
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.fixture(scope="module")
def calib(bundled_samples):
    images, _ = bundled_samples
    return {"image": images[:8]}


@pytest.fixture(scope="module")
def eval_feeds(bundled_samples):
    images, _ = bundled_samples
    return {"image": images[200:204]}


# --- lwnn.quantize ---------------------------------------------------------------------------

QUANTIZE_BAD = [
    # names and choices
    (dict(scheme="s4"), ["Unknown scheme 's4'", SCHEMES]),
    (dict(scheme=8), ["Unknown scheme 8", SCHEMES]),
    (dict(method="median"), ["Unknown calibration method 'median'", METHODS]),
    (dict(method="kll"), ["'kll'", "Did you mean 'kl'?"]),
    (dict(weight_method="best"), ["Unknown weight_method 'best'", METHODS]),
    (dict(q16_headroom="half"), ["q16_headroom 'half'", "('full', 'lwnn')"]),
    # booleans
    (dict(per_channel="no"), ["per_channel must be True or False", "'no' (str)"]),
    (dict(fold="yes"), ["fold must be True or False", "'yes' (str)"]),
    (dict(link_q=1), ["link_q must be True or False", "1 (int)"]),
    (dict(progress="False"), ["progress must be True or False", "'False' (str)"]),
    # counts
    (dict(batch_size=2.5), ["batch_size must be >= 1 (an integer or None)", "2.5 (float)"]),
    (dict(batch_size=2.0), ["batch_size must be >= 1", "2.0 (float)"]),
    (dict(batch_size=0), ["batch_size must be >= 1", "0 (int)"]),
    (dict(batch_size=-3), ["batch_size must be >= 1", "-3 (int)"]),
    (dict(batch_size=True), ["batch_size must be >= 1", "True (bool)"]),
    (dict(batch_size="8"), ["batch_size must be >= 1", "'8' (str)"]),
    # layers
    (dict(layers={"nope": "float"}), ["No layer named 'nope'", "Layers: '/conv1/conv/Conv'"]),
    (dict(layers={"/conv1/relu/Rel": "float"}), ["No layer named", f"Did you mean '{RELU}'?"]),
    (dict(layers={RELU: "q4"}), [f"Layer '{RELU}': unknown mode 'q4'", "('float', 's8', 'q8', 'q16')"]),
    (dict(layers={RELU: None}), ["unknown mode None", "('float', 's8', 'q8', 'q16')"]),
    (dict(layers=[RELU]), ["layers must be a dict", "(list)"]),
    # unknown keywords
    (dict(equalize=True), ["quantize: unknown keyword argument 'equalize'", "Valid keywords: scheme, method",
                           "batch_size", "percentile", "kl_bins", "kl_levels", "mse_candidates", "search"]),
    (dict(percentil=99.0), ["unknown keyword argument 'percentil'", "Did you mean 'percentile'?"]),
    (dict(bits=8), ["unknown keyword argument 'bits'", "Valid keywords"]),
    (dict(symmetric=True), ["unknown keyword argument 'symmetric'", "Valid keywords"]),
    # range-choice options: values
    (dict(method="kl", kl_levels=-1), ["kl_levels must be >= 2 (an integer or None)", "-1 (int)"]),
    (dict(method="kl", kl_bins=0), ["kl_bins must be >= 1 (an integer)", "0 (int)"]),
    (dict(method="kl", kl_bins=2.5), ["kl_bins must be >= 1", "2.5 (float)"]),
    (dict(method="kl", kl_bins="512"), ["kl_bins must be >= 1", "'512' (str)"]),
    (dict(method="percentile", percentile=40), ["percentile must be in (50, 100] (a number)", "40 (int)"]),
    (dict(method="percentile", percentile=101.0), ["percentile must be in (50, 100]", "101.0 (float)"]),
    (dict(method="percentile", percentile=NAN), ["percentile must be in (50, 100]", "nan (float)"]),
    (dict(method="percentile", percentile="99"), ["percentile must be in (50, 100]", "'99' (str)"]),
    (dict(method="percentile", percentile=True), ["percentile must be in (50, 100]", "True (bool)"]),
    (dict(method="mse", mse_candidates=0), ["mse_candidates must be >= 1", "0 (int)"]),
    (dict(scheme="q8", method="kl", search=-1), ["search must be in [0, 64] (an integer)", "-1 (int)"]),
    (dict(scheme="q8", method="mse", search=2.5), ["search must be in [0, 64]", "2.5 (float)"]),
    # range-choice options the call's schemes or methods do not use
    (dict(scheme="q8", method="kl", kl_levels=64),
     ["kl_levels applies to the s8 family", "quantizes with q8",
      "Options for these schemes: percentile, kl_bins, search"]),
    (dict(method="kl", search=2), ["search applies to the qformat family", "quantizes with s8"]),
    (dict(percentile=99.0), ["percentile is an option of method 'percentile'", "methods 'minmax'"]),
    (dict(method="kl", percentile=99.0),
     ["percentile is an option of method 'percentile'", "Options of these methods: kl_bins, kl_levels"]),
]


@pytest.mark.parametrize("kwargs, fragments", QUANTIZE_BAD, ids=[str(k) for k, _ in QUANTIZE_BAD])
def test_quantize_rejects(bundled_model, calib, kwargs, fragments):
    kwargs = {"progress": False, **kwargs}
    assert_raises(CalibrationError, fragments, lambda: lwnn.quantize(bundled_model, calib, **kwargs))


def test_quantize_call_shape(bundled_model, calib):
    assert_raises(LwnnError, ["quantize expects the float lwnn.Model first", "Received str"],
                  lambda: lwnn.quantize(data.default_model_path().name, calib, progress=False))
    q = lwnn.quantize(bundled_model, calib, progress=False)
    assert_raises(LwnnError, ["quantize expects the float lwnn.Model", "Received QuantizedModel"],
                  lambda: lwnn.quantize(q, calib, progress=False))
    assert_raises(CalibrationError, ["quantize: missing a required argument: 'calib_feeds'",
                                     "Signature: quantize(model, calib_feeds, scheme='s8'"],
                  lambda: lwnn.quantize(bundled_model))
    assert_raises(CalibrationError, ["quantize: too many positional arguments"],
                  lambda: lwnn.quantize(bundled_model, calib, "s8", "minmax", True))


def test_quantize_accepts_numpy_values_and_keeps_a_json_config(bundled_model, calib, tmp_path):
    q = lwnn.quantize(bundled_model, calib, "s8", "kl", per_channel=np.bool_(True), batch_size=np.int64(4),
                      kl_bins=np.int32(512), kl_levels=np.int64(64), progress=False)
    assert q.config["method_options"] == {"kl_bins": 512, "kl_levels": 64}
    assert type(q.config["method_options"]["kl_bins"]) is int and q.config["per_channel"] is True
    q.save(tmp_path / "q.json")
    assert json.loads((tmp_path / "q.json").read_text())["config"]["method_options"]["kl_levels"] == 64


def test_quantize_options_go_where_they_apply(bundled_model, calib):
    # percentile for the weights only; kl_levels for the s8 layers and search for the q8 ones of a mix
    q = lwnn.quantize(bundled_model, calib, "s8", weight_method="percentile", percentile=99.0, progress=False)
    assert q.config["method_options"] == {"percentile": 99.0}
    mixed = lwnn.quantize(bundled_model, calib, "s8", "kl", layers={RELU: "q8"}, kl_levels=64, search=1,
                          progress=False)
    assert mixed.schemes == ("s8", "q8") and mixed.config["method_options"] == {"kl_levels": 64, "search": 1}
    q16 = lwnn.quantize(bundled_model, calib, "q16", "mse", search=np.int64(2), q16_headroom="lwnn",
                        progress=False)
    assert q16.config["method_options"] == {"search": 2}


# --- observe and the range choice ------------------------------------------------------------

OBSERVE_BAD = [
    (dict(batch_size=2.5), ["batch_size must be >= 1", "2.5 (float)"]),
    (dict(progress="yes"), ["progress must be True or False", "'yes' (str)"]),
    (dict(bins=1000), ["bins must be a power of two >= 2", "1000 (int)"]),
    (dict(bins=2.5), ["bins must be a power of two", "2.5 (float)"]),
    (dict(bins=1 << 40), ["bins must be a power of two", "at most 2**24"]),
    (dict(channel_axis=1.5), ["channel_axis must be an integer or None", "1.5 (float)"]),
    (dict(tensors=RELU), ["tensors must be a list of tensor names", "(str)"]),
    (dict(tensors=[1]), ["tensors must be a list of tensor names", "1 (int)"]),
    (dict(equalize=True), ["observe: unknown keyword argument 'equalize'",
                           "Valid keywords: model, calib_feeds, tensors, progress, batch_size, bins"]),
    (dict(batchsize=4), ["Did you mean 'batch_size'?"]),
]


@pytest.mark.parametrize("kwargs, fragments", OBSERVE_BAD, ids=[str(k)[:40] for k, _ in OBSERVE_BAD])
def test_observe_rejects(bundled_model, calib, kwargs, fragments):
    kwargs = {"progress": False, **kwargs}
    assert_raises(CalibrationError, fragments, lambda: observe(bundled_model, calib, **kwargs))


def test_observe_accepts_numpy_integers(bundled_model, calib):
    relu = RELU + "_output_0"
    observers = observe(bundled_model, calib, [relu], progress=False, batch_size=np.int64(4),
                        bins=np.int64(256), channel_axis=np.int64(1))
    assert observers[relu].bins == 256 and observers[relu].channel_min.size == 16


@pytest.fixture(scope="module")
def observer():
    return TensorObserver.of(np.random.default_rng(RNG_SEED).normal(size=1000), "t")


RANGE_BAD = [
    (lambda o: choose_range(o, "kl", kl_levels=-1), ["kl_levels must be >= 2", "-1 (int)"]),
    (lambda o: choose_range(o, "kl", kl_bins=2.5), ["kl_bins must be >= 1", "2.5 (float)"]),
    (lambda o: choose_range(o, "mse", mse_candidates="8"), ["mse_candidates must be >= 1", "'8' (str)"]),
    (lambda o: choose_range(o, symmetric="yes"), ["symmetric must be True or False", "'yes' (str)"]),
    (lambda o: choose_range(o, "percentile", percentile="99"), ["percentile must be in (50, 100]", "(str)"]),
    (lambda o: choose_range(o, equalize=True), ["choose_range: unknown keyword argument 'equalize'",
                                                "Valid keywords: observer, method, bits, symmetric"]),
    (lambda o: choose_range(o.bins), ["takes a TensorObserver", "2048 (int)"]),
    (lambda o: choose_frac_bits(o, "kl", 8, search=-1), ["search must be in [0, 64]", "-1 (int)"]),
    (lambda o: choose_frac_bits(o, "kl", 8, kl_levels=8), ["choose_frac_bits: unknown keyword argument "
                                                           "'kl_levels'", "search"]),
    (lambda o: choose_frac_bits(o, "mse", 8.0), ["bits must be an integer in [2, 32]", "8.0 (float)"]),
]


@pytest.mark.parametrize("call, fragments", RANGE_BAD, ids=range(len(RANGE_BAD)))
def test_range_choice_rejects(observer, call, fragments):
    assert_raises(CalibrationError, fragments, lambda: call(observer))


def test_range_choice_accepts_numpy_integers(observer):
    choice = choose_range(observer, "kl", bits=np.int64(8), kl_bins=np.int64(512), kl_levels=np.int32(64))
    assert choice.lo < 0 < choice.hi
    assert isinstance(choose_frac_bits(observer, "mse", np.int16(8), search=np.int64(2)), int)


# --- lwnn.compare ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s8(bundled_model, calib):
    return lwnn.quantize(bundled_model, calib, "s8", progress=False)


COMPARE_BAD = [
    (dict(mode="sideways"), LwnnError,
     ["Unknown comparison mode 'sideways'", "'cumulative', 'isolated' or 'both'"]),
    (dict(mode="isolate"), LwnnError, ["Did you mean 'isolated'?"]),
    (dict(mode=["both"]), LwnnError, ["Unknown comparison mode ['both']"]),
    (dict(threshold_db=NAN), LwnnError, ["threshold_db must be a number (not NaN)", "nan (float)"]),
    (dict(threshold_db="20"), LwnnError, ["threshold_db must be a number", "'20' (str)"]),
    (dict(keep_recordings="yes"), LwnnError, ["keep_recordings must be True or False", "'yes' (str)"]),
    (dict(progress=1), LwnnError, ["progress must be True or False", "1 (int)"]),
    (dict(metric="sqnr_db"), LwnnError,
     ["compare: unknown keyword argument 'metric'",
      "Valid keywords: model, quantized, feeds, mode, threshold_db, keep_recordings, progress"]),
    (dict(threshold=20), LwnnError, ["unknown keyword argument 'threshold'", "Did you mean 'threshold_db'?"]),
    (dict(feeds={"img": None}), FeedError, ["image"]),
]


@pytest.mark.parametrize("kwargs, error, fragments", COMPARE_BAD, ids=[str(k) for k, _, _ in COMPARE_BAD])
def test_compare_rejects(bundled_model, s8, eval_feeds, kwargs, error, fragments):
    kwargs = {"feeds": eval_feeds, **kwargs}
    assert_raises(error, fragments, lambda: lwnn.compare(bundled_model, s8, **kwargs))


def test_compare_call_shape_and_table_arguments(bundled_model, s8, eval_feeds):
    assert_raises(LwnnError, ["compare: missing a required argument: 'feeds'"],
                  lambda: lwnn.compare(bundled_model, s8))
    table = lwnn.compare(bundled_model, {"a": s8}, eval_feeds, mode="both", threshold_db=np.float32(15),
                         keep_recordings=np.bool_(False))
    assert table.modes == ("cumulative", "isolated") and not table.recordings
    assert len(table.worst(np.int64(2))) == 2 and table.worst(0) == []
    assert_raises(LwnnError, ["n must be >= 0 (an integer)", "-1 (int)"], lambda: table.worst(-1))
    assert_raises(LwnnError, ["n must be >= 0", "2.5 (float)"], lambda: table.worst(2.5))
    assert_raises(LwnnError, ["Unknown metric 'sqnr'", "Did you mean 'sqnr_db'?"],
                  lambda: table.worst(3, "sqnr"))
    assert_raises(LwnnError, ["threshold_db must be a number", "nan"],
                  lambda: table.first_below(NAN, label="a", mode="cumulative"))


# --- the studies -----------------------------------------------------------------------------

STUDY_BAD = [
    (dict(schemes=("s8", "q4")), CalibrationError, ["Unknown scheme 'q4'", SCHEMES]),
    (dict(schemes="s8"), CalibrationError, ["schemes must be a non-empty list or tuple", "'s8' (str)"]),
    (dict(schemes=()), CalibrationError, ["schemes must be a non-empty list or tuple", "() (tuple)"]),
    (dict(schemes=("s8", "s8")), CalibrationError, ["schemes lists a value twice"]),
    (dict(methods=("minmax", "entropy")), CalibrationError,
     ["Unknown calibration method 'entropy'", METHODS]),
    (dict(methods="kl"), CalibrationError, ["methods must be a non-empty list or tuple", "'kl' (str)"]),
    (dict(metric="accuracy"), LwnnError, ["Unknown model metric 'accuracy'", "('sqnr_db', 'top1_agreement', "
                                          "'top1_accuracy')"]),
    (dict(metric="top1_accuracy"), LwnnError, ["top1_accuracy needs labels="]),
    (dict(equalize=True), CalibrationError, ["scheme_study: unknown keyword argument 'equalize'",
                                             "Valid keywords: per_channel, layers", "percentile"]),
    (dict(progress=False), CalibrationError, ["scheme_study: unknown keyword argument 'progress'"]),
    (dict(per_channel="no"), CalibrationError, ["per_channel must be True or False"]),
    (dict(layers={"nope": "float"}), CalibrationError, ["No layer named 'nope'"]),
    (dict(percentile=99.0), CalibrationError, ["percentile is an option of method 'percentile'"]),
    (dict(schemes=("q8",), methods=("kl",), kl_levels=64), CalibrationError,
     ["kl_levels applies to the s8 family"]),
    (dict(methods=("percentile",), percentile=40), CalibrationError, ["percentile must be in (50, 100]"]),
    (dict(calib_feeds=[{"image": None}]), CalibrationError, ["calib_feeds must be a dict", "Received list"]),
]


@pytest.mark.parametrize("kwargs, error, fragments", STUDY_BAD, ids=[str(k)[:50] for k, _, _ in STUDY_BAD])
def test_scheme_study_rejects(bundled_model, calib, eval_feeds, kwargs, error, fragments):
    kwargs = {"calib_feeds": calib, "eval_feeds": eval_feeds, **kwargs}
    assert_raises(error, fragments, lambda: scheme_study(bundled_model, **kwargs))


SIZE_STUDY_BAD = [
    (dict(sizes=[0, 4]), ["sizes[0] must be >= 1 (an integer)", "0 (int)"]),
    (dict(sizes=[2.5]), ["sizes[0] must be >= 1", "2.5 (float)"]),
    (dict(sizes=[4, 100]), ["sizes must be at most the 8 calibration samples", "Received 100"]),
    (dict(sizes="8"), ["sizes must be a non-empty list of integers >= 1", "'8' (str)"]),
    (dict(sizes=[]), ["sizes must be a non-empty list"]),
    (dict(sizes=[4], scheme="s4"), ["Unknown scheme 's4'"]),
    (dict(sizes=[4], kl_bin=256), ["calibration_size_study: unknown keyword argument 'kl_bin'",
                                   "Did you mean 'kl_bins'?"]),
]


@pytest.mark.parametrize("kwargs, fragments", SIZE_STUDY_BAD, ids=[str(k) for k, _ in SIZE_STUDY_BAD])
def test_calibration_size_study_rejects(bundled_model, calib, eval_feeds, kwargs, fragments):
    assert_raises(CalibrationError, fragments,
                  lambda: calibration_size_study(bundled_model, calib, eval_feeds, **kwargs))


def test_studies_pass_each_call_the_options_it_uses(bundled_model, calib, eval_feeds):
    study = scheme_study(bundled_model, calib, eval_feeds, ("s8", "q8"),
                         methods=("minmax", "percentile", "kl"), percentile=99.9, kl_levels=64, search=1,
                         q16_headroom="lwnn")
    assert study.x == ["s8", "q8"] and all(len(v) == 2 and all(np.isfinite(v)) for v in study.series.values())
    sizes = calibration_size_study(bundled_model, calib, eval_feeds, [np.int64(4), 8], methods=["minmax"])
    assert sizes.x == [4, 8] and len(sizes.series["minmax"]) == 2


# --- calibration_sweep -----------------------------------------------------------------------

SWEEP_BAD = [
    (dict(scheme="s4"), ["Unknown scheme 's4'", SCHEMES]),
    (dict(points=0), ["points must be in [1, 100000] (an integer)", "0 (int)"]),
    (dict(points=2.5), ["points must be in [1, 100000]", "2.5 (float)"]),
    (dict(samples=-1), ["samples must be >= 1", "-1 (int)"]),
    (dict(scheme="q8", q_span=-1), ["q_span must be in [0, 64]", "-1 (int)"]),
    (dict(methods="kl"), ["methods must be a non-empty list or tuple", "'kl' (str)"]),
    (dict(methods=("best",)), ["Unknown calibration method 'best'", METHODS]),
    (dict(percentil=99.9),
     ["calibration_sweep: unknown keyword argument 'percentil'", "Did you mean 'percentile'?"]),
    (dict(scheme="q8", kl_levels=64), ["kl_levels applies to the s8 family", "quantizes with q8"]),
    (dict(methods=("minmax",), percentile=99.9), ["percentile is an option of method 'percentile'"]),
    (dict(percentile=NAN), ["percentile must be in (50, 100]", "nan"]),
    (dict(name=3), ["name must be a string", "3 (int)"]),
    (dict(values=["a", "b"]), ["values must be an array of real numbers"]),
]


@pytest.mark.parametrize("kwargs, fragments", SWEEP_BAD, ids=[str(k) for k, _ in SWEEP_BAD])
def test_calibration_sweep_rejects(kwargs, fragments):
    kwargs = {"values": np.random.default_rng(RNG_SEED).normal(size=500), **kwargs}
    assert_raises(CalibrationError, fragments, lambda: calibration_sweep(**kwargs))


def test_calibration_sweep_accepts_numpy_integers():
    x = np.random.default_rng(RNG_SEED).normal(size=500)
    sweep = calibration_sweep(x, "q8", methods=("kl", "mse"), search=np.int64(2), kl_bins=np.int64(256),
                              q_span=np.int8(3))
    assert set(sweep.picks) == {"kl", "mse"} and len(sweep.thresholds) == 5
    assert len(calibration_sweep(x, "s8", points=np.int64(10), percentile=99.5).thresholds) == 10


# --- build_report ----------------------------------------------------------------------------

REPORT_BAD = [
    (dict(schemes=("s8", "q4")), CalibrationError, ["Unknown scheme 'q4'"]),
    (dict(schemes="s8"), CalibrationError, ["schemes must be a non-empty list or tuple"]),
    (dict(method="entropy"), CalibrationError, ["Unknown calibration method 'entropy'", METHODS]),
    (dict(calib=0), CalibrationError, ["calib must be >= 1 (an integer or None)", "0 (int)"]),
    (dict(calib=-3), CalibrationError, ["calib must be >= 1", "-3 (int)"]),
    (dict(calib=2.5), CalibrationError, ["calib must be >= 1", "2.5 (float)"]),
    (dict(max_eval=0), LwnnError, ["max_eval must be >= 1 (an integer)", "0 (int)"]),
    (dict(max_eval=True), LwnnError, ["max_eval must be >= 1", "True (bool)"]),
    (dict(threshold_db=NAN), LwnnError, ["threshold_db must be a number (not NaN)"]),
    (dict(progress="no"), LwnnError, ["progress must be True or False"]),
    (dict(source=1), LwnnError, ["source must be a string"]),
    (dict(out=3), LwnnError, ["out must be a file path", "3 (int)"]),
    (dict(out="missing-folder/r.html"), LwnnError, ["the folder 'missing-folder' does not exist"]),
    (dict(feeds={"img": np.zeros((2, 1, 28, 28), np.float32)}), FeedError, ["missing ['image']",
                                                                             "unexpected ['img']"]),
    (dict(feeds=np.zeros((2, 1, 28, 28))), FeedError, ["feeds must be a non-empty dict"]),
    (dict(labels=np.zeros((8, 2))), FeedError, ["labels must be a 1-D array"]),
    (dict(scheme="s8"), LwnnError,
     ["build_report: unknown keyword argument 'scheme'", "Did you mean 'schemes'?"]),
]


@pytest.mark.parametrize("kwargs, error, fragments", REPORT_BAD, ids=[str(k)[:40] for k, _, _ in REPORT_BAD])
def test_build_report_rejects_before_any_work(bundled_model, calib, tmp_path, monkeypatch, kwargs, error,
                                              fragments):
    from lwnn import report

    monkeypatch.chdir(tmp_path)
    kwargs = {"feeds": calib, "out": tmp_path / "r.html", "progress": False, **kwargs}
    assert_raises(error, fragments, lambda: report.build_report(bundled_model, **kwargs))
    assert not (tmp_path / "r.html").exists()


# --- the command line ------------------------------------------------------------------------

CLI_BAD = [
    (["report", "--calib", "-3"], ["argument --calib", "calib must be >= 1", "-3 (int)"]),
    (["report", "--calib", "0"], ["argument --calib", "calib must be >= 1"]),
    (["report", "--calib", "2.5"], ["argument --calib", "expected an integer >= 1. Received '2.5'"]),
    (["report", "--max-eval", "0"], ["argument --max-eval", "max_eval must be >= 1"]),
    (["report", "--schemes", "s8,q4"], ["argument --schemes", "Unknown scheme 'q4'", SCHEMES]),
    (["report", "--schemes", ","], ["argument --schemes", "schemes must be a non-empty list"]),
    (["report", "--method", "entropy"],
     ["argument --method", "Unknown calibration method 'entropy'", METHODS]),
    (["report", "--method", "kll"], ["argument --method", "Did you mean 'kl'?"]),
    (["report", "--threshold", "nan"], ["argument --threshold", "threshold_db must be a number (not NaN)"]),
    (["report", "--threshold", "high"], ["argument --threshold", "expected a number (dB). Received 'high'"]),
    (["--backend", "tpu"], ["argument --backend", "Unknown backend 'tpu'", "('cpu', 'opencl')"]),
    (["run", "model.onnx", "--data", "x.npz", "--backend", "gpu"],
     ["argument --backend", "Unknown backend 'gpu'"]),
    (["report", "--equalize"], ["unrecognized arguments: --equalize"]),
]


@pytest.mark.parametrize("argv, fragments", CLI_BAD, ids=[" ".join(a) for a, _ in CLI_BAD])
def test_cli_rejects_bad_values_with_exit_code_2(capsys, argv, fragments):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


def test_cli_bad_data_files_are_messages(tmp_path, capsys):
    model = str(data.default_model_path())
    (tmp_path / "garbage.npz").write_bytes(b"not numpy")
    np.save(tmp_path / "one.npy", np.zeros((1, 1, 28, 28), np.float32))
    for path, fragment in ((tmp_path / "garbage.npz", "is not a NumPy .npz file"),
                           (tmp_path / "one.npy", "holds one array (.npy)")):
        assert cli.main(["run", model, "--data", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lwnn: error:") and fragment in err


def test_cli_parses_valid_values_by_the_same_rules():
    args = cli.build_parser().parse_args(["report", "--schemes", "s8, q16", "--calib", "16",
                                          "--max-eval", "32", "--method", "kl", "--threshold=-inf"])
    assert args.schemes == ("s8", "q16") and args.calib == 16 and args.max_eval == 32
    assert args.method == "kl" and args.threshold == -math.inf
    defaults = cli.build_parser().parse_args(["report"])
    assert defaults.schemes == ("s8", "q8", "q16") and defaults.calib is None and defaults.method == "minmax"
