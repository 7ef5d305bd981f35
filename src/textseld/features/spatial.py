"""Stereo spatial features: ILD and signed IVy (docs/METHOD.md section 2).

Both are signed and antisymmetric in L <-> R: positive when the left channel
is louder (source on the left, positive azimuth), negative on the right.
(The published code squares IVy before a log and builds an asymmetric ILD,
losing the side; we do not.)
"""

from __future__ import annotations

import torch

from textseld.features.spectral import mel_filterbank

IVY_EPS = 1e-8  # added to the per-bin energy |W|^2 + |Y|^2


def ild(logmel_lr: torch.Tensor) -> torch.Tensor:
    """Band level difference in dB. logmel_lr: (..., 2, T, F) dB -> (..., T, F) = L - R."""
    return logmel_lr[..., 0, :, :] - logmel_lr[..., 1, :, :]


def ivy(spec_w: torch.Tensor, spec_y: torch.Tensor) -> torch.Tensor:
    """Signed y-component of the stereo intensity vector, per mel band.

    spec_w: STFT of the mid signal w = (l + r) / 2, spec_y: STFT of the side
    signal y = (l - r) / 2, both (..., 513, T) complex.
    Per bin: Re(Y conj(W)) / (|W|^2 + |Y|^2 + 1e-8) (= (|L|^2 - |R|^2) / (2 (|L|^2 + |R|^2))
    up to the epsilon, so in [-1/2, 1/2]); then the mel filterbank is applied and each band
    divided by its filterbank row sum (a weighted mean over the band's bins).
    Returns (..., T, F).
    """
    num = spec_y.real * spec_w.real + spec_y.imag * spec_w.imag  # Re(Y conj(W))
    den = spec_w.real.square() + spec_w.imag.square() + spec_y.real.square() + spec_y.imag.square() + IVY_EPS
    per_bin = num / den  # (..., 513, T)
    fb = mel_filterbank(per_bin.dtype, per_bin.device)  # (F, 513)
    banded = torch.matmul(per_bin.transpose(-2, -1), fb.T)  # (..., T, F)
    return banded / fb.sum(dim=1)
