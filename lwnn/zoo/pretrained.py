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


# --- real speech (Debian pocketsphinx-testdata) ----------------------------------------------

SPEECH_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")
SILERO_FRAME, SILERO_CONTEXT = 512, 64  # 16 kHz: 32 ms of new audio plus 4 ms of the last frame


def speech_clips() -> dict[str, str]:
    """Real 16 kHz read speech (LibriVox, from Debian's pocketsphinx-testdata): {wav path: transcript}."""
    listing = SPEECH_DIR / "transcription"
    if not listing.is_file():
        raise ModelFormatError(
            f"No speech data at {str(SPEECH_DIR)!r}; install it with `apt-get install pocketsphinx-testdata`."
        )
    clips = {}
    for line in listing.read_text().splitlines():
        # "<s> words ... </s> (file-id)"
        words, _, file_id = line.rpartition("(")
        text = words.replace("<s>", "").replace("</s>", "").strip()
        clips[str(SPEECH_DIR / f"{file_id.strip().rstrip(')')}.wav")] = text
    return clips


def read_wav(path: str | Path, rate: int = 16000) -> np.ndarray:
    """A mono 16-bit PCM WAV file as float32 samples in [-1, 1); its sample rate must be ``rate``."""
    import wave

    with wave.open(str(path), "rb") as wav:
        got = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
        if got != (rate, 1, 2):
            raise ModelFormatError(
                f"{str(path)!r}: expected mono 16-bit PCM at {rate} Hz. Received {got[1]} channel(s) of "
                f"{8 * got[2]}-bit samples at {got[0]} Hz."
            )
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def silero_vad_input(audio: np.ndarray) -> dict[str, np.ndarray]:
    """Feeds of ``silero_vad_16k_sequence.onnx`` for 16 kHz ``audio``: one row per 512-sample
    frame (the last zero-padded), each prefixed with the previous frame's last 64 samples (zeros
    before the first) as the streaming model keeps them, and zero LSTM states."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    count = -(-audio.size // SILERO_FRAME)
    frames = np.zeros((count, SILERO_FRAME), np.float32)
    frames.reshape(-1)[: audio.size] = audio
    context = np.zeros((count, SILERO_CONTEXT), np.float32)
    context[1:] = frames[:-1, -SILERO_CONTEXT:]
    state = np.zeros((1, 1, 128), np.float32)
    return {"input": np.concatenate([context, frames], axis=1), "h": state, "c": state.copy()}
