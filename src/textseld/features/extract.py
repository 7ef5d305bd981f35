"""Per-clip features of a batch of stereo clips (docs/METHOD.md section 2), on a torch device.

Shapes: B clips, N = 120 000 samples, T = 251 frames, F = 64 mel bands.
Internally float64 (the STFTs are cheap next to WPE, and float64 keeps WPE and the dB
values within ~1e-6 dB of a float64 librosa + nara_wpe reference); outputs float32.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from textseld.constants import (
    CLIP_SAMPLES,
    HOP,
    N_CHANNELS,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    WIN,
    WPE_DELAY,
    WPE_ITERATIONS,
    WPE_TAPS,
)
from textseld.data.audio import AudioError
from textseld.features import spatial, spectral, wpe

FEATURE_NAMES = ("logmel_lr", "ild", "ivy", "direct", "reverb", "src", "doa", "dist")

# Written into every packed file (attr `feature_config`): what produced the numbers.
FEATURE_CONFIG: dict[str, Any] = {
    "sample_rate": SAMPLE_RATE,
    "clip_samples": CLIP_SAMPLES,
    "stft": {
        "n_fft": N_FFT,
        "hop": HOP,
        "win": WIN,
        "window": "hann (periodic), centred in n_fft",
        "center": True,
        "pad_mode": "constant (zeros)",
    },
    "mel": {
        "n_mels": N_MELS,
        "fmin": 0.0,
        "fmax": SAMPLE_RATE / 2,
        "scale": "slaney",
        "norm": "slaney",
        "source": "librosa.filters.mel defaults",
    },
    "db": {"floor": spectral.DB_FLOOR, "top_db": None},
    "peak_normalise": "both channels / max |sample| over both channels",
    "ivy_eps": spatial.IVY_EPS,
    "wpe": {
        "taps": WPE_TAPS,
        "delay": WPE_DELAY,
        "iterations": WPE_ITERATIONS,
        "psd_context": 0,
        "statistics_mode": "full",
        "input": "STFT of w = (l + r) / 2",
    },
    "channels": {
        "src": ["mean L/R mel power (dB)"],
        "doa": ["logmel L", "logmel R", "ivy", "ild"],
        "dist": ["direct", "reverb"],
    },
}


def wpe_settings(params: Mapping[str, int] | None = None) -> dict[str, int]:
    """WPE settings (docs/METHOD.md section 2: constants.WPE_TAPS, WPE_DELAY, WPE_ITERATIONS) with `params` applied;
    an unknown key or a bad value is an error naming it."""
    settings = {"taps": WPE_TAPS, "delay": WPE_DELAY, "iterations": WPE_ITERATIONS}
    for key, value in dict(params or {}).items():
        if key not in settings:
            raise ValueError(f"WPE settings: unknown key {key!r}; expected some of {sorted(settings)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "delay" else 1):
            raise ValueError(f"WPE settings: {key} must be an integer >= {0 if key == 'delay' else 1}, got {value!r}")
        settings[key] = value
    return settings


def feature_config_json(wpe_params: Mapping[str, int] | None = None) -> str:
    """The feature configuration (with these WPE settings) as canonical JSON (sorted keys)."""
    config = {**FEATURE_CONFIG, "wpe": {**FEATURE_CONFIG["wpe"], **wpe_settings(wpe_params)}}
    return json.dumps(config, sort_keys=True)


def check_finite(audio: torch.Tensor, names: Sequence[str] | None = None) -> None:
    """Raise AudioError naming every clip whose audio (B, 2, N) holds NaN or inf."""
    bad = (~torch.isfinite(audio)).flatten(1).any(dim=1)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten().tolist()
        labels = [names[i] if names is not None else f"clip {i} of the batch" for i in idx]
        raise AudioError(f"audio contains NaN or inf: {', '.join(labels)}")


def peak_normalise(audio: torch.Tensor) -> torch.Tensor:
    """Divide both channels of each clip by its max |sample| over both (keeps the level
    difference); an all-zero clip stays zero. (B, 2, N) -> (B, 2, N)."""
    peak = audio.abs().amax(dim=(1, 2), keepdim=True)
    return audio / torch.where(peak > 0, peak, torch.ones_like(peak))


@torch.no_grad()
def compute_features(
    audio: torch.Tensor | np.ndarray,
    names: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    wpe_params: Mapping[str, int] | None = None,
) -> dict[str, torch.Tensor]:
    """All features of a batch of clips.

    audio: (B, 2, N) [L, R] samples (any float dtype); names label errors;
    wpe_params: taps / delay / iterations (default the method's, docs/METHOD.md section 2; `wpe_settings`).
    Returns float32 CPU tensors: logmel_lr (B, 2, T, F), ild (B, T, F), ivy (B, T, F),
    direct (B, T, F), reverb (B, T, F) and the tokenizer inputs src (B, 1, T, F),
    doa (B, 4, T, F) = [logmel L, logmel R, ivy, ild], dist (B, 2, T, F) = [direct, reverb].
    """
    x = torch.as_tensor(audio)
    if x.ndim != 3 or x.shape[1] != N_CHANNELS:
        raise ValueError(f"audio must have shape (B, {N_CHANNELS}, N), got {tuple(x.shape)}")
    check_finite(x, names)
    # copy first, then widen on the device: half the bytes cross the bus (0.11 vs 0.38 ms/clip on an H200)
    x = peak_normalise(x.to(device=device).to(torch.float64))
    n_samples = x.shape[-1]

    spec_lr = spectral.stft(x)  # (B, 2, 513, T)
    spec_w = 0.5 * (spec_lr[:, 0] + spec_lr[:, 1])  # STFT is linear: = STFT((l + r) / 2)
    spec_y = 0.5 * (spec_lr[:, 0] - spec_lr[:, 1])
    mel_lr = spectral.mel_power(spec_lr)  # (B, 2, T, F)
    logmel_lr = spectral.power_to_db(mel_lr)
    ild = spatial.ild(logmel_lr)
    ivy = spatial.ivy(spec_w, spec_y)
    src = spectral.power_to_db(mel_lr.mean(dim=1, keepdim=True))  # deterministic (no random channel)

    settings = wpe_settings(wpe_params)
    direct_spec = wpe.wpe(
        spec_w, taps=settings["taps"], delay=settings["delay"], iterations=settings["iterations"]
    )  # (B, 513, T)
    w = 0.5 * (x[:, 0] + x[:, 1])
    reverb_spec = spectral.stft(w - spectral.istft(direct_spec, n_samples))
    direct = spectral.power_to_db(spectral.mel_power(direct_spec))
    reverb = spectral.power_to_db(spectral.mel_power(reverb_spec))

    out = {
        "logmel_lr": logmel_lr,
        "ild": ild,
        "ivy": ivy,
        "direct": direct,
        "reverb": reverb,
        "src": src,
        "doa": torch.stack([logmel_lr[:, 0], logmel_lr[:, 1], ivy, ild], dim=1),
        "dist": torch.stack([direct, reverb], dim=1),
    }
    return {k: v.to(device="cpu", dtype=torch.float32).contiguous() for k, v in out.items()}
