"""Procedural dry sounds for the 13 DCASE2025 classes.

`class_sound(class_id, duration, rng, sr)` returns a mono float64 signal of
`int(duration * sr)` samples whose RMS over its active 100 ms frames (within
30 dB of the loudest frame) is 1, so that source levels are set only by the
scene (level jitter, distance). Each class has its own temporal structure and
spectrum (ring bursts, impulse rhythms, harmonic voices, noise bands), so that
a model can tell them apart; every call draws a new instance (pitch, rhythm,
timbre) from `rng`.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from textseld.data.synthesis.dsp import (
    bandpass_noise,
    decay_env,
    fade,
    frame_energy,
    harmonic_tone,
    place,
    resonator_sos,
)
from textseld.data.synthesis.voice import laughter, speech

# Event duration range in seconds per class id (CLASS_NAMES order).
DURATION_RANGE = (
    (1.0, 4.0),
    (1.0, 4.0),
    (0.8, 3.0),
    (1.5, 4.0),
    (1.0, 3.0),
    (2.0, 4.5),
    (1.5, 4.0),
    (0.6, 1.8),
    (2.0, 4.5),
    (1.5, 4.0),
    (1.5, 4.5),
    (1.0, 3.0),
    (0.5, 1.5),
)
ACTIVE_DB = -30.0  # a 100 ms frame is active when within this many dB of the loudest


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def clapping(rng, duration, sr):
    """Claps at 3-7 per second: 10 ms-decay noise bursts through a hand-cavity resonance."""
    n = int(duration * sr)
    out = np.zeros(n)
    rate, fc = rng.uniform(3.0, 7.0), rng.uniform(800.0, 2200.0)
    sos = np.vstack([resonator_sos([fc], [900.0], sr), signal.butter(2, 300.0, "highpass", fs=sr, output="sos")])
    nb = int(0.08 * sr)
    t = rng.uniform(0.0, 0.05)
    while t < duration:
        burst = signal.sosfilt(sos, rng.standard_normal(nb) * decay_env(nb, rng.uniform(0.006, 0.014), sr))
        place(out, rng.uniform(0.6, 1.0) * burst, int(t * sr))
        t += (1.0 / rate) * rng.uniform(0.88, 1.12)
    return out


def telephone(rng, duration, sr):
    """Ringing: a dual tone (optionally warbled) gated by a ring cadence."""
    n = int(duration * sr)
    pairs = ((440.0, 480.0), (400.0, 450.0), (350.0, 440.0), (1000.0, 1250.0), (800.0, 950.0))
    f1, f2 = pairs[rng.integers(len(pairs))]
    t = np.arange(n) / sr
    tone = np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f2 * t + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.5:  # electronic warble
        tone *= 0.6 + 0.4 * np.sign(np.sin(2 * np.pi * rng.uniform(15.0, 25.0) * t))
    cadence = ((0.4, 0.2, 0.4, 1.2), (1.0, 1.0), (0.8, 0.4))[rng.integers(3)]
    gate = np.zeros(n)
    pos, k = 0.0, 0
    while pos < duration:
        length = cadence[k % len(cadence)]
        if k % 2 == 0:
            a, b = int(pos * sr), min(int((pos + length) * sr), n)
            gate[a:b] = fade(np.ones(max(b - a, 0)), sr, 0.005, 0.005)
        pos += length
        k += 1
    return tone * gate


def domestic(rng, duration, sr):
    """An appliance: motor hum (mains-like harmonics plus rattle) or vacuum-like
    high-band noise with a whine."""
    n = int(duration * sr)
    t = np.arange(n) / sr
    if rng.random() < 0.5:
        f0 = rng.uniform(50.0, 150.0)
        amps = 1.0 / np.arange(1, 16) ** rng.uniform(0.5, 1.2)
        x = harmonic_tone(f0 * (1 + 0.003 * np.sin(2 * np.pi * 0.5 * t)), n, sr, amps)
        x += 0.3 * bandpass_noise(rng, n, 200.0, 2000.0, sr)
    else:
        x = bandpass_noise(rng, n, rng.uniform(800.0, 1500.0), rng.uniform(5000.0, 9000.0), sr)
        whine = rng.uniform(600.0, 1500.0) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
        x += 0.5 * np.sin(2 * np.pi * np.cumsum(whine) / sr) * np.std(x)
    return fade(x, sr, rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.4))


def footsteps(rng, duration, sr):
    """Walking: heel thumps (low, 30 ms decay) followed by a toe scuff, at 1.6-2.4 steps/s."""
    n = int(duration * sr)
    out = np.zeros(n)
    rate = rng.uniform(1.6, 2.4)
    body = resonator_sos([rng.uniform(80.0, 250.0), rng.uniform(600.0, 1400.0)], [80.0, 400.0], sr)
    nb = int(0.15 * sr)
    t, k = rng.uniform(0.0, 0.1), 0
    while t < duration:
        gain = (1.0 if k % 2 else 0.8) * rng.uniform(0.8, 1.0)
        heel = signal.sosfilt(body, rng.standard_normal(nb) * decay_env(nb, rng.uniform(0.02, 0.04), sr))
        place(out, gain * heel / (np.max(np.abs(heel)) + 1e-9), int(t * sr))
        ns = int(0.05 * sr)
        scuff = bandpass_noise(rng, ns, 1000.0, 4000.0, sr) * decay_env(ns, 0.012, sr)
        place(out, 0.3 * gain * scuff / (np.max(np.abs(scuff)) + 1e-9), int((t + rng.uniform(0.04, 0.08)) * sr))
        t += (1.0 / rate) * rng.uniform(0.93, 1.07)
        k += 1
    return out


def door(rng, duration, sr):
    """A door: hinge creak (stick-slip pulses through wood resonances), then the
    slam (damped low thump, noise burst, latch click)."""
    n = int(duration * sr)
    out = np.zeros(n)
    n_creak = int(min(rng.uniform(0.3, 0.9), 0.6 * duration) * sr) if rng.random() < 0.75 else 0
    if n_creak > 0:
        f0 = np.linspace(rng.uniform(15.0, 40.0), rng.uniform(25.0, 70.0), n_creak)
        f0 *= 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(2.0, 6.0) * np.arange(n_creak) / sr)
        phase = np.cumsum(f0) / sr
        pulses = np.zeros(n_creak)
        pulses[1:][np.diff(np.floor(phase)) > 0] = 1.0
        res = resonator_sos(rng.uniform([400.0, 900.0, 1800.0], [700.0, 1500.0, 2600.0]), [60.0, 90.0, 150.0], sr)
        creak = signal.sosfilt(res, pulses) * np.hanning(n_creak)
        place(out, 0.6 * creak / (np.max(np.abs(creak)) + 1e-9), 0)
    t0 = n_creak + int(rng.uniform(0.0, 0.1) * sr)
    ns = min(int(0.5 * sr), max(n - t0, 0))
    if ns > 0:
        tt = np.arange(ns) / sr
        thump = np.sin(2 * np.pi * rng.uniform(60.0, 120.0) * tt) * np.exp(-tt / rng.uniform(0.05, 0.12))
        thump += 0.5 * bandpass_noise(rng, ns, 100.0, 1500.0, sr) * np.exp(-tt / 0.03)
        click = bandpass_noise(rng, ns, 2000.0, 6000.0, sr) * np.exp(-tt / 0.004)
        place(out, thump / (np.max(np.abs(thump)) + 1e-9) + 0.3 * click / (np.max(np.abs(click)) + 1e-9), t0)
    return out


def music(rng, duration, sr):
    """Chords (triads plus bass) changing every 0.4-1 s, with hi-hat ticks on the beat."""
    n = int(duration * sr)
    out = np.zeros(n)
    beat = rng.uniform(0.4, 1.0)
    key = int(rng.integers(48, 61))
    degrees = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (9, 12, 16), (2, 5, 9))
    amps = 1.0 / np.arange(1, 7) ** rng.uniform(1.0, 2.0)
    nc = int(beat * sr)
    env = np.minimum(1.0, np.arange(nc) / (0.02 * sr)) * np.exp(-np.arange(nc) / (sr * beat * 1.5))
    for start in range(0, n, nc):
        chord = degrees[rng.integers(len(degrees))]
        seg = sum(harmonic_tone(f, nc, sr, amps, rng.uniform(0, 6.3)) for f in _midi_hz(np.array(chord) + key))
        seg = seg + 0.8 * harmonic_tone(_midi_hz(key + chord[0] - 12), nc, sr, amps[:3])
        place(out, fade(seg * env, sr, 0.005, 0.02), start)
        nh = int(0.05 * sr)
        for half in (0, nc // 2):
            tick = bandpass_noise(rng, nh, 6000.0, 11000.0, sr) * decay_env(nh, 0.015, sr)
            place(out, 0.4 * tick, start + half)
    return out


def instrument(rng, duration, sr):
    """One melodic voice: pentatonic notes with a harmonic timbre, vibrato and a
    plucked or bowed envelope."""
    n = int(duration * sr)
    out = np.zeros(n)
    base = int(rng.integers(55, 76))
    scale = np.array([0, 2, 4, 7, 9, 12, 14])
    tilt = rng.uniform(0.7, 2.0)
    amps = 1.0 / np.arange(1, 11) ** tilt
    if rng.random() < 0.4:  # clarinet-like odd harmonics
        amps[1::2] *= 0.1
    plucked = rng.random() < 0.5
    pos = 0
    while pos < n:
        nn = int(rng.uniform(0.2, 0.6) * sr)
        t = np.arange(nn) / sr
        f = _midi_hz(base + scale[rng.integers(len(scale))]) * (1 + 0.005 * np.sin(2 * np.pi * 5.5 * t))
        if plucked:
            env = decay_env(nn, rng.uniform(0.1, 0.3), sr)
        else:
            env = np.minimum(1.0, t / 0.05) * np.minimum(1.0, (t[-1] - t + 1e-3) / 0.05)
        place(out, harmonic_tone(f, nn, sr, amps) * env, pos)
        pos += nn
    return out


def water_tap(rng, duration, sr):
    """Running water: band-limited noise with a fluttering level plus bubble chirps."""
    n = int(duration * sr)
    flutter = signal.sosfilt(signal.butter(2, rng.uniform(5.0, 20.0), fs=sr, output="sos"), rng.standard_normal(n))
    flutter = 1.0 + 0.5 * flutter / (np.std(flutter) + 1e-9)
    x = bandpass_noise(rng, n, rng.uniform(400.0, 900.0), rng.uniform(4000.0, 8000.0), sr) * np.clip(flutter, 0.2, None)
    x /= np.std(x) + 1e-9
    nb = int(0.03 * sr)
    tb = np.arange(nb) / sr
    for start in rng.uniform(0.0, duration, int(rng.uniform(20.0, 60.0) * duration)):
        f = rng.uniform(1000.0, 3500.0) * (1 + rng.uniform(0.5, 2.0) * tb / tb[-1] * 0.2)
        chirp = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-tb / rng.uniform(0.004, 0.012))
        place(x, rng.uniform(0.5, 1.5) * chirp, int(start * sr))
    return fade(x, sr, 0.1, 0.2)


def bell(rng, duration, sr):
    """Struck bell: inharmonic partials, each decaying exponentially, 1-3 strikes."""
    n = int(duration * sr)
    out = np.zeros(n)
    base = rng.uniform(400.0, 1500.0)
    ratios = np.array([0.5, 1.0, 1.19, 1.5, 2.0, 2.51, 2.66, 3.01, 4.16]) * rng.uniform(0.98, 1.02, 9)
    amps = rng.uniform(0.3, 1.0, ratios.size)
    tau = rng.uniform(0.3, 1.2) / np.sqrt(ratios)
    strikes = int(rng.integers(1, 4))
    gap = rng.uniform(0.4, 1.0)
    for s in range(strikes):
        start = int(s * gap * sr)
        if start >= n:
            break
        m = n - start
        t = np.arange(m) / sr
        partials = amps[:, None] * np.sin(2 * np.pi * (base * ratios)[:, None] * t) * np.exp(-t / tau[:, None])
        place(out, partials.sum(axis=0) * np.minimum(1.0, t / 0.001), start)
    return out


def knock(rng, duration, sr):
    """Knocking: groups of 2-5 knuckle hits (wood body resonance plus click)."""
    n = int(duration * sr)
    out = np.zeros(n)
    f_body = rng.uniform(150.0, 350.0)
    nk = int(0.12 * sr)
    t = np.arange(nk) / sr
    t0 = rng.uniform(0.0, 0.05)
    while t0 < duration:
        for _ in range(int(rng.integers(2, 6))):
            hit = np.sin(2 * np.pi * f_body * rng.uniform(0.97, 1.03) * t) * np.exp(-t / rng.uniform(0.02, 0.04))
            hit += 0.8 * np.sin(2 * np.pi * 2.3 * f_body * t) * np.exp(-t / 0.015)
            hit += 0.4 * bandpass_noise(rng, nk, 2000.0, 5000.0, sr) * np.exp(-t / 0.003)
            place(out, rng.uniform(0.7, 1.0) * hit, int(t0 * sr))
            t0 += rng.uniform(0.12, 0.25)
        t0 += rng.uniform(0.4, 1.0)
    return out


_GENERATORS = {
    2: clapping,
    3: telephone,
    4: laughter,
    5: domestic,
    6: footsteps,
    7: door,
    8: music,
    9: instrument,
    10: water_tap,
    11: bell,
    12: knock,
}


def active_frames(x: np.ndarray, hop: int, threshold_db: float = ACTIVE_DB) -> np.ndarray:
    """Boolean per frame of `hop` samples: power within threshold_db of the loudest frame."""
    e = frame_energy(x, hop)
    peak = e.max() if e.size else 0.0
    if peak <= 0.0:
        return np.zeros(e.size, dtype=bool)
    return e > peak * 10.0 ** (threshold_db / 10.0)


def class_sound(
    class_id: int,
    duration: float,
    rng: np.random.Generator,
    sr: int,
    speech_backend: str = "formant",
    espeak_exe: str | None = None,
) -> np.ndarray:
    """One dry instance of class `class_id` (0..12): (int(duration*sr),) float64,
    RMS 1 over its active 100 ms frames."""
    if class_id in (0, 1):
        x = speech(rng, duration, sr, female=class_id == 0, backend=speech_backend, exe=espeak_exe)
    elif class_id in _GENERATORS:
        x = _GENERATORS[class_id](rng, duration, sr)
    else:
        raise ValueError(f"class id must be in 0..12, got {class_id}")
    x = np.asarray(x, dtype=np.float64)[: int(duration * sr)]
    hop = sr // 10
    act = active_frames(x, hop)
    if not act.any():
        raise RuntimeError(f"generator for class {class_id} produced silence")
    e = frame_energy(x, hop)
    return x / np.sqrt(np.mean(e[act]))
