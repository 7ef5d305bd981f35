"""Tests of the synthetic dataset generator: physics, labels, files, determinism."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from textseld.cli import main as cli_main
from textseld.constants import CLIP_SAMPLES, N_CLASSES, N_LABEL_FRAMES, SAMPLE_RATE
from textseld.data.labels import read_labels
from textseld.data.synthesis import synthesize_dataset
from textseld.data.synthesis.dsp import frame_energy
from textseld.data.synthesis.generator import clip_name, clip_rng, render_scene, to_stereo_pcm
from textseld.data.synthesis.room import Room, render_rirs, sabine_absorption, sabine_order
from textseld.data.synthesis.scene import (
    FRAME,
    PRE_FRAMES,
    Event,
    Scene,
    dry_signals,
    fold_azimuth,
    label_rows,
    sample_scene,
)
from textseld.data.synthesis.sounds import class_sound
from textseld.data.synthesis.voice import resolve_speech_backend

SR = SAMPLE_RATE
BIG_ROOM = dict(dims=(10.0, 8.0, 3.0), mic=(5.0, 4.0, 1.5))


def _room(rt60=0.3, order=10, yaw=0.7):
    return Room(BIG_ROOM["dims"], rt60, BIG_ROOM["mic"], yaw, order)


def _ild_db(lr: np.ndarray) -> float:
    """Level difference L vs R in dB of a (n, 2) or (2, n) signal."""
    lr = np.asarray(lr, dtype=np.float64)
    if lr.shape[0] != 2:
        lr = lr.T
    return 10 * math.log10(np.sum(lr[0] ** 2) / np.sum(lr[1] ** 2))


def _single_source_pcm(azimuth: float, distance: float = 2.0) -> np.ndarray:
    """Full rendering path (scene -> W/Y -> stereo int16) of one pink-ish noise source."""
    room = _room()
    ev = Event(2, 0, 0.5, 3.0, distance, azimuth, 0.0, 0.0)
    scene = Scene((ev,), room, snr_db=60.0)
    rng = np.random.default_rng(0)
    dry = dry_signals(scene, rng)
    events, bg = render_scene(scene, dry, rng)
    return to_stereo_pcm(events + bg)


def test_level_difference_flips_sign_and_grows_with_azimuth():
    ild = {az: _ild_db(_single_source_pcm(az)) for az in (-90, -60, -30, 0, 30, 60, 90, 150)}
    assert abs(ild[0]) < 0.5
    for az in (30, 60, 90):
        assert ild[az] > 1.0, ild  # positive azimuth = left = louder in L
        assert ild[-az] < -1.0, ild
    assert ild[30] < ild[60] < ild[90]
    assert ild[-30] > ild[-60] > ild[-90]
    # Front/back ambiguity, as in the real data: 150 deg sounds like 30 deg.
    assert abs(ild[150] - ild[30]) < 1.0


def test_direct_to_reverberant_ratio_and_level_fall_with_distance():
    room = _room(rt60=0.4, order=25)
    drr, direct = [], []
    for d in (1.0, 2.0, 3.0, 4.0):
        h = render_rirs(room, room.source_position(d, 40.0, 0.0), SR)[0]
        i = int(round(d / 343.0 * SR))
        w = int(0.002 * SR)
        e_direct = np.sum(h[i - w : i + w] ** 2)
        drr.append(10 * math.log10(e_direct / (np.sum(h**2) - e_direct)))
        direct.append(h[i])
    assert all(a > b for a, b in zip(drr, drr[1:])), drr
    # Unnormalised responses: the direct path keeps its 1/r amplitude.
    np.testing.assert_allclose(direct, [1.0, 0.5, 1 / 3, 0.25], rtol=0.05)


def test_renderer_agrees_with_pyroomacoustics_cardioid_family():
    pra = pytest.importorskip("pyroomacoustics")
    from pyroomacoustics.directivities import CardioidFamily, DirectionVector

    room = Room((7.0, 5.5, 3.0), 0.4, (3.0, 2.5, 1.5), 0.4, 8)
    alpha = sabine_absorption(room.dims, room.rt60)
    for az in (-70.0, 40.0, 120.0):
        src = room.source_position(2.0, az, 10.0)
        h = render_rirs(room, src, SR)
        ref = pra.ShoeBox(list(room.dims), fs=SR, materials=pra.Material(alpha), max_order=8)
        ref.add_source(src)
        yaw = math.degrees(room.yaw)
        dirs = [CardioidFamily(DirectionVector(yaw, 90), p=1.0), CardioidFamily(DirectionVector(yaw + 90, 90), p=0.0)]
        ref.add_microphone_array(np.array([room.mic, room.mic]).T, directivity=dirs)
        ref.compute_rir()
        n = min(len(ref.rir[0][0]), len(ref.rir[1][0]))
        w, y = np.asarray(ref.rir[0][0][:n]), np.asarray(ref.rir[1][0][:n])
        assert _ild_db(np.stack([h[0] + h[1], h[0] - h[1]])) == pytest.approx(
            _ild_db(np.stack([w + y, w - y])), abs=0.3
        )
        # Same absolute scale (1/r amplitude) and the same reverberant energy.
        assert np.sum(h[0] ** 2) / np.sum(w**2) == pytest.approx(1.0, rel=0.05)
        assert np.sum(h[1] ** 2) / np.sum(y**2) == pytest.approx(1.0, rel=0.05)


def test_sabine_order_is_capped_and_absorption_checked():
    assert sabine_order((12.0, 10.0, 4.0), 0.8) == 40
    assert 1 <= sabine_order((4.0, 3.5, 2.5), 0.2) < 40
    with pytest.raises(ValueError, match="unreachable"):
        sabine_absorption((12.0, 10.0, 4.0), 0.05)


@pytest.mark.parametrize(
    "az,folded",
    [(0, 0), (90, 90), (120, 60), (-120, -60), (180, 0), (-180, 0), (150, 30), (-90, -90), (-30, -30), (270, -90)],
)
def test_fold_azimuth(az, folded):
    assert fold_azimuth(az) == pytest.approx(folded)


def _scenes(n=30):
    for i in range(n):
        rng = clip_rng(11, 0, i)
        scene = sample_scene(rng)
        yield scene, dry_signals(scene, rng)


def test_scene_geometry_within_ranges():
    for scene, _ in _scenes():
        room = scene.room
        assert 1 <= len(scene.events) <= 4
        mic, dims = np.asarray(room.mic), np.asarray(room.dims)
        assert np.all(mic[:2] >= 1.0 - 1e-9) and np.all(dims[:2] - mic[:2] >= 1.0 - 1e-9)
        assert 0.2 <= room.rt60 <= 0.8 and 1 <= room.max_order <= 40
        for ev in scene.events:
            assert 0.5 <= ev.distance <= 5.0 and -20.0 <= ev.elevation <= 30.0 and -6 <= ev.gain_db <= 6
            assert -0.5 <= ev.onset <= 4.5
            pos = room.source_position(ev.distance, ev.azimuth, ev.elevation)
            assert np.all(pos >= 0.3 - 1e-9) and np.all(dims - pos >= 0.3 - 1e-9)
            assert np.linalg.norm(pos - mic) == pytest.approx(ev.distance)


def test_labels_follow_dry_energy_and_polyphony():
    silent = []
    for scene, dry in _scenes():
        rows = label_rows(scene, dry)
        frames = rows[:, 0].astype(int)
        counts = np.bincount(frames, minlength=N_LABEL_FRAMES)
        assert counts.max(initial=0) <= 3
        silent.append(np.mean(counts == 0))
        seen = set()
        for ev, full in zip(scene.events, dry):
            mine = rows[(rows[:, 1] == ev.class_id) & (rows[:, 2] == ev.source)]
            assert (ev.class_id, ev.source) not in seen  # source index counts per class
            seen.add((ev.class_id, ev.source))
            # Independent recomputation of the frame energies (timeline frame k = clip frame k - 5).
            n = -(-full.size // FRAME)
            e = np.mean(np.pad(full, (0, n * FRAME - full.size)).reshape(n, FRAME) ** 2, axis=1)
            loud = e > e.max() * 1e-3
            labelled = set(mine[:, 0].astype(int))
            for f in range(N_LABEL_FRAMES):
                k = f + PRE_FRAMES
                if f in labelled:
                    # Audible, or inside a gap of <= 0.5 s between audible frames.
                    assert loud[k] or (loud[max(k - 5, 0) : k].any() and loud[k + 1 : k + 6].any())
                else:
                    assert not loud[k], (ev, f)
            if len(mine):
                assert np.all(mine[:, 3] == round(fold_azimuth(ev.azimuth)))
                assert np.all(mine[:, 4] == round(ev.distance * 100))
                assert np.all(np.abs(mine[:, 3]) <= 90) and np.all(mine[:, 5] == 0)
    # Dense scenes: well under half of the frames are silent on average.
    assert np.mean(silent) < 0.4


def test_class_sounds_have_length_level_and_speaker_pitch():
    rng = np.random.default_rng(3)
    for c in range(N_CLASSES):
        x = class_sound(c, 1.7, rng, SR)
        assert x.shape == (int(1.7 * SR),) and np.all(np.isfinite(x))
        e = frame_energy(x, SR // 10)
        assert np.mean(e[e > e.max() * 1e-3]) == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ValueError):
        class_sound(13, 1.0, rng, SR)

    def median_f0(x):
        f0s = []
        for seg in x[: x.size // 2048 * 2048].reshape(-1, 2048):
            if np.sum(seg**2) < 0.3 * 2048:  # voiced, loud frames only
                continue
            ac = np.correlate(seg, seg, "full")[2047:]
            lo, hi = SR // 400, SR // 70
            lag = lo + int(np.argmax(ac[lo:hi]))
            f0s.append(SR / lag)
        return float(np.median(f0s))

    female = median_f0(class_sound(0, 4.0, np.random.default_rng(5), SR))
    male = median_f0(class_sound(1, 4.0, np.random.default_rng(5), SR))
    assert 180 < female < 290 and 90 < male < 150, (female, male)


def _fake_espeak(tmp_path):
    """A stand-in espeak-ng that writes a streaming WAV (22.05 kHz, 200 Hz tone) to stdout."""
    exe = tmp_path / "bin" / "espeak-ng"
    exe.parent.mkdir()
    exe.write_text(
        textwrap.dedent(f"""\
        #!{sys.executable}
        import struct, sys, numpy as np
        sr = 22050
        x = (0.5 * np.sin(2 * np.pi * 200 * np.arange(int(0.8 * sr)) / sr) * 32767).astype('<i2')
        fmt = struct.pack('<IHHIIHH', 16, 1, 1, sr, 2 * sr, 2, 16)
        hdr = b'RIFF' + struct.pack('<I', 0x7fffffff) + b'WAVE' + b'fmt ' + fmt
        sys.stdout.buffer.write(hdr + b'data' + struct.pack('<I', 0x7fffffff) + x.tobytes())
        """)
    )
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_espeak_backend_used_when_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert resolve_speech_backend("auto") == ("formant", None)
    with pytest.raises(RuntimeError, match="espeak-ng"):
        resolve_speech_backend("espeak")
    exe = _fake_espeak(tmp_path)
    monkeypatch.setenv("PATH", str(exe.parent) + os.pathsep + os.environ.get("PATH", ""))
    backend, found = resolve_speech_backend("auto")
    assert backend == "espeak" and found == str(exe)
    x = class_sound(0, 2.0, np.random.default_rng(0), SR, backend, found)
    assert x.shape == (2 * SR,)
    spec = np.abs(np.fft.rfft(x))
    assert np.fft.rfftfreq(x.size, 1 / SR)[np.argmax(spec)] == pytest.approx(200.0, abs=2.0)  # resampled correctly


def _tree_digest(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith((".wav", ".csv")):
                p = os.path.join(dirpath, f)
                out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def test_dataset_files_labels_and_determinism(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    summary = synthesize_dataset(a, 3, 2, seed=5, workers=1, progress=False, speech_backend="formant")
    synthesize_dataset(b, 3, 2, seed=5, workers=2, progress=False, speech_backend="formant")
    synthesize_dataset(c, 3, 2, seed=6, workers=1, progress=False, speech_backend="formant")
    da, db, dc = _tree_digest(a), _tree_digest(b), _tree_digest(c)
    assert len(da) == 10 and da == db  # byte-identical for any worker count
    assert all(da[k] != dc[k] for k in da if k.endswith(".wav"))
    assert summary["splits"]["dev-train-synth"]["clips"] == 3
    assert json.loads((a / "synth_summary.json").read_text())["seed"] == 5
    for split, fold, code, n in (("dev-train-synth", 3, 0, 3), ("dev-test-synth", 4, 1, 2)):
        for i in range(n):
            stem = clip_name(fold, i)
            wav = a / "stereo_dev" / split / f"{stem}.wav"
            info = sf.info(wav)
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (24000, 2, CLIP_SAMPLES, "PCM_16")
            x, _ = sf.read(wav, dtype="int16")
            peak = np.abs(x.astype(np.int64)).max()
            assert 0.85 * 32767 < peak <= round(32767 * 10 ** (-1 / 20))
            rows = read_labels(a / "metadata_dev" / split / f"{stem}.csv")
            rng = clip_rng(5, code, i)
            scene = sample_scene(rng)
            expect = label_rows(scene, dry_signals(scene, rng))
            order = np.lexsort((expect[:, 2], expect[:, 1], expect[:, 0]))
            np.testing.assert_array_equal(rows, expect[order])
    # A smaller rerun removes the clips it no longer produces.
    synthesize_dataset(a, 1, 0, seed=5, workers=1, progress=False, speech_backend="formant")
    assert sorted(_tree_digest(a)) == sorted(k for k in da if "fold3_room1_" in k)


def test_direction_cue_survives_mixing(tmp_path):
    """In rendered clips, frames with a single nearby lateral source are louder on its side."""
    agree = total = 0
    for i in range(8):
        rng = clip_rng(21, 0, i)
        scene = sample_scene(rng)
        dry = dry_signals(scene, rng)
        rows = label_rows(scene, dry)
        events, bg = render_scene(scene, dry, rng)
        lr = to_stereo_pcm(events + bg).astype(np.float64).T
        el, er = frame_energy(lr[0], FRAME), frame_energy(lr[1], FRAME)
        counts = np.bincount(rows[:, 0].astype(int), minlength=N_LABEL_FRAMES)
        for r in rows:
            f = int(r[0])
            if counts[f] == 1 and abs(r[3]) >= 30 and r[4] <= 250:
                total += 1
                agree += np.sign(10 * np.log10(el[f] / er[f])) == np.sign(r[3])
    assert total >= 20 and agree / total > 0.8, (agree, total)


def test_cli_synth(tmp_path, capsys):
    assert (
        cli_main(
            [
                "synthesize-dataset",
                "--out",
                str(tmp_path),
                "--train-clips",
                "1",
                "--test-clips",
                "1",
                "--seed",
                "2",
                "-j",
                "0",
                "--speech",
                "formant",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (tmp_path / "stereo_dev" / "dev-test-synth" / f"{clip_name(4, 0)}.wav").is_file()
    assert "dev-train-synth: 1 clips" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(
            ["synthesize-dataset", "--out", str(tmp_path), "--train-clips", "x", "--test-clips", "1", "--seed", "2"]
        )
    with pytest.raises(ValueError, match="train_clips"):
        synthesize_dataset(tmp_path, -1, 0, seed=0, progress=False)


def test_scene_config_sets_difficulty():
    from textseld.data.synthesis.scene import SceneConfig

    cfg = SceneConfig.from_dict(
        {
            "n_events_p": [0.0, 0.0, 1.0],
            "max_polyphony": 1,
            "rt60": [0.25, 0.3],
            "snr_db": [25, 28],
            "distance": [1.0, 2.0],
        }
    )
    for i in range(20):
        scene = sample_scene(clip_rng(5, 0, i), cfg=cfg)
        assert 1 <= len(scene.events) <= 3
        busy = np.zeros(200, dtype=int)
        for ev in scene.events:
            first, stop = ev.frame_span()
            busy[first:stop] += 1
        assert busy.max() == 1  # max_polyphony 1: one event per 100 ms frame
        assert 0.25 <= scene.room.rt60 <= 0.3 and 25 <= scene.snr_db <= 28
        assert all(1.0 <= ev.distance <= 2.0 for ev in scene.events)
    assert SceneConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "bad,key",
    [
        ({"max_polyphony": 4}, "max_polyphony"),
        ({"rt60": [0.5, 0.2]}, "rt60"),
        ({"n_events_p": [0.5, 0.2]}, "n_events_p"),
        ({"snr": [1, 2]}, "snr"),
    ],
)
def test_scene_config_rejects_bad_values(bad, key):
    from textseld.data.synthesis.scene import SceneConfig

    with pytest.raises(ValueError, match=key):
        SceneConfig.from_dict(bad)


def test_clip_names_stay_in_the_dcase_format_and_distinct_past_999_clips():
    """The rehearsal at the development set's size (20 000 training clips) found clip 1000 named
    mix1000, which the DCASE2025 name (three digits of mix) refuses; names below 999 are unchanged."""
    from textseld.data.layout import parse_clip_name
    from textseld.data.splits import recording_key

    assert clip_name(3, 0) == "fold3_room1_mix001_deg000_start0000"
    assert clip_name(3, 998) == "fold3_room999_mix999_deg000_start0000"
    names = [clip_name(3, i) for i in range(20_000)]
    parsed = [parse_clip_name(n) for n in names]  # raises on a name out of the format
    assert all(p["fold"] == 3 and 1 <= p["mix"] <= 999 for p in parsed)
    assert len({recording_key(n) for n in names}) == len(names)  # each clip its own recording
