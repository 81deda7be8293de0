"""The ``lwnn`` command line: default run, info, run, coverage, and errors as messages."""

from __future__ import annotations

import numpy as np

from lwnn import cli, zoo


def test_default_runs_the_bundled_model(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "top-1 on the 256 bundled Fashion-MNIST test images (cpu)" in out
    accuracy = float(out.rsplit(":", 1)[1].strip().rstrip("%"))
    assert accuracy > 80
    assert "cpu/float" in out  # the per-layer table says which runtime ran each layer


def test_info_lists_layers(capsys):
    assert cli.main(["info", str(zoo.rapidocr_model("cls"))]) == 0
    out = capsys.readouterr().out
    assert "input  x: float32[?, 3, ?, ?]" in out
    assert "Conv" in out and "HardSigmoid" in out


def test_run_writes_outputs(tmp_path, capsys):
    data = tmp_path / "feeds.npz"
    np.savez(data, **zoo.rapidocr_input("cls"))
    out_file = tmp_path / "out.npz"
    assert cli.main(["run", str(zoo.rapidocr_model("cls")), "--data", str(data), "--out", str(out_file)]) == 0
    with np.load(out_file) as out:
        probs = out[out.files[0]]
    assert probs.shape == (1, 2) and np.isclose(probs.sum(), 1, atol=1e-5)


def test_coverage_prints_markdown(capsys):
    assert cli.main(["coverage"]) == 0
    assert capsys.readouterr().out.startswith("| Layer | lwnn op | cpu float |")


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    assert cli.main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lwnn: error:") and "bad.onnx" in err
