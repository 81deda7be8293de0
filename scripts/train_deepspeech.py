"""Train the scaled DeepSpeech-style keyword recogniser on espeak-ng digits (lwnn.zoo.speech).

    .venv/bin/python scripts/train_deepspeech.py

Writes lwnn/data/models/deepspeech.onnx and deepspeech.json.

Architecture: DeepSpeech's layout with 64 units instead of 2048, ending in one keyword per clip
instead of per-frame characters: input ``mfcc`` [N, 49, 26] (lwnn's Mfcc layer with DeepSpeech's
parameters on one second of 16 kHz audio, ``lwnn.zoo.speech.DEEPSPEECH_MFCC``), a fixed per-coefficient
normalisation (training-set mean and standard deviation, as constants), the context layer (a dense
layer over 9 consecutive frames = a Conv1D of width 9), two per-frame dense layers, each with
DeepSpeech's ReLU clipped at 20, an LSTM (ONNX LSTM op) whose last hidden state goes through a
dense layer (clipped ReLU) and the output layer, then a softmax over the 10 digits.
The LSTM's zero initial states are left to ONNX's defaults (torch exports them as a sub-graph of
shape arithmetic, which the script removes).
``lwnn.zoo.famous.load_model("deepspeech", with_mfcc=True)`` runs Mfcc in lwnn in front.

Data: ``lwnn.zoo.speech.keyword_clips("train")`` (22 espeak-ng voices x 3 speeds x 3 pitches x 10
digits), each clip seen as made and in 4 augmented versions (speed +-15 %, random band-pass,
shift up to +-0.15 s, gain, white noise at 10-40 dB SNR; fixed seed). Metric: accuracy on the
540 clips of 6 voices never heard in training (``keyword_clips("test")``), and the words recognised
in real recordings (pocketsphinx-testdata ``cards``, ``lwnn.zoo.speech.real_keyword_clips``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from famous_common import (  # noqa: E402
    OUT_DIR,
    Timer,
    deterministic,
    drop_zero_lstm_states,
    export_onnx,
    finish_run,
    max_abs_diff,
    ort_run,
    write_artefacts,
)

from lwnn import speech  # noqa: E402

NAME = "deepspeech"
COMMAND = ".venv/bin/python scripts/train_deepspeech.py"
HIDDEN = 64
CONTEXT = 9
AUGMENTED_COPIES = 4
TEST_SUBSET_STEP = 6  # the test recomputes accuracy on every 6th test recipe


class DeepSpeechKWS(nn.Module):
    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("inv_std", torch.tensor(1.0 / std, dtype=torch.float32))
        coeffs = speech.DEEPSPEECH_MFCC.dct_coefficient_count
        self.dense1 = nn.Conv1d(coeffs, HIDDEN, CONTEXT, padding=CONTEXT // 2)  # 9-frame context layer
        self.dense2 = nn.Linear(HIDDEN, HIDDEN)
        self.dense3 = nn.Linear(HIDDEN, HIDDEN)
        self.lstm = nn.LSTM(HIDDEN, HIDDEN)
        self.dense5 = nn.Linear(HIDDEN, HIDDEN)
        self.dense6 = nn.Linear(HIDDEN, len(speech.KEYWORDS))

    def logits(self, mfcc):
        x = (mfcc - self.mean) * self.inv_std  # [N, T, 26]
        x = torch.clamp(self.dense1(x.transpose(1, 2)), 0, 20).transpose(1, 2)
        x = torch.clamp(self.dense2(x), 0, 20)
        x = torch.clamp(self.dense3(x), 0, 20)
        _, (h, _) = self.lstm(x.transpose(0, 1))  # [T, N, H] in, h [1, N, H]
        x = torch.clamp(self.dense5(h[0]), 0, 20)
        return self.dense6(x)

    def forward(self, mfcc):
        return F.softmax(self.logits(mfcc), dim=1)


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Speed (tempo and pitch together) by a factor in [0.85, 1.15], a random 4th-order
    Butterworth band between 60-300 Hz and 3.5-7.5 kHz (microphones and rooms colour real
    speech), shift by up to +-0.15 s (zero fill), gain in [0.5, 1.5], white noise at 10-40 dB SNR."""
    from scipy.signal import butter, resample, sosfilt

    out = np.zeros_like(audio)
    for i, clip in enumerate(audio):
        length = int(round(clip.size / rng.uniform(0.85, 1.15)))
        fast = resample(clip.astype(np.float64), length)
        fitted = np.zeros(clip.size)
        if length >= clip.size:
            start = (length - clip.size) // 2
            fitted[:] = fast[start : start + clip.size]
        else:
            start = (clip.size - length) // 2
            fitted[start : start + length] = fast
        band = butter(
            4,
            [rng.uniform(60, 300), rng.uniform(3500, 7500)],
            "bandpass",
            fs=speech.SAMPLE_RATE,
            output="sos",
        )
        fitted = sosfilt(band, fitted)
        shift = int(rng.integers(-2400, 2401))
        moved = np.zeros_like(fitted)
        if shift >= 0:
            moved[shift:] = fitted[: clip.size - shift]
        else:
            moved[:shift] = fitted[-shift:]
        moved *= rng.uniform(0.5, 1.5)
        power = float(np.mean(moved**2))
        snr = rng.uniform(10, 40)
        out[i] = (moved + rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), clip.size)).astype(np.float32)
    return out


def test_subset_recipes() -> list:
    return speech.keyword_recipes("test")[::TEST_SUBSET_STEP]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    deterministic(args.seed)

    with Timer() as t_data:
        train = speech.keyword_clips("train", args.seed)
        test = speech.keyword_clips("test", args.seed)
        real = speech.real_keyword_clips()
        rng = np.random.default_rng(args.seed)
        audio = np.concatenate([train.audio] + [augment(train.audio, rng) for _ in range(AUGMENTED_COPIES)])
        labels = np.concatenate([train.labels] * (AUGMENTED_COPIES + 1))
        feats = speech.mfcc(audio)
        test_feats = speech.mfcc(test.audio)
    print(
        f"{train}; {test}; {real}; {len(feats)} training examples {feats.shape[1:]}; data in "
        f"{t_data.seconds:.0f} s",
        flush=True,
    )
    mean, std = feats.mean((0, 1)), feats.std((0, 1))
    x, y = torch.from_numpy(feats), torch.from_numpy(labels)

    model = DeepSpeechKWS(mean, std)
    steps = args.epochs * (len(x) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    with Timer() as t_train:
        for epoch in range(args.epochs):
            model.train()
            order = torch.from_numpy(rng.permutation(len(x)))
            total = 0.0
            with Timer() as t_epoch:
                for i in range(len(x) // args.batch):
                    idx = order[i * args.batch : (i + 1) * args.batch]
                    loss = F.cross_entropy(model.logits(x[idx]), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    total += loss.item()
            if epoch % 5 == 4 or epoch == args.epochs - 1:
                with torch.no_grad():
                    acc = float(
                        (model.logits(torch.from_numpy(test_feats)).argmax(1).numpy() == test.labels).mean()
                    )
                print(
                    f"epoch {epoch + 1}/{args.epochs}: loss {total / (len(x) // args.batch):.4f}, "
                    f"test accuracy {acc:.4f} ({t_epoch.seconds:.0f} s)",
                    flush=True,
                )
    model.eval()

    example = torch.from_numpy(test_feats[:8])
    onnx_bytes = export_onnx(
        model,
        (example,),
        ["mfcc"],
        ["probs"],
        {"mfcc": {0: "batch"}, "probs": {0: "batch"}},
        NAME,
        f"lwnn/scripts/train_{NAME}.py",
    )
    onnx_bytes = drop_zero_lstm_states(onnx_bytes)
    with torch.no_grad():
        ref = {"probs": model(example).numpy()}
    got_ort = ort_run(onnx_bytes, {"mfcc": test_feats[:8]})
    write_artefacts(NAME, onnx_bytes, {}, args.out)
    import lwnn
    from lwnn.importers.onnx import import_onnx, read_onnx
    from lwnn.model import Model
    from lwnn.zoo.famous import mfcc_graph

    net = lwnn.load(args.out / f"{NAME}.onnx")
    got_lwnn = net.run({"mfcc": test_feats[:8]})
    diff_ort = max_abs_diff(ref, got_ort)
    diff_lwnn = max_abs_diff(got_ort, got_lwnn)
    print(f"max |ort - torch| {diff_ort:.2e}; max |lwnn - ort| {diff_lwnn:.2e}")
    assert diff_ort < 1e-4 and diff_lwnn < 1e-4, "the exported model disagrees with torch"

    probs = net.run({"mfcc": test_feats})["probs"]
    accuracy = float((probs.argmax(1) == test.labels).mean())
    subset = speech.keyword_clips("test", args.seed, use_cache=False, recipes=test_subset_recipes())
    accuracy_subset = float(
        (net.run({"mfcc": speech.mfcc(subset.audio)})["probs"].argmax(1) == subset.labels).mean()
    )
    with_mfcc = Model(mfcc_graph(import_onnx(read_onnx(args.out / f"{NAME}.onnx"))))
    real_words = [
        speech.KEYWORDS[int(with_mfcc.run({"audio": clip})["probs"].argmax())] for clip in real.audio
    ]
    real_truth = [speech.KEYWORDS[c] for c in real.labels]
    real_acc = float(np.mean([a == b for a, b in zip(real_words, real_truth)]))
    print(
        f"held-out accuracy (lwnn, {len(test)} clips of unheard voices): {accuracy:.4f}; subset of "
        f"{len(subset)}: {accuracy_subset:.4f}; real speech: {real_words} for {real_truth}"
    )
    meta = {
        "model": f"{NAME}.onnx",
        "architecture": f"DeepSpeech layout, {HIDDEN} units: normalisation, 9-frame context Conv1D, "
        f"2 dense, LSTM, "
        "dense, output dense + softmax over 10 digits; clipped ReLU (20)",
        "input": {
            "name": "mfcc",
            "shape": ["batch", speech.FRAMES, 26],
            "dtype": "float32",
            "preprocessing": "lwnn.zoo.speech.mfcc (lwnn Mfcc layer, DeepSpeech parameters: window 512, "
            "stride 320, 40 mel channels 20-8000 Hz, 26 coefficients) of 1 s of 16 kHz audio",
        },
        "output": {"name": "probs", "shape": ["batch", 10], "classes": list(speech.KEYWORDS)},
        "data": {
            "train": f"lwnn.zoo.speech.keyword_clips('train', seed={args.seed}) x {AUGMENTED_COPIES + 1} "
            "(original + augmented)",
            "test": f"lwnn.zoo.speech.keyword_clips('test', seed={args.seed})",
            "espeak": speech.espeak_version(),
        },
        "metric": "keyword accuracy on held-out voices",
        "test_accuracy": round(accuracy, 4),
        "test_clips": len(test),
        "test_subset": {
            "recipes": f"lwnn.zoo.speech.keyword_recipes('test')[::{TEST_SUBSET_STEP}]",
            "call": f"keyword_clips('test', seed={args.seed}, use_cache=False, recipes=...)",
            "clips": len(subset),
            "accuracy": round(accuracy_subset, 6),
        },
        "real_speech": {
            "source": "pocketsphinx-testdata cards, first word (lwnn.zoo.speech.real_keyword_clips)",
            "truth": real_truth,
            "recognised": real_words,
            "accuracy": real_acc,
        },
    }
    finish_run(NAME, onnx_bytes, meta, args, t_train.seconds, diff_ort, diff_lwnn, COMMAND)


if __name__ == "__main__":
    main()
