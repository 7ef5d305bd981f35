"""Small signal helpers shared by the procedural sound generators.

All signals are float64 mono numpy arrays at the sample rate `sr` passed in;
randomness always comes from the caller's `numpy.random.Generator` so that a
clip's audio is a pure function of its seed.
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pink (1/f power) noise of n samples, unit RMS. Shaped in the frequency
    domain so the cost is one FFT pair."""
    if n <= 0:
        return np.zeros(0)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0  # leave DC at unit gain before zeroing it below
    spec /= np.sqrt(f)
    spec[0] = 0.0
    out = np.fft.irfft(spec, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def resonator_sos(freqs, bandwidths, sr: int) -> np.ndarray:
    """Cascade of two-pole resonators (one SOS row each), unit gain at each centre
    frequency. freqs, bandwidths in Hz -> (n, 6) SOS array."""
    rows = []
    for f, bw in zip(np.atleast_1d(freqs), np.atleast_1d(bandwidths)):
        f = float(np.clip(f, 20.0, 0.45 * sr))
        r = np.exp(-np.pi * float(bw) / sr)
        theta = 2 * np.pi * f / sr
        a = np.array([1.0, -2 * r * np.cos(theta), r * r])
        # Normalise the peak: |A(e^{j theta})| is the resonance gain's inverse.
        z = np.exp(1j * theta)
        g = abs(a[0] + a[1] / z + a[2] / z**2)
        rows.append([g, 0.0, 0.0, *a])
    return np.asarray(rows, dtype=np.float64)


def bandpass_sos(lo: float, hi: float, sr: int, order: int = 2) -> np.ndarray:
    """Butterworth band-pass (lo, hi in Hz, clipped to the valid range)."""
    nyq = sr / 2
    lo = float(np.clip(lo, 10.0, nyq * 0.9))
    hi = float(np.clip(hi, lo * 1.1, nyq * 0.98))
    return signal.butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")


def bandpass_noise(rng: np.random.Generator, n: int, lo: float, hi: float, sr: int) -> np.ndarray:
    """White noise band-passed to [lo, hi] Hz."""
    return signal.sosfilt(bandpass_sos(lo, hi, sr), rng.standard_normal(n))


def decay_env(n: int, tau_s: float, sr: int, attack_s: float = 0.002) -> np.ndarray:
    """Short linear attack then exponential decay with time constant tau_s."""
    t = np.arange(n) / sr
    env = np.exp(-t / max(tau_s, 1e-4))
    na = min(max(1, int(attack_s * sr)), n)
    env[:na] *= np.linspace(0.0, 1.0, na, endpoint=False)
    return env


def fade(x: np.ndarray, sr: int, fade_in_s: float = 0.01, fade_out_s: float = 0.02) -> np.ndarray:
    """Raised-cosine fade in/out (in place and returned) so events start and stop
    without clicks."""
    n_in = min(int(fade_in_s * sr), x.size // 2)
    n_out = min(int(fade_out_s * sr), x.size // 2)
    if n_in > 0:
        x[:n_in] *= 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n_in))
    if n_out > 0:
        x[-n_out:] *= 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, n_out))
    return x


def place(dst: np.ndarray, src: np.ndarray, start: int) -> None:
    """Add src into dst starting at sample `start`, clipping at both ends."""
    a, b = max(start, 0), min(start + src.size, dst.size)
    if b > a:
        dst[a:b] += src[a - start : b - start]


def harmonic_tone(f0: np.ndarray | float, n: int, sr: int, amps: np.ndarray, phase0: float = 0.0) -> np.ndarray:
    """Sum of harmonics k*f0 (k = 1..len(amps)) with a possibly time-varying f0
    (array of n values); harmonics above 0.45*sr are dropped per sample."""
    f0 = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = phase0 + 2 * np.pi * np.cumsum(f0) / sr
    out = np.zeros(n)
    for k, a in enumerate(amps, start=1):
        audible = (k * f0) < 0.45 * sr
        if not audible.any():
            break
        out += a * np.sin(k * phase) * audible
    return out


def frame_energy(x: np.ndarray, hop: int) -> np.ndarray:
    """Mean power per non-overlapping frame of `hop` samples (x padded with zeros
    to a whole number of frames)."""
    n = -(-x.size // hop)
    pad = np.zeros(n * hop)
    pad[: x.size] = x
    return np.mean(pad.reshape(n, hop) ** 2, axis=1)
