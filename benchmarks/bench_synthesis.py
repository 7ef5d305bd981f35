"""Benchmark `textseld synth`: seconds per clip on one core at default settings.

Measures (1) the whole per-clip job (scene, dry sounds, labels, rendering,
16-bit WAV + CSV writing) through `synthesize_dataset(workers=1)`, (2) its
stages on the same scenes, and (3) as the baseline, the same scenes' room
rendering done with pyroomacoustics (CardioidFamily W and Y microphones, same
image-source order, fftconvolve), the approach measured in the feasibility
prototype. Target: at most 0.3 s per clip.

Run: .venv/bin/python benchmarks/bench_synthesis.py [--clips 40] [--baseline-clips 10]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy import signal  # noqa: E402

from textseld.constants import SAMPLE_RATE  # noqa: E402
from textseld.data.synthesis import synthesize_dataset  # noqa: E402
from textseld.data.synthesis.generator import clip_rng, render_scene, to_stereo_pcm  # noqa: E402
from textseld.data.synthesis.room import sabine_absorption  # noqa: E402
from textseld.data.synthesis.scene import TIMELINE, dry_signals, label_rows, sample_scene  # noqa: E402


def render_with_pyroomacoustics(scene, dry) -> np.ndarray:
    """Baseline: the scene's events rendered by pyroomacoustics -> (2, TIMELINE) [W, Y]."""
    import pyroomacoustics as pra
    from pyroomacoustics.directivities import CardioidFamily, DirectionVector

    room = scene.room
    yaw = math.degrees(room.yaw)
    out = np.zeros((2, TIMELINE))
    for ev, full in zip(scene.events, dry):
        pra.random.seed(0)
        ref = pra.ShoeBox(
            list(room.dims),
            fs=SAMPLE_RATE,
            max_order=room.max_order,
            materials=pra.Material(sabine_absorption(room.dims, room.rt60)),
        )
        ref.add_source(room.source_position(ev.distance, ev.azimuth, ev.elevation))
        dirs = [CardioidFamily(DirectionVector(yaw, 90), p=1.0), CardioidFamily(DirectionVector(yaw + 90, 90), p=0.0)]
        ref.add_microphone_array(np.array([room.mic, room.mic]).T, directivity=dirs)
        ref.compute_rir()
        for ch in range(2):
            wet = signal.fftconvolve(full[:TIMELINE], np.asarray(ref.rir[ch][0]))
            out[ch] += wet[:TIMELINE]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40, help="clips for the end-to-end timing")
    parser.add_argument("--baseline-clips", type=int, default=10, help="clips rendered with pyroomacoustics")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cmd = " ".join([os.path.relpath(sys.executable), *sys.argv])

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = synthesize_dataset(
            tmp, args.clips, 0, seed=args.seed, workers=1, progress=False, speech_backend="formant"
        )
        total = time.perf_counter() - t0
    per_clip = total / args.clips

    # Stage timings on the same scenes (no file writing).
    t_scene = t_dry = t_render = t_pra = 0.0
    orders = []
    for i in range(args.clips):
        rng = clip_rng(args.seed, 0, i)
        a = time.perf_counter()
        scene = sample_scene(rng)
        b = time.perf_counter()
        dry = dry_signals(scene, rng)
        label_rows(scene, dry)
        c = time.perf_counter()
        events, bg = render_scene(scene, dry, rng)
        to_stereo_pcm(events + bg)
        d = time.perf_counter()
        t_scene, t_dry, t_render = t_scene + b - a, t_dry + c - b, t_render + d - c
        orders.append(scene.room.max_order)
        if i < args.baseline_clips:
            e = time.perf_counter()
            render_with_pyroomacoustics(scene, dry)
            t_pra += time.perf_counter() - e
    n, nb = args.clips, max(min(args.baseline_clips, args.clips), 1)
    # Re-time our renderer on exactly the baseline subset for a like-for-like ratio.
    t_ours_sub = 0.0
    for i in range(nb):
        rng = clip_rng(args.seed, 0, i)
        scene = sample_scene(rng)
        dry = dry_signals(scene, rng)
        e = time.perf_counter()
        render_scene(scene, dry, rng)
        t_ours_sub += time.perf_counter() - e
    render_ours_subset = t_ours_sub / nb

    print(f"command: {cmd}")
    print(
        f"clips: {n} (workers=1, default settings, image-source order median {int(np.median(orders))}, "
        f"max {max(orders)}); silent frames {summary['splits']['dev-train-synth']['silent_frame_fraction']:.1%}"
    )
    print(
        f"end-to-end: {total:.2f} s total, {per_clip:.3f} s/clip (target <= 0.300) -> "
        f"{'OK' if per_clip <= 0.3 else 'TOO SLOW'}"
    )
    print(
        f"stages per clip: scene {t_scene / n * 1e3:.1f} ms, dry sounds + labels {t_dry / n * 1e3:.1f} ms, "
        f"rendering + stereo {t_render / n * 1e3:.1f} ms"
    )
    print(
        f"room rendering on {nb} clips: numpy image sources {render_ours_subset * 1e3:.1f} ms/clip, "
        f"pyroomacoustics baseline {t_pra / nb * 1e3:.1f} ms/clip -> speed-up x{t_pra / nb / render_ours_subset:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
