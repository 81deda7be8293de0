"""Real pretrained models that ship inside PyPI wheels, and real inputs for them.

The wheels are installed with ``--no-deps`` (see requirements-nodeps.txt): lwnn only reads their
ONNX files, so the packages are located without being imported (importing rapidocr would need
OpenCV).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from lwnn.errors import ModelFormatError

RAPIDOCR_MODELS = {
    "det": "ch_PP-OCRv4_det_infer.onnx",  # DBNet text detector
    "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",  # text direction classifier
    "rec": "ch_PP-OCRv4_rec_infer.onnx",  # SVTR text recogniser
}


def _package_dir(package: str, wheel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFormatError(
            f"The {wheel} wheel is not installed; run `pip install --no-deps {wheel}` "
            "(scripts/setup.sh does this)."
        )
    return Path(spec.submodule_search_locations[0])


def rapidocr_model(kind: str) -> Path:
    """Path of a rapidocr-onnxruntime model: ``det``, ``cls`` or ``rec``."""
    if kind not in RAPIDOCR_MODELS:
        raise ValueError(f"Unknown rapidocr model {kind!r}. Expected one of {sorted(RAPIDOCR_MODELS)}.")
    return _package_dir("rapidocr_onnxruntime", "rapidocr-onnxruntime") / "models" / RAPIDOCR_MODELS[kind]


def silero_vad_model(name: str = "silero_vad_16k_sequence.onnx") -> Path:
    """Path of an ONNX model shipped in the silero-vad wheel."""
    return _package_dir("silero_vad", "silero-vad") / "data" / name


def _resize_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(img, (height, width), order=1, preserve_range=True, anti_aliasing=True).astype(np.float32)


def text_image() -> np.ndarray:
    """scikit-image's photograph of a printed page, as uint8 RGB [H, W, 3]."""
    from skimage import data

    gray = data.page()
    return np.repeat(gray[:, :, None], 3, axis=2)


def rapidocr_input(
    kind: str, image: np.ndarray | None = None, det_short_side: int = 320
) -> dict[str, np.ndarray]:
    """Feeds for a rapidocr model built from a real text image with rapidocr's preprocessing.

    det: the whole image scaled so its short side is ``det_short_side`` (rapidocr uses 736;
    smaller is faster and still finds text), both sides rounded to multiples of 32.
    cls/rec: a text line (the page's title when ``image`` is None) resized to 48 px high
    (192 / 320 wide). All scaled to [-1, 1].
    """
    img = text_image() if image is None else image
    h, w = img.shape[:2]
    if kind == "det":
        ratio = det_short_side / min(h, w)
        th, tw = (max(32, round(d * ratio / 32) * 32) for d in (h, w))
        x = _resize_bilinear(img, th, tw) / 255.0
        x = (x - 0.5) / 0.5
    elif kind in ("cls", "rec"):
        band = img[8:42, :300] if image is None else img  # "Region-based segmentation"
        x = _resize_bilinear(band, 48, 192 if kind == "cls" else 320) / 255.0
        x = (x - 0.5) / 0.5
    else:
        raise ValueError(f"Unknown rapidocr model {kind!r}. Expected one of {sorted(RAPIDOCR_MODELS)}.")
    return {"x": np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)}
