"""Keyword speech data (lwnn.zoo.speech): espeak-ng clips have the stated rate, length and content,
are deterministic, and the real recordings and the MFCC front end behave as documented."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lwnn.zoo import speech

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def dominant_frequency(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.fft.rfftfreq(audio.size, 1 / rate)[spectrum.argmax()])


def test_resample_keeps_frequency_and_duration():
    t = np.arange(22050) / 22050
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = speech.resample(tone, 22050, 16000)
    assert out.dtype == np.float32 and out.size == 16000
    assert dominant_frequency(out, 16000) == pytest.approx(1000, abs=2)


@needs_espeak
def test_synthesize_word_is_16khz_speech():
    word = speech.synthesize("seven", "en-us+m3", 150, 50)
    assert word.dtype == np.float32
    # "seven" at 150 words per minute lasts a few tenths of a second at 16 kHz, and is trimmed.
    assert 0.25 * speech.SAMPLE_RATE < word.size < 1.0 * speech.SAMPLE_RATE
    assert np.abs(word).max() > 0.05
    assert abs(word[0]) > 0.02 * np.abs(word).max() and abs(word[-1]) > 0.02 * np.abs(word).max()
    slower = speech.synthesize("seven", "en-us+m3", 100, 50)
    assert slower.size > word.size * 1.2  # the speed argument reaches espeak


@needs_espeak
def test_keyword_clips_have_fixed_length_and_are_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("LWNN_CACHE", str(tmp_path))
    recipes = [("two", "en-us+f2", 150, 50), ("nine", "en-gb-x-rp+m3", 120, 70), ("zero", "en+f5", 185, 35)]
    clips = speech.keyword_clips("test", seed=1, recipes=recipes)
    assert clips.audio.shape == (3, speech.CLIP_SAMPLES) and clips.audio.dtype == np.float32
    np.testing.assert_array_equal(clips.labels, [2, 9, 0])
    assert list(tmp_path.glob("keywords-test-*.npz"))  # cached
    again = speech.keyword_clips("test", seed=1, recipes=recipes, use_cache=False)
    np.testing.assert_array_equal(clips.audio, again.audio)  # the cache holds what synthesis gives
    other = speech.keyword_clips("test", seed=2, recipes=recipes, use_cache=False)
    assert not np.array_equal(other.audio, clips.audio)
    for clip in clips.audio:
        peak = np.abs(clip).max()
        assert 0.2 < peak <= 0.55  # peak 0.5 x gain in [0.5, 1] plus a quiet noise floor
        # The word sits inside the second: the first and last 50 ms hold only the noise floor.
        assert np.abs(clip[:800]).max() < 0.1 * peak and np.abs(clip[-800:]).max() < 0.1 * peak
        assert np.std(clip[:800]) > 1e-4  # never digital silence


def test_train_and_test_voices_differ():
    assert not set(speech.VOICES["train"]) & set(speech.VOICES["test"])
    assert len(speech.keyword_recipes("train")) == 10 * len(speech.VOICES["train"]) * 9


def test_word_segments_finds_separated_bursts():
    rate = speech.SAMPLE_RATE
    audio = np.zeros(rate, np.float32)
    audio[1600:4800] = np.sin(np.arange(3200) * 0.3)  # 0.1-0.3 s
    audio[9600:12800] = 0.5 * np.sin(np.arange(3200) * 0.2)  # 0.6-0.8 s
    assert speech.word_segments(audio) == [(1600, 4800), (9600, 12800)]


def test_mfcc_front_end_uses_deepspeech_parameters():
    op = speech.DEEPSPEECH_MFCC
    assert (op.window_size, op.stride, op.dct_coefficient_count, op.upper_frequency_limit) == (
        512,
        320,
        26,
        8000,
    )
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, (3, speech.CLIP_SAMPLES)).astype(np.float32)
    feats = speech.mfcc(audio)
    assert feats.shape == (3, speech.FRAMES, 26) == (3, 49, 26) and feats.dtype == np.float32
    np.testing.assert_allclose(speech.mfcc(audio[1]), feats[1:2], rtol=1e-5, atol=1e-4)  # per clip = batched


def test_real_keyword_clips_from_pocketsphinx():
    real = speech.real_keyword_clips()
    assert real.audio.shape == (4, speech.CLIP_SAMPLES) and real.audio.dtype == np.float32
    assert [speech.KEYWORDS[c] for c in real.labels] == ["four", "seven", "five", "eight"]
    for clip in real.audio:
        loud = np.flatnonzero(np.abs(clip) > 0.1 * np.abs(clip).max())
        # One word of a few tenths of a second, centred in its second.
        assert 0.2 * speech.SAMPLE_RATE < loud[-1] - loud[0] < 0.8 * speech.SAMPLE_RATE
        assert abs((loud[0] + loud[-1]) / 2 - speech.CLIP_SAMPLES / 2) < 0.15 * speech.SAMPLE_RATE


def test_front_end_on_real_read_speech():
    from lwnn.zoo import read_wav, speech_clips

    path = next(iter(speech_clips()))
    audio = read_wav(path)
    feats = speech.mfcc(audio)
    assert feats.shape == (1, 1 + (audio.size - 512) // 320, 26)
    assert np.isfinite(feats).all()
    # Speech frames carry more energy (coefficient 0, the log-mel sum) than the quietest frames.
    energy = feats[0, :, 0]
    assert np.percentile(energy, 90) - np.percentile(energy, 10) > 5.0
