"""Render synthetic clips and write a dataset in the DCASE2025 stereo layout.

Per clip: sample a scene, synthesise each event's dry sound, convolve it with
the room's FOA impulse responses [W, Y], add a diffuse pink-noise background
(10-30 dB SNR), form stereo L = W + Y, R = W - Y, peak-normalise to -1 dBFS
and write 16-bit PCM at 24 kHz (120 000 samples) with its label CSV.

Every clip depends only on (seed, split, index) through its own
`numpy.random.SeedSequence`, so the output bytes do not depend on the number of
worker processes (nor on the order in which clips finish).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal
from tqdm import tqdm

from textseld.atomic import atomic_path, write_text_atomic
from textseld.constants import (
    AUDIO_ROOT,
    CLIP_SAMPLES,
    META_ROOT,
    N_CLASSES,
    N_LABEL_FRAMES,
    SAMPLE_RATE,
    SYNTH_TEST_SPLIT,
    SYNTH_TRAIN_SPLIT,
)
from textseld.data.labels import write_labels
from textseld.data.synthesis.dsp import pink_noise
from textseld.data.synthesis.room import render_rirs
from textseld.data.synthesis.scene import (
    PRE,
    TIMELINE,
    Scene,
    SceneConfig,
    dry_signals,
    label_rows,
    sample_scene,
)
from textseld.data.synthesis.voice import resolve_speech_backend

log = logging.getLogger(__name__)

PEAK_DBFS = -1.0
SPLITS = ((SYNTH_TRAIN_SPLIT, 3, 0), (SYNTH_TEST_SPLIT, 4, 1))  # (folder, fold, seed code)
SUMMARY_FILE = "synth_summary.json"
_NAME_RE = re.compile(r"^fold[34]_room\d+_mix\d+_deg000_start0000\.(wav|csv)$")


def clip_name(fold: int, index: int) -> str:
    """File stem of clip `index` (0-based): one room and one mix id per clip, the room being the
    clip's number; the DCASE2025 name has three digits of mix, so from the 1000th clip on the mix
    id cycles through 1..999 (the room keeps each clip a recording of its own)."""
    return f"fold{fold}_room{index + 1}_mix{index % 999 + 1:03d}_deg000_start0000"


def clip_rng(seed: int, split_code: int, index: int) -> np.random.Generator:
    """The clip's own generator, a pure function of (seed, split, index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(split_code), int(index)]))


def render_scene(
    scene: Scene, dry: list[np.ndarray], rng: np.random.Generator, order: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Spatialise dry event signals (see scene.dry_signals) in the scene's room.

    Returns (W, Y) of the events alone (2, CLIP_SAMPLES) and the diffuse
    background (2, CLIP_SAMPLES) scaled to the scene's SNR against the events'
    W power. order: image-source order override (tests render at low order)."""
    wy = np.zeros((2, TIMELINE))
    for ev, full in zip(scene.events, dry):
        x = full[:TIMELINE]
        nz = np.flatnonzero(x)
        if nz.size == 0:
            continue
        a, b = int(nz[0]), int(nz[-1]) + 1
        rirs = render_rirs(
            scene.room, scene.room.source_position(ev.distance, ev.azimuth, ev.elevation), SAMPLE_RATE, order
        )
        wet = signal.oaconvolve(x[None, a:b], rirs, axes=1)
        end = min(TIMELINE, a + wet.shape[1])
        wy[:, a:end] += wet[:, : end - a]
    events = wy[:, PRE:]
    # Isotropic diffuse field in SN3D: Y is uncorrelated with W at 1/3 of its power.
    bg = np.stack([pink_noise(rng, CLIP_SAMPLES), pink_noise(rng, CLIP_SAMPLES) / np.sqrt(3.0)])
    p_events = float(np.mean(events[0] ** 2))
    bg *= np.sqrt(max(p_events, 1e-12) / 10.0 ** (scene.snr_db / 10.0))
    return events, bg


def to_stereo_pcm(wy: np.ndarray) -> np.ndarray:
    """(2, n) [W, Y] -> (n, 2) int16 [L, R] with L = W + Y, R = W - Y, peak at -1 dBFS."""
    lr = np.stack([wy[0] + wy[1], wy[0] - wy[1]])
    peak = float(np.max(np.abs(lr)))
    if peak > 0:
        lr *= 10.0 ** (PEAK_DBFS / 20.0) / peak
    return np.clip(np.rint(lr.T * 32767.0), -32768, 32767).astype("<i2")


def write_wav(path: Path, pcm: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write (n, channels) int16 as a PCM WAV atomically (stdlib writer: no
    metadata chunks, identical bytes for identical samples). A killed earlier writer's
    temporary of the same clip is removed."""
    with atomic_path(path, suffix=".wav", remove_stale=True) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(pcm.shape[1])
            w.setsampwidth(2)
            w.setframerate(sr)
            w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())


@dataclass(frozen=True)
class ClipTask:
    out: str
    split: str
    fold: int
    split_code: int
    index: int
    seed: int
    speech_backend: str
    espeak_exe: str | None
    scene: SceneConfig = SceneConfig()


def make_clip(task: ClipTask) -> dict:
    """Synthesise and write one clip (WAV + CSV); returns its statistics."""
    rng = clip_rng(task.seed, task.split_code, task.index)
    scene = sample_scene(rng, cfg=task.scene)
    dry = dry_signals(scene, rng, task.speech_backend, task.espeak_exe)
    rows = label_rows(scene, dry)
    events, bg = render_scene(scene, dry, rng)
    pcm = to_stereo_pcm(events + bg)
    stem = clip_name(task.fold, task.index)
    root = Path(task.out)
    write_wav(root / AUDIO_ROOT / task.split / f"{stem}.wav", pcm)
    write_labels(root / META_ROOT / task.split / f"{stem}.csv", rows)
    frames = rows[:, 0].astype(np.int64)
    poly = np.bincount(frames, minlength=N_LABEL_FRAMES)
    return {
        "split": task.split,
        "name": stem,
        "events": len(scene.events),
        "class_counts": np.bincount([e.class_id for e in scene.events], minlength=N_CLASSES).tolist(),
        "silent_frames": int(np.sum(poly == 0)),
        "max_polyphony": int(poly.max(initial=0)),
        "rt60": scene.room.rt60,
        "max_order": scene.room.max_order,
    }


def _remove_stale(root: Path, split: str, keep: set[str]) -> int:
    """Delete earlier synthetic clips of this split that the current run does not write."""
    removed = 0
    for folder in (root / AUDIO_ROOT / split, root / META_ROOT / split):
        if not folder.is_dir():
            continue
        for f in folder.iterdir():
            if _NAME_RE.match(f.name) and f.stem not in keep:
                f.unlink()
                removed += 1
    return removed


def synthesize_dataset(
    out,
    train_clips: int,
    test_clips: int,
    seed: int,
    workers: int = 1,
    progress: bool = True,
    speech_backend: str = "auto",
    scene: SceneConfig | dict | None = None,
) -> dict:
    """Write `train_clips` clips to dev-train-synth (fold3) and `test_clips` to
    dev-test-synth (fold4) under `out` (stereo_dev/ and metadata_dev/), plus
    `synth_summary.json`. workers: processes (0 = all cores). Earlier synthetic
    clips of these splits that this run does not produce are removed. scene: how
    hard the scenes are (SceneConfig or its dict; None = the defaults).
    Returns the summary dict (counts, class histogram, silent-frame fraction,
    maximum polyphony, timing, speech backend)."""
    for key, value in (("train_clips", train_clips), ("test_clips", test_clips), ("seed", seed), ("workers", workers)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    scene_cfg = scene if isinstance(scene, SceneConfig) else SceneConfig.from_dict(scene)
    backend, exe = resolve_speech_backend(speech_backend)
    n_workers = (os.cpu_count() or 1) if workers == 0 else int(workers)
    root = Path(out)
    counts = {SYNTH_TRAIN_SPLIT: int(train_clips), SYNTH_TEST_SPLIT: int(test_clips)}
    tasks = [
        ClipTask(str(root), split, fold, code, i, int(seed), backend, exe, scene_cfg)
        for split, fold, code in SPLITS
        for i in range(counts[split])
    ]
    for split, fold, _ in SPLITS:
        (root / AUDIO_ROOT / split).mkdir(parents=True, exist_ok=True)
        (root / META_ROOT / split).mkdir(parents=True, exist_ok=True)
        _remove_stale(root, split, {clip_name(fold, i) for i in range(counts[split])})
    t0 = time.perf_counter()
    bar = tqdm(total=len(tasks), desc="synth", unit="clip", disable=not progress)
    stats: list[dict] = []
    if n_workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            stats.append(make_clip(task))
            bar.update()
    else:
        with multiprocessing.get_context().Pool(min(n_workers, len(tasks))) as pool:
            for st in pool.imap_unordered(make_clip, tasks, chunksize=2):
                stats.append(st)
                bar.update()
    bar.close()
    seconds = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "root": str(root),
        "seed": int(seed),
        "speech_backend": backend,
        "workers": n_workers,
        "seconds": round(seconds, 3),
        "seconds_per_clip": round(seconds / max(len(tasks), 1), 4),
        "scene": scene_cfg.to_dict(),
        "splits": {},
    }
    for split, _, _ in SPLITS:
        part = [s for s in stats if s["split"] == split]
        summary["splits"][split] = {
            "clips": len(part),
            "events": int(sum(s["events"] for s in part)),
            "class_counts": np.sum([s["class_counts"] for s in part], axis=0).astype(int).tolist()
            if part
            else [0] * N_CLASSES,
            "silent_frame_fraction": round(
                sum(s["silent_frames"] for s in part) / max(len(part) * N_LABEL_FRAMES, 1), 4
            ),
            "max_polyphony": max((s["max_polyphony"] for s in part), default=0),
            "mean_rt60": round(float(np.mean([s["rt60"] for s in part])), 3) if part else None,
        }
    write_text_atomic(root / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    log.info(
        "synthesised %d clips in %.1f s (%.3f s/clip) under %s", len(tasks), seconds, summary["seconds_per_clip"], root
    )
    return summary
