"""Spoken keywords: the ten digits said by espeak-ng in many voices, and real recorded speech.

Training and test clips are synthesised at run time by the ``espeak-ng`` command (about 10 ms a
word) with a grid of voices, speeds and pitches, resampled from espeak's 22,050 Hz to 16 kHz and
placed in one-second clips. Train and test use different voices, so the test measures
generalisation to unheard speakers. Synthesised sets are cached as ``.npz`` files in
``cache_dir()`` (``$LWNN_CACHE`` or ``~/.cache/lwnn``), keyed by the recipe and espeak's version.

Real speech comes from Debian's pocketsphinx-testdata: the ``cards`` recordings (16 kHz) start
with a spoken number ("four queen of clubs", "seven of clubs", "five five", "eight of spades ...");
``real_keyword_clips`` cuts their first word out by its energy envelope for a realistic test of
recognition, and ``lwnn.zoo.speech_clips`` gives longer read speech for the front end.

Features: ``mfcc`` runs lwnn's own Mfcc layer with DeepSpeech's parameters (``DEEPSPEECH_MFCC``),
so a model trained on these features takes exactly what lwnn's Mfcc layer produces.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lwnn.ops.audio import Mfcc

KEYWORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000  # one second
ESPEAK_RATE = 22050
# DeepSpeech's front end: 32 ms windows every 20 ms, 26 cepstral coefficients, mel filterbank up
# to half the sample rate (DeepSpeech 0.6+ ``audio_to_features``).
DEEPSPEECH_MFCC = Mfcc(
    sample_rate=SAMPLE_RATE,
    window_size=512,
    stride=320,
    magnitude_squared=True,
    upper_frequency_limit=SAMPLE_RATE / 2,
    lower_frequency_limit=20.0,
    filterbank_channel_count=40,
    dct_coefficient_count=26,
)
FRAMES = 1 + (CLIP_SAMPLES - DEEPSPEECH_MFCC.window_size) // DEEPSPEECH_MFCC.stride  # 49

# espeak-ng voices ("language+variant"); the test voices are heard in no training clip.
VOICES = {
    "train": (
        "en-us+m1",
        "en-us+m3",
        "en-us+m5",
        "en-us+f1",
        "en-us+f3",
        "en+m2",
        "en+m4",
        "en+f2",
        "en-gb-x-rp+m6",
        "en-gb-x-rp+f4",
        "en-gb-scotland+m7",
        "en-029+m8",
        "en-us+m4",
        "en-us+m6",
        "en-us+f4",
        "en+m1",
        "en+f1",
        "en-gb-x-rp+f2",
        "en-gb-scotland+f3",
        "en-gb-x-gbclan+m5",
        "en-us+klatt",
        "en-us+Andy",
    ),
    "test": ("en-us+m2", "en-us+f2", "en+f5", "en-gb-x-rp+m3", "en-gb-x-gbcwmd+m1", "en-029+f1"),
}
SPEEDS = (120, 150, 185)  # words per minute
PITCHES = (35, 50, 70)  # espeak's 0..99 scale

CARDS_DIR = Path("/usr/share/pocketsphinx/test/data/cards")
# Recordings of pocketsphinx-testdata/cards whose transcript starts with a keyword: file -> word.
CARDS_FIRST_WORDS = {"002.wav": "four", "003.wav": "seven", "004.wav": "five", "005.wav": "eight"}


@dataclass(frozen=True)
class KeywordClips:
    """One-second 16 kHz clips: audio float32 [N, 16000] in [-1, 1], labels int64 [N] (index into
    ``KEYWORDS``), and per clip its recipe (word, voice, speed, pitch)."""

    audio: np.ndarray
    labels: np.ndarray
    recipes: tuple[tuple[str, str, int, int], ...]
    split: str

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        seconds = CLIP_SAMPLES / SAMPLE_RATE
        return f"KeywordClips({len(self)} {self.split} clips of {seconds:g} s at {SAMPLE_RATE} Hz)"


def cache_dir() -> Path:
    """Where synthesised sets are cached: ``$LWNN_CACHE`` or ``~/.cache/lwnn``."""
    return Path(os.environ.get("LWNN_CACHE", Path.home() / ".cache" / "lwnn"))


def espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at")[0].strip()


def _read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError("espeak-ng produced a WAV that is not mono 16-bit PCM.")
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0, rate


def resample(audio: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy's ``resample_poly``, Kaiser-windowed anti-alias filter)."""
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return resample_poly(np.asarray(audio, np.float64), rate_out // g, rate_in // g).astype(np.float32)


def synthesize(word: str, voice: str = "en-us", speed: int = 150, pitch: int = 50) -> np.ndarray:
    """``word`` spoken by espeak-ng, as float32 16 kHz samples (its own length, silence trimmed)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "word.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), word],
            check=True,
            capture_output=True,
        )
        audio, rate = _read_wav_bytes(path.read_bytes())
    audio = resample(audio, rate)
    return trim(audio)


def trim(audio: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """``audio`` without the leading and trailing samples quieter than ``threshold`` x its peak."""
    loud = np.flatnonzero(np.abs(audio) > threshold * max(float(np.abs(audio).max()), 1e-9))
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio[:0]


def place(word: np.ndarray, offset: int, length: int = CLIP_SAMPLES) -> np.ndarray:
    """A ``length``-sample clip of silence with ``word`` starting at sample ``offset`` (cut at the end)."""
    clip = np.zeros(length, np.float32)
    piece = word[: max(length - offset, 0)]
    clip[offset : offset + piece.size] = piece
    return clip


def keyword_recipes(split: str) -> list[tuple[str, str, int, int]]:
    """Every (word, voice, speed, pitch) of a split: each keyword in every voice, speed and pitch."""
    if split not in VOICES:
        raise ValueError(f"Keyword split must be 'train' or 'test'. Received {split!r}.")
    return [(w, v, s, p) for w in KEYWORDS for v in VOICES[split] for s in SPEEDS for p in PITCHES]


def keyword_clips(
    split: str = "train",
    seed: int = 0,
    use_cache: bool = True,
    recipes: list[tuple[str, str, int, int]] | None = None,
) -> KeywordClips:
    """The synthesised keyword clips of ``split``, each word centred in its second with a random
    shift of up to +-0.1 s (random generator seeded by ``seed``), peak-normalised to 0.5 x a gain
    drawn in [0.5, 1], over white noise of RMS drawn in [0.0005, 0.005] (a quiet room's floor: real
    recordings are never digital silence, whose log-mel energies would sit at the 1e-12 floor).
    ``recipes`` restricts the set (default: ``keyword_recipes(split)``)."""
    recipes = keyword_recipes(split) if recipes is None else [tuple(r) for r in recipes]
    key = hashlib.sha256(
        json.dumps(["v2", split, seed, recipes, espeak_version(), SAMPLE_RATE, CLIP_SAMPLES]).encode()
    ).hexdigest()[:16]
    path = cache_dir() / f"keywords-{split}-{key}.npz"
    if use_cache and path.is_file():
        with np.load(path) as data:
            return KeywordClips(data["audio"], data["labels"], tuple(map(tuple, recipes)), split)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    audio = np.zeros((len(recipes), CLIP_SAMPLES), np.float32)
    for i, (word, voice, speed, pitch) in enumerate(recipes):
        sound = synthesize(word, voice, speed, pitch)[:CLIP_SAMPLES]
        sound = sound / max(float(np.abs(sound).max()), 1e-9) * 0.5 * rng.uniform(0.5, 1.0)
        centre = (CLIP_SAMPLES - sound.size) // 2
        shift = int(rng.integers(-1600, 1601))
        clip = place(sound.astype(np.float32), int(np.clip(centre + shift, 0, CLIP_SAMPLES - sound.size)))
        audio[i] = clip + rng.normal(0.0, rng.uniform(0.0005, 0.005), CLIP_SAMPLES).astype(np.float32)
    labels = np.array([KEYWORDS.index(r[0]) for r in recipes], np.int64)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, audio=audio, labels=labels)
        tmp.replace(path)
    return KeywordClips(audio, labels, tuple(map(tuple, recipes)), split)


def mfcc(audio: np.ndarray) -> np.ndarray:
    """DeepSpeech MFCC features of clips [N, samples] (or one clip [samples]) -> float32
    [N, frames, 26], computed by lwnn's Mfcc layer (``DEEPSPEECH_MFCC``)."""
    from lwnn.graph import Graph, Layer, TensorSpec
    from lwnn.model import Model

    audio = np.asarray(audio, np.float32)
    audio = audio[None] if audio.ndim == 1 else audio
    graph = Graph(
        {"audio": TensorSpec("audio", np.float32, (audio.shape[1], audio.shape[0]))},
        ["mfcc"],
        [Layer("mfcc", DEEPSPEECH_MFCC, ("audio",), ("mfcc",))],
        name="deepspeech_mfcc",
    )
    return Model(graph).run({"audio": np.ascontiguousarray(audio.T)})["mfcc"]


def word_segments(
    audio: np.ndarray, rate: int = SAMPLE_RATE, frame: float = 0.01, gap: float = 0.06, level: float = 0.08
) -> list[tuple[int, int]]:
    """(start, end) samples of the loud stretches of ``audio``: 10 ms frames whose RMS exceeds
    ``level`` x the loudest frame's, joined across quiet gaps shorter than ``gap`` seconds."""
    hop = int(frame * rate)
    count = len(audio) // hop
    rms = np.sqrt(np.mean(audio[: count * hop].reshape(count, hop).astype(np.float64) ** 2, axis=1))
    loud = rms > level * rms.max()
    segments: list[list[int]] = []
    for i in np.flatnonzero(loud):
        if segments and i - segments[-1][1] <= int(gap / frame):
            segments[-1][1] = i
        else:
            segments.append([i, i])
    return [(a * hop, (b + 1) * hop) for a, b in segments]


def real_keyword_clips() -> KeywordClips:
    """The first spoken word of each pocketsphinx-testdata ``cards`` recording that starts with a
    keyword, cut at its energy envelope (``word_segments``; 50 ms kept on each side) and centred in
    a one-second clip. Real, read speech of one speaker; the cut can hold part of the next word
    where the speaker ran them together."""
    from lwnn.zoo.pretrained import read_wav

    audio, labels, recipes = [], [], []
    for name, word in CARDS_FIRST_WORDS.items():
        path = CARDS_DIR / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{str(path)!r} not found; install it with `apt-get install pocketsphinx-testdata`."
            )
        samples = read_wav(path)
        start, end = word_segments(samples)[0]
        start, end = max(start - 800, 0), min(end + 800, len(samples), start + CLIP_SAMPLES)
        piece = samples[start:end]
        audio.append(place(piece, (CLIP_SAMPLES - piece.size) // 2))
        labels.append(KEYWORDS.index(word))
        recipes.append((word, f"cards/{name}", 0, 0))
    return KeywordClips(np.stack(audio), np.array(labels, np.int64), tuple(recipes), "real")
