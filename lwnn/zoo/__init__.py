"""Models and data to try lwnn on, apart from the library's core (docs/architecture.md, "Layers":
nothing in the core imports this package).

* ``pretrained`` (its names are also here, ``lwnn.zoo.rapidocr_model`` ...): the real models that
  ship inside PyPI wheels (rapidocr's PP-OCR nets, silero-vad) and their inputs;
* ``famous``: the seed's famous models (MobileNet-SSD, YOLOv3, ENet, DeepSpeech) at real and
  trained scaled sizes, their heads and task scores;
* ``datasets``: Debian's Fashion-MNIST, and the feeds of the bundled CNN;
* ``scenes``, ``speech``: detection/segmentation scenes and keyword audio made from real data;
* ``tasks``: task metrics and pictures (text boxes, speech decisions).
"""

from lwnn.zoo.pretrained import (
    RAPIDOCR_MODELS,
    SPEECH_DIR,
    rapidocr_input,
    rapidocr_model,
    read_wav,
    silero_vad_input,
    silero_vad_model,
    speech_clips,
    text_image,
)

__all__ = ["RAPIDOCR_MODELS", "SPEECH_DIR", "rapidocr_input", "rapidocr_model", "read_wav",
           "silero_vad_input", "silero_vad_model", "speech_clips", "text_image"]
