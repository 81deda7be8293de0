"""lwnn.report: a self-contained HTML report with the expected sections and images, and the data
file formats it reads."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

import lwnn
from lwnn import report


@pytest.fixture(scope="module")
def fashion(bundled_model, bundled_samples):
    images, labels = bundled_samples
    return bundled_model, images[:64], labels[:64]


def _images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def assert_self_contained(text: str) -> None:
    assert "http://" not in text and "https://" not in text
    assert "<link" not in text and "<script" not in text and "url(" not in text
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert all(s.startswith("data:image/png;base64,") or s.startswith("#") for s in sources), sources[:5]


def test_report_is_self_contained_with_every_section(fashion, tmp_path):
    model, images, labels = fashion
    out = report.build_report(model, {"image": images}, labels, out=tmp_path / "r.html", schemes=("s8", "q8"),
                              progress=False)
    text = out.read_text()
    assert_self_contained(text)
    for anchor in ("summary", "worst", "scheme-s8", "scheme-q8", "fallbacks", "reliability", "rows"):
        assert f'id="{anchor}"' in text
    pngs = _images(text)
    # by-layer lines; per scheme: heatmap, graph, histogram, scatter, calibration curve; reliability
    assert len(pngs) == 1 + 2 * 5 + 1
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert "32 samples" in text and "on 32 samples, evaluated" in text  # half calibrates, half evaluates
    assert "top-1 accuracy" in text and "No layer fell back to float" in text
    assert text.count("<details>") == 2  # every layer, per scheme
    assert "/pw3/relu/Relu" in text


def test_report_lists_fallback_layers(tmp_path):
    from test_compare import prelu_model

    model, x = prelu_model()
    out = report.build_report(model, {"x": x}, out=tmp_path / "r.html", schemes=("s8",), progress=False)
    text = out.read_text()
    fallbacks = text.split('id="fallbacks"')[1]
    assert "<td>prelu</td><td>PRelu</td><td>s8</td><td>cpu/float</td>" in fallbacks
    assert 'id="reliability"' not in text  # no labels, no classifier output: no reliability diagram


def test_load_data_formats(fashion, tmp_path):
    model, images, labels = fashion
    np.savez(tmp_path / "keyed.npz", image=images[:4], labels=labels[:4])
    feeds, got = report.load_data(tmp_path / "keyed.npz", model)
    assert list(feeds) == ["image"] and feeds["image"].shape == (4, 1, 28, 28)
    assert got.tolist() == labels[:4].tolist()
    np.save(tmp_path / "one.npy", images[:3])
    feeds, got = report.load_data(tmp_path / "one.npy", model)
    assert feeds["image"].shape == (3, 1, 28, 28) and got is None
    np.savez(tmp_path / "anon.npz", images[:2])  # one unnamed array, one-input model
    assert report.load_data(tmp_path / "anon.npz", model)[0]["image"].shape[0] == 2
    np.savez(tmp_path / "wrong.npz", pixels=images[:2], other=images[:2])
    with pytest.raises(lwnn.FeedError, match=r"no array for inputs \['image'\].*expected keys \['image'\]"):
        report.load_data(tmp_path / "wrong.npz", model)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        report.load_data(tmp_path / "missing.npz", model)
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(lwnn.FeedError, match="not a NumPy"):
        report.load_data(tmp_path / "text.npz", model)


def test_one_sample_calibrates_and_evaluates_on_it(fashion, tmp_path):
    model, images, _ = fashion
    out = report.build_report(model, {"image": images[:1]}, out=tmp_path / "r.html", schemes=("s8",),
                              progress=False)
    assert "calibrated and evaluated on the same data" in out.read_text()
