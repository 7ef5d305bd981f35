"""Voiced sounds: speech (female / male) and laughter.

Speech comes from `espeak-ng` when it is on PATH and the backend allows it,
otherwise from a pure-numpy formant synthesiser: a glottal pulse train at the
speaker's F0 (female about 230 Hz, male about 120 Hz; espeak's voices sit near
206 / 88 Hz) through a cascade of three vowel formant resonators, in syllables
with fricative onsets, grouped into words separated by pauses. What separates
the two speech classes is mainly F0 and formant scale, as in real voices.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from math import gcd

import numpy as np
from scipy import signal

from textseld.constants import SPEECH_BACKENDS
from textseld.data.synthesis.dsp import bandpass_noise, fade, place, resonator_sos

# Adult male formants F1-F3 in Hz (Peterson & Barney averages).
VOWELS = np.array(
    [
        [730, 1090, 2440],  # a
        [270, 2290, 3010],  # i
        [300, 870, 2240],  # u
        [530, 1840, 2480],  # e
        [570, 840, 2410],  # o
        [660, 1720, 2410],  # ae
        [490, 1350, 1690],  # er
    ],
    dtype=np.float64,
)
FORMANT_BW = np.array([70.0, 100.0, 140.0])
ESPEAK_WORDS = (
    "the cat sat on a warm mat near seven green doors while people talk about "
    "time and weather in the small kitchen every morning before the long walk"
).split()


def _pulse_train(f0: np.ndarray, sr: int) -> np.ndarray:
    """Unit impulses at each glottal period of a time-varying f0 (Hz per sample)."""
    phase = np.cumsum(f0) / sr
    out = np.zeros(f0.size)
    out[1:][np.diff(np.floor(phase)) > 0] = 1.0
    return out


def voiced_segment(
    rng: np.random.Generator,
    n: int,
    sr: int,
    f0_start: float,
    f0_end: float,
    formants: np.ndarray,
    breath: float = 0.03,
) -> np.ndarray:
    """One vowel of n samples: gliding glottal pulses through formant resonators,
    with a little aspiration noise, peak-normalised to about 1."""
    f0 = np.linspace(f0_start, f0_end, n) * (1 + 0.01 * rng.standard_normal())
    src = _pulse_train(f0, sr)
    src = signal.lfilter([1.0], [1.0, -0.94], src)  # glottal spectral tilt
    src += breath * rng.standard_normal(n)
    out = signal.sosfilt(resonator_sos(formants, FORMANT_BW * (formants[0] / 500.0) ** 0.3, sr), src)
    env = np.hanning(n) ** 0.35  # soft onset and release, flat middle
    out *= env
    return out / (np.max(np.abs(out)) + 1e-9)


def formant_speech(rng: np.random.Generator, duration: float, sr: int, female: bool) -> np.ndarray:
    """Babble-like speech of `duration` seconds from a random speaker."""
    n = int(duration * sr)
    out = np.zeros(n)
    f0_base = rng.normal(230.0, 15.0) if female else rng.normal(120.0, 10.0)
    scale = rng.uniform(1.12, 1.22) if female else rng.uniform(0.95, 1.05)
    t = rng.uniform(0.0, 0.05)
    while t < duration:
        for _ in range(int(rng.integers(1, 5))):  # syllables of one word
            if rng.random() < 0.5:  # fricative / plosive onset
                nc = int(rng.uniform(0.03, 0.08) * sr)
                lo = rng.choice([1500.0, 2500.0, 4000.0])
                burst = bandpass_noise(rng, nc, lo, lo * 2.2, sr) * np.hanning(nc)
                place(out, 0.25 * burst / (np.max(np.abs(burst)) + 1e-9), int(t * sr))
                t += nc / sr * 0.8
            nv = int(rng.uniform(0.12, 0.26) * sr)
            # Declination over the utterance plus per-syllable accent.
            f0 = f0_base * (1.08 - 0.16 * min(t / max(duration, 1e-3), 1.0)) * (1 + 0.08 * rng.standard_normal())
            glide = f0 * (1 + rng.uniform(-0.12, 0.08))
            formants = VOWELS[rng.integers(len(VOWELS))] * scale * rng.uniform(0.95, 1.05, 3)
            place(out, rng.uniform(0.6, 1.0) * voiced_segment(rng, nv, sr, f0, glide, formants), int(t * sr))
            t += nv / sr * rng.uniform(0.85, 1.0)
        t += rng.uniform(0.08, 0.35)  # pause between words
    return out


def laughter(rng: np.random.Generator, duration: float, sr: int) -> np.ndarray:
    """Bouts of voiced 'ha' bursts (aspiration + open vowel) at 4-6 per second,
    separated by quieter inhalations."""
    n = int(duration * sr)
    out = np.zeros(n)
    f0 = rng.uniform(160.0, 380.0)
    scale = rng.uniform(0.95, 1.25)
    t = rng.uniform(0.0, 0.05)
    while t < duration:
        n_ha = int(rng.integers(3, 9))
        rate = rng.uniform(4.0, 6.0)
        for k in range(n_ha):
            gain = 0.95**k * rng.uniform(0.7, 1.0)
            na = int(rng.uniform(0.02, 0.05) * sr)
            asp = bandpass_noise(rng, na, 600.0, 3500.0, sr) * np.hanning(na)
            place(out, 0.3 * gain * asp / (np.max(np.abs(asp)) + 1e-9), int(t * sr))
            nv = int(rng.uniform(0.07, 0.12) * sr)
            f = f0 * (1 + 0.06 * rng.standard_normal())
            seg = voiced_segment(rng, nv, sr, f, f * 0.85, VOWELS[0] * scale, breath=0.15)
            place(out, gain * seg, int(t * sr) + na // 2)
            t += 1.0 / rate
        ni = int(rng.uniform(0.2, 0.4) * sr)  # inhalation
        inhale = bandpass_noise(rng, ni, 800.0, 4000.0, sr) * np.hanning(ni)
        place(out, 0.12 * inhale / (np.max(np.abs(inhale)) + 1e-9), int(t * sr))
        t += ni / sr + rng.uniform(0.05, 0.3)
    return out


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a 16-bit mono WAV from a byte string. espeak-ng writes a streaming
    header (size fields 0x7fffffff), so the data chunk is read to the end."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("espeak-ng did not write a RIFF/WAVE stream")
    pos, sr, bits = 12, None, None
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if tag == b"fmt ":
            _, channels, sr, _, _, bits = struct.unpack("<HHIIHH", data[pos + 8 : pos + 24])
            if channels != 1 or bits != 16:
                raise ValueError(f"espeak-ng wrote {channels} channels of {bits} bits; expected mono 16-bit")
        elif tag == b"data":
            if sr is None:
                raise ValueError("espeak-ng WAV has no fmt chunk before its data")
            raw = data[pos + 8 :]
            raw = raw[: len(raw) // 2 * 2]
            return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0, sr
        pos += 8 + size + (size & 1)
    raise ValueError("espeak-ng WAV has no data chunk")


def espeak_speech(rng: np.random.Generator, duration: float, sr: int, female: bool, exe: str) -> np.ndarray:
    """Sentences of random words spoken by a random espeak-ng voice, resampled to
    sr, concatenated with short pauses and cut to `duration` seconds."""
    n = int(duration * sr)
    voice = f"en+f{rng.integers(1, 6)}" if female else f"en+m{rng.integers(1, 8)}"
    speed, pitch = int(rng.integers(140, 190)), int(rng.integers(35, 65))
    out = np.zeros(n)
    pos = int(rng.uniform(0.0, 0.05) * sr)
    while pos < n:
        words = " ".join(rng.choice(ESPEAK_WORDS, size=int(rng.integers(3, 8))))
        cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", words]
        proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
        x, x_sr = _parse_wav(proc.stdout)
        if x_sr != sr:
            g = gcd(sr, x_sr)
            x = signal.resample_poly(x, sr // g, x_sr // g)
        if x.size == 0:
            raise RuntimeError(f"{' '.join(cmd)} produced no audio")
        place(out, x, pos)
        pos += x.size + int(rng.uniform(0.1, 0.4) * sr)
    return out


def resolve_speech_backend(backend: str) -> tuple[str, str | None]:
    """Map "auto" | "formant" | "espeak" to (backend actually used, executable).
    "espeak" without espeak-ng on PATH is an error; "auto" falls back to formant."""
    if backend not in SPEECH_BACKENDS:
        raise ValueError(f"speech backend must be one of {SPEECH_BACKENDS}, got {backend!r}")
    if backend == "formant":
        return "formant", None
    exe = shutil.which("espeak-ng")
    if exe is None:
        if backend == "espeak":
            raise RuntimeError("speech backend 'espeak' asked for, but espeak-ng is not on PATH")
        return "formant", None
    return "espeak", exe


def speech(
    rng: np.random.Generator, duration: float, sr: int, female: bool, backend: str = "formant", exe: str | None = None
) -> np.ndarray:
    """Speech of one speaker with a click-free start and end. backend: "formant"
    or "espeak" (resolved, see `resolve_speech_backend`)."""
    if backend == "espeak":
        x = espeak_speech(rng, duration, sr, female, exe or "espeak-ng")
    else:
        x = formant_speech(rng, duration, sr, female)
    return fade(x, sr)


__all__ = ["speech", "laughter", "resolve_speech_backend", "SPEECH_BACKENDS"]
