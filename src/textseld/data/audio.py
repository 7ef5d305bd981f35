"""What a dataset clip's audio must be, in one place: `check-data` reports these problems,
feature extraction refuses a clip that has any.

A clip is a readable WAV with 2 channels [L, R] at 24 kHz, exactly 120 000 samples (the
header's count and the data present agree), all finite. The sample format is free (16- or
24-bit PCM, float): it is read as float32 either way.
"""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from textseld.constants import CLIP_SAMPLES, N_CHANNELS, SAMPLE_RATE


class AudioError(ValueError):
    """A clip's audio is unusable; the message names the clip or file."""


def clip_audio_problems(path: str | os.PathLike) -> tuple[np.ndarray | None, list[str]]:
    """(audio (2, N) float32 [L, R] or None, every problem of the file) for one clip's WAV."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for corrupt files
        return None, [f"unreadable audio file ({exc})"]
    problems = []
    if info.channels != N_CHANNELS:
        problems.append(f"expected {N_CHANNELS} channels, got {info.channels} (stereo [L, R])")
    if info.samplerate != SAMPLE_RATE:
        problems.append(f"expected {SAMPLE_RATE} Hz, got {info.samplerate} Hz")
    if info.frames != CLIP_SAMPLES:
        problems.append(f"expected {CLIP_SAMPLES} samples (5 s), got {info.frames}")
    try:
        # Reading the data catches truncation that the header does not show.
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        return None, [*problems, f"audio data unreadable ({exc})"]
    if len(data) != info.frames:
        problems.append(f"truncated: header says {info.frames} samples, file holds {len(data)}")
    if not np.isfinite(data).all():
        problems.append("audio holds NaN or infinite samples")
    return (None if problems else np.ascontiguousarray(data.T)), problems


def load_audio(path: str | os.PathLike) -> np.ndarray:
    """Read one clip: (2, N=120000) float32 [L, R]; AudioError naming the file and every problem."""
    audio, problems = clip_audio_problems(path)
    if audio is None:
        raise AudioError(f"{path}: {'; '.join(problems)}")
    return audio
