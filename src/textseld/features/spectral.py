"""STFT, mel filterbank and dB in torch (docs/METHOD.md section 2).

STFT: hop 480, periodic Hann window of 960 samples zero-padded (centred) to
n_fft 1024, centred frames with ZERO padding at the clip edges
-> 513 bins x 251 frames for a 5 s clip at 24 kHz. Mel: librosa's default
filterbank for sr=24000, n_fft=1024, 64 bands (Slaney scale and norm, 0-12 kHz),
computed here (`slaney_mel`; tests compare it with librosa.filters.mel).
dB: 10*log10(max(x, 1e-10)), no top-dB clipping.

Everything works on any leading batch shape and on any torch device; the
filterbank is computed once and cached per (dtype, device).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
import torch

from textseld.constants import HOP, N_FFT, N_MELS, SAMPLE_RATE, WIN

DB_FLOOR = 1e-10  # power floor before log10 (docs/METHOD.md section 2: no top-dB clipping)


MEL_LINEAR_HZ_PER_MEL = 200.0 / 3  # Slaney scale: linear below 1 kHz ...
MEL_BREAK_HZ = 1000.0
MEL_LOG_STEP = np.log(6.4) / 27.0  # ... logarithmic above it (27 mels per factor 6.4)


def hz_to_mel(hz: npt.ArrayLike) -> np.ndarray:
    """Slaney mel scale (Auditory Toolbox): hz / (200/3) below 1 kHz, 15 + ln(hz / 1000) / step above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / MEL_LINEAR_HZ_PER_MEL
    with np.errstate(divide="ignore"):
        log = MEL_BREAK_HZ / MEL_LINEAR_HZ_PER_MEL + np.log(np.maximum(hz, 1e-300) / MEL_BREAK_HZ) / MEL_LOG_STEP
    return np.where(hz >= MEL_BREAK_HZ, log, linear)


def mel_to_hz(mel: npt.ArrayLike) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    break_mel = MEL_BREAK_HZ / MEL_LINEAR_HZ_PER_MEL
    return np.where(
        mel >= break_mel, MEL_BREAK_HZ * np.exp(MEL_LOG_STEP * (mel - break_mel)), mel * MEL_LINEAR_HZ_PER_MEL
    )


def slaney_mel(sr: float, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) float64 triangular filters on the Slaney mel scale with area
    ("slaney") normalisation: band i rises from edge i to its centre i + 1 and falls to edge i + 2,
    the n_mels + 2 edges equally spaced in mel from fmin to fmax (default sr / 2), and is scaled by
    2 / (edge i + 2 - edge i) in Hz. The same filterbank as librosa.filters.mel's defaults."""
    fmax = sr / 2 if fmax is None else fmax
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (n_mels + 2,) Hz
    freqs = np.arange(1 + n_fft // 2) * (sr / n_fft)  # (bins,) Hz
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))


@functools.lru_cache(maxsize=1)
def _mel_numpy() -> np.ndarray:
    """(F=64, 513) float64 Slaney mel filterbank, fmin 0, fmax sr/2 (librosa's defaults)."""
    return slaney_mel(SAMPLE_RATE, N_FFT, N_MELS)


@functools.lru_cache(maxsize=8)
def _mel_cached(dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.from_numpy(_mel_numpy()).to(dtype=dtype, device=device)


def mel_filterbank(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> torch.Tensor:
    """The mel filterbank as a tensor (F=64, 513). Do not modify it in place (cached)."""
    return _mel_cached(dtype, str(torch.device(device)))


@functools.lru_cache(maxsize=8)
def _window_cached(dtype: torch.dtype, device: str) -> torch.Tensor:
    # periodic Hann, as librosa's get_window("hann", 960) (fftbins=True)
    return torch.hann_window(WIN, periodic=True, dtype=dtype, device=device)


def hann_window(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> torch.Tensor:
    """(960,) periodic Hann window; torch.stft pads it centrally to n_fft like librosa."""
    return _window_cached(dtype, str(torch.device(device)))


def stft(x: torch.Tensor) -> torch.Tensor:
    """Complex STFT. x: (..., N) real -> (..., 513, T) complex, T = 1 + N // 480 (251 for 5 s)."""
    lead = x.shape[:-1]
    spec = torch.stft(
        x.reshape(-1, x.shape[-1]),
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=WIN,
        window=hann_window(x.dtype, x.device),
        center=True,
        pad_mode="constant",  # zero padding at the edges (librosa >= 0.10 default)
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of `stft` (window-sum-square normalised overlap-add, as librosa.istft).

    spec: (..., 513, T) complex -> (..., length) real.
    """
    lead = spec.shape[:-2]
    real_dtype = spec.real.dtype
    x = torch.istft(
        spec.reshape(-1, *spec.shape[-2:]),
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=WIN,
        window=hann_window(real_dtype, spec.device),
        center=True,
        normalized=False,
        onesided=True,
        length=length,
    )
    return x.reshape(*lead, length)


def power(spec: torch.Tensor) -> torch.Tensor:
    """|spec|^2 without the sqrt of abs(). (..., 513, T) complex -> (..., 513, T) real."""
    return spec.real.square() + spec.imag.square()


def mel_project(bins: torch.Tensor) -> torch.Tensor:
    """Apply the mel filterbank to a per-bin quantity. (..., 513, T) real -> (..., T, F)."""
    fb = mel_filterbank(bins.dtype, bins.device)  # (F, 513)
    return torch.matmul(bins.transpose(-2, -1), fb.T)


def mel_power(spec: torch.Tensor) -> torch.Tensor:
    """Mel power of a complex STFT. (..., 513, T) complex -> (..., T, F)."""
    return mel_project(power(spec))


def power_to_db(p: torch.Tensor) -> torch.Tensor:
    """10*log10(max(p, 1e-10)), no top-dB clipping (same shape)."""
    return 10.0 * torch.log10(torch.clamp(p, min=DB_FLOOR))
