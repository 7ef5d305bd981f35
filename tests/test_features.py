"""Features vs a plain per-clip librosa + nara_wpe reference (float64), and physics checks."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
from nara_wpe.wpe import wpe as nara_wpe

from textseld.constants import CLIP_SAMPLES, N_FEAT_FRAMES, N_MELS, SAMPLE_RATE
from textseld.data.audio import AudioError, load_audio
from textseld.features.extract import compute_features

T, F = N_FEAT_FRAMES, N_MELS


def synth_clip(rng: np.random.Generator, gain_l: float, gain_r: float, rt: float = 0.15) -> np.ndarray:
    """Noise bursts panned by channel gains, through a decaying-noise 'room' per channel. (2, N) float32."""
    n = CLIP_SAMPLES
    env = np.zeros(n)
    for start in rng.integers(0, n - 12000, size=4):
        env[start : start + rng.integers(3000, 12000)] = 1.0
    dry = rng.standard_normal(n) * env
    tail = int(rt * SAMPLE_RATE)
    out = []
    shared = rng.standard_normal(tail) * np.exp(-np.arange(tail) / (0.2 * tail)) * 0.3
    for gain in (gain_l, gain_r):
        h = shared + 0.05 * rng.standard_normal(tail) * np.exp(-np.arange(tail) / (0.2 * tail))
        h[0] = 1.0
        out.append(gain * np.convolve(dry, h)[:n])
    x = np.stack(out) + 1e-4 * rng.standard_normal((2, n))  # noise floor: no exactly silent bins
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def reference_features(x: np.ndarray) -> dict[str, np.ndarray]:
    """docs/METHOD.md section 2 computed clip by clip with librosa and nara_wpe in float64."""
    x = x.astype(np.float64)
    peak = np.abs(x).max()
    x = x / peak if peak > 0 else x
    kw = dict(n_fft=1024, hop_length=480, win_length=960, window="hann", center=True, pad_mode="constant")
    fb = librosa.filters.mel(sr=24000, n_fft=1024, n_mels=64, dtype=np.float64)

    def stft(sig):
        return librosa.stft(sig, **kw)

    def db(p):
        return 10 * np.log10(np.maximum(p, 1e-10))

    def melpow(spec):
        return (fb @ np.abs(spec) ** 2).T  # (T, F)

    sl, sr = stft(x[0]), stft(x[1])
    w, y = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
    sw, sy = stft(w), stft(y)
    lm_l, lm_r = db(melpow(sl)), db(melpow(sr))
    ivy_bin = np.real(sy * np.conj(sw)) / (np.abs(sw) ** 2 + np.abs(sy) ** 2 + 1e-8)
    ivy = (fb @ ivy_bin).T / fb.sum(axis=1)
    direct = nara_wpe(sw[:, None, :], taps=60, delay=5, iterations=5)[:, 0]
    resid = w - librosa.istft(
        direct, hop_length=480, win_length=960, n_fft=1024, window="hann", center=True, length=len(w)
    )
    return {
        "logmel_lr": np.stack([lm_l, lm_r]),
        "ild": lm_l - lm_r,
        "ivy": ivy,
        "direct": db(melpow(direct)),
        "reverb": db(melpow(stft(resid))),
        "src": db((melpow(sl) + melpow(sr)) / 2)[None],
    }


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(1234)
    centre = synth_clip(rng, 0.7, 0.7)
    centre[1] = centre[0]  # identical channels: exactly in front
    return np.stack([synth_clip(rng, 1.0, 0.3), synth_clip(rng, 0.25, 1.0), centre])


@pytest.fixture(scope="module")
def feats(clips):
    return compute_features(torch.from_numpy(clips), names=["a", "b", "c"])


def test_shapes_and_dtypes(feats):
    expect = {
        "logmel_lr": (3, 2, T, F),
        "ild": (3, T, F),
        "ivy": (3, T, F),
        "direct": (3, T, F),
        "reverb": (3, T, F),
        "src": (3, 1, T, F),
        "doa": (3, 4, T, F),
        "dist": (3, 2, T, F),
    }
    for key, shape in expect.items():
        assert tuple(feats[key].shape) == shape, key
        assert feats[key].dtype == torch.float32
        assert torch.isfinite(feats[key]).all(), key


# each clip's reference once (the per-clip float64 reference costs ~20 s of CPU a clip)
@pytest.mark.parametrize("b", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_matches_librosa_nara_reference(clips, feats, b):
    _check_against_reference(clips[b], {k: v[b] for k, v in feats.items()})


def _check_against_reference(clip, got):
    ref = reference_features(clip)
    for key in ("logmel_lr", "ild", "direct", "reverb", "src"):
        np.testing.assert_allclose(got[key].numpy(), ref[key], atol=1e-3, rtol=0, err_msg=key)  # dB
    np.testing.assert_allclose(got["ivy"].numpy(), ref["ivy"], atol=1e-5, rtol=0)
    # tokenizer inputs are stacks of the same features
    np.testing.assert_array_equal(got["doa"][:2].numpy(), got["logmel_lr"].numpy())
    np.testing.assert_array_equal(got["doa"][2].numpy(), got["ivy"].numpy())
    np.testing.assert_array_equal(got["doa"][3].numpy(), got["ild"].numpy())
    np.testing.assert_array_equal(got["dist"][0].numpy(), got["direct"].numpy())
    np.testing.assert_array_equal(got["dist"][1].numpy(), got["reverb"].numpy())
    # WPE removed energy: the direct part is quieter than the mid signal in most bins
    assert (got["direct"].numpy() < ref["src"][0] + 1.0).mean() > 0.9


def test_direction_signs(feats):
    # clip 0 is louder on the left, clip 1 on the right, clip 2 has identical channels
    for b, sign in ((0, 1.0), (1, -1.0)):
        active = feats["src"][b, 0] > -60.0  # cells with sound (not the -80 dB noise floor)
        assert active.float().mean() > 0.1
        ild, ivy = sign * feats["ild"][b][active], sign * feats["ivy"][b][active]
        assert ild.mean() > 6.0 and (ild > 0).float().mean() > 0.95  # gains differ by >= 10.5 dB
        assert ivy.mean() > 0.2 and (ivy > 0).float().mean() > 0.95
    # identical channels: no level or intensity difference, up to rounding (the two channels may go
    # through different BLAS kernel paths, e.g. 7e-15 dB seen on an AVX2-only CPU)
    assert feats["ild"][2].abs().max() < 1e-6  # dB
    assert feats["ivy"][2].abs().max() < 1e-6  # of a quantity in [-1, 1]


@pytest.fixture(scope="module")
def variants(clips):
    """Clip 0 with L and R swapped, and clip 0 at -40 dB, computed as another batch."""
    return compute_features(torch.from_numpy(np.stack([clips[0, ::-1], clips[0] * 0.01])))


def test_swapping_channels_flips_spatial_features(feats, variants):
    np.testing.assert_allclose(variants["ild"][0].numpy(), -feats["ild"][0].numpy(), atol=1e-4)
    np.testing.assert_allclose(variants["ivy"][0].numpy(), -feats["ivy"][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(variants["dist"][0].numpy(), feats["dist"][0].numpy(), atol=1e-4)
    np.testing.assert_allclose(variants["src"][0].numpy(), feats["src"][0].numpy(), atol=1e-4)


def test_peak_normalisation_removes_gain_and_batches_are_independent(feats, variants):
    # same clip, other gain, other batch composition -> same features
    for key in ("src", "doa", "dist"):
        np.testing.assert_allclose(variants[key][1].numpy(), feats[key][0].numpy(), atol=1e-3, err_msg=key)


def test_all_zero_audio_gives_finite_features():
    got = compute_features(torch.zeros(1, 2, CLIP_SAMPLES))
    for key, value in got.items():
        assert torch.isfinite(value).all(), key
    assert torch.all(got["src"] == -100.0)  # dB floor of 1e-10
    assert torch.all(got["ivy"] == 0) and torch.all(got["ild"] == 0)


def test_nan_audio_names_the_clip(clips):
    bad = clips[:2].copy()
    bad[1, 0, 100] = np.nan
    with pytest.raises(AudioError, match="clip_b"):
        compute_features(torch.from_numpy(bad), names=["clip_a", "clip_b"])
    bad[1, 0, 100] = np.inf
    with pytest.raises(AudioError, match="clip_b"):
        compute_features(torch.from_numpy(bad), names=["clip_a", "clip_b"])


def test_load_audio_validates(tmp_path, clips):
    import soundfile as sf

    good = tmp_path / "good.wav"
    sf.write(good, clips[0].T, SAMPLE_RATE, subtype="PCM_16")
    x = load_audio(good)
    assert x.shape == (2, CLIP_SAMPLES) and x.dtype == np.float32
    np.testing.assert_allclose(x, clips[0], atol=1 / 32768)
    short = tmp_path / "short.wav"
    sf.write(short, clips[0].T[:1000], SAMPLE_RATE)
    with pytest.raises(AudioError, match="short.wav.*120000 samples"):
        load_audio(short)
    mono = tmp_path / "mono.wav"
    sf.write(mono, clips[0][0], SAMPLE_RATE)
    with pytest.raises(AudioError, match="mono.wav.*2 channels"):
        load_audio(mono)
    rate = tmp_path / "rate.wav"
    sf.write(rate, clips[0].T, 48000)
    with pytest.raises(AudioError, match="rate.wav.*24000"):
        load_audio(rate)


@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax",
    [
        (24000, 1024, 64, 0.0, None),
        (16000, 512, 40, 50.0, 7000.0),
        (44100, 2048, 128, 0.0, None),
        (24000, 1024, 64, 300.0, 8000.0),
    ],
)
def test_slaney_mel_filterbank_equals_librosa(sr, n_fft, n_mels, fmin, fmax):
    from textseld.features.spectral import hz_to_mel, mel_to_hz, slaney_mel

    ours = slaney_mel(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float64)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    hz = np.array([0.0, 500.0, 999.9, 1000.0, 4000.0, 12000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12)
