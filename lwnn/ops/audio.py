"""Audio front ends: Mfcc as DeepSpeech computes it (TensorFlow's AudioSpectrogram then Mfcc)."""

from __future__ import annotations

from dataclasses import dataclass

from lwnn.errors import ShapeError
from lwnn.ops.base import Op, expect_rank


@dataclass(frozen=True)
class Mfcc(Op):
    """TensorFlow ``audio_spectrogram`` + ``mfcc`` in one layer.

    Input: float samples ``[samples]`` or ``[samples, channels]`` (TensorFlow's layout).
    Output: ``[channels, frames, dct_coefficient_count]`` with
    ``frames = 1 + (samples - window_size) // stride``.

    Spectrogram: periodic Hann window of ``window_size`` samples every ``stride`` samples, FFT of
    the next power of two, squared magnitude (or magnitude). Mfcc: TensorFlow's mel filterbank of
    ``filterbank_channel_count`` triangles between the frequency limits applied to the
    magnitude, log (floor 1e-12), DCT-II scaled by sqrt(2/channels), first
    ``dct_coefficient_count`` coefficients. DeepSpeech: window 512, stride 320, 26 coefficients,
    upper limit sample_rate/2.
    """

    type = "Mfcc"
    sample_rate: int = 16000
    window_size: int = 512
    stride: int = 320
    magnitude_squared: bool = True
    upper_frequency_limit: float = 4000.0
    lower_frequency_limit: float = 20.0
    filterbank_channel_count: int = 40
    dct_coefficient_count: int = 13

    @property
    def fft_length(self) -> int:
        return 1 << max(self.window_size - 1, 1).bit_length()

    def infer(self, shapes, values):
        x = shapes[0]
        expect_rank(self, x, (1, 2), "audio input")
        if self.window_size < 2 or self.stride < 1:
            raise ShapeError(
                f"Mfcc expects window_size >= 2 and stride >= 1. Received window_size {self.window_size}, "
                f"stride {self.stride}."
            )
        if not 0 <= self.lower_frequency_limit < self.upper_frequency_limit <= self.sample_rate / 2:
            raise ShapeError(
                f"Mfcc expects 0 <= lower_frequency_limit < upper_frequency_limit <= sample_rate/2 "
                f"({self.sample_rate / 2:g}). Received {self.lower_frequency_limit:g} and "
                f"{self.upper_frequency_limit:g}."
            )
        if not 0 < self.dct_coefficient_count <= self.filterbank_channel_count:
            raise ShapeError(
                f"Mfcc expects 0 < dct_coefficient_count <= filterbank_channel_count "
                f"({self.filterbank_channel_count}). Received {self.dct_coefficient_count}."
            )
        samples = x[0]
        if samples < self.window_size:
            raise ShapeError(
                f"Mfcc needs at least one window of {self.window_size} samples. Received {samples} samples."
            )
        channels = x[1] if len(x) == 2 else 1
        return [(channels, 1 + (samples - self.window_size) // self.stride, self.dct_coefficient_count)]
