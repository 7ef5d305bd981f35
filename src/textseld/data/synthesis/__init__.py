"""Embedded default dataset: physically simulated stereo SELD clips in the
DCASE2025 on-disk format (docs/METHOD.md section 1, "Synthetic data").

Modules: `dsp` (signal helpers), `voice` (speech, laughter), `sounds` (the 13
classes), `room` (shoebox FOA image-source renderer), `scene` (events and
labels), `generator` (rendering and writing the dataset).
"""

from textseld.data.synthesis.generator import synthesize_dataset

__all__ = ["synthesize_dataset"]
