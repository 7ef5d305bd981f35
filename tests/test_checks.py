"""Tests of textseld.data.checks and `textseld check-data`: every problem found and named."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from textseld.cli import main
from textseld.data.checks import check_audio, check_dataset, check_labels

HEADER = "frame,class,source,azimuth,distance,onscreen\n"
GOOD_ROWS = "0,1,0,30,200,0\n0,1,1,-40,150,0\n49,12,0,90,50,1\n"


def _wav(path, channels=2, sr=24000, n=120000, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (n, channels))
    sf.write(str(path), data, sr, subtype=subtype)
    return path


def _csv(path, text=HEADER + GOOD_ROWS):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _clip(root, split, stem, **wav_kw):
    w = _wav(root / "stereo_dev" / split / f"{stem}.wav", **wav_kw)
    c = _csv(root / "metadata_dev" / split / f"{stem}.csv")
    return w, c


NAMES = [f"fold3_room1_mix00{i}_deg000_start0000" for i in range(1, 10)]


def test_good_dataset_ok(tmp_path):
    _clip(tmp_path, "dev-train-tau", NAMES[0])
    _clip(tmp_path, "dev-test-sony", NAMES[1])
    _csv(tmp_path / "metadata_dev" / "dev-test-sony" / f"{NAMES[2]}.csv", HEADER)  # no events: fine
    _wav(tmp_path / "stereo_dev" / "dev-test-sony" / f"{NAMES[2]}.wav")
    report = check_dataset(tmp_path, progress=False)
    assert report.ok, [str(p) for p in report.problems]
    assert report.splits == ["dev-test-sony", "dev-train-tau"]
    assert report.n_clips == {"dev-test-sony": 2, "dev-train-tau": 1}


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(sr=16000), "24000 Hz, got 16000"),
        (dict(channels=1), "2 channels, got 1"),
        (dict(channels=3), "2 channels, got 3"),
        (dict(n=119999), "120000 samples (5 s), got 119999"),
    ],
)
def test_audio_format_problems(tmp_path, kwargs, expected):
    path = _wav(tmp_path / "a.wav", **kwargs)
    problems = check_audio(path)
    assert len(problems) == 1
    assert problems[0].path == path and expected in problems[0].message


def test_truncated_and_corrupt_wav(tmp_path):
    path = _wav(tmp_path / "t.wav")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header still claims 120000 samples
    problems = check_audio(path)
    assert problems and all(p.path == path for p in problems)
    assert any("120000" in p.message or "truncated" in p.message for p in problems)
    bad = tmp_path / "c.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    (p,) = check_audio(bad)
    assert p.path == bad and "unreadable" in p.message


@pytest.mark.parametrize(
    "body, line, expected",
    [
        ("0,1,0,30.5,200,0\n", 2, "'azimuth' must be an integer"),
        ("0,1.0,0,30,200,0\n", 2, "'class' must be an integer"),
        ("0,13,0,30,200,0\n", 2, "class must be in 0..12"),
        ("0,1,0,30,200,0\n50,1,0,30,200,0\n", 3, "frame must be in 0..49"),
        ("0,1,0,30,-5,0\n", 2, "distance must be > 0"),
        ("0,1,0,95,100,0\n", 2, "azimuth must be in -90..90"),
    ],
)
def test_csv_line_problems(tmp_path, body, line, expected):
    path = _csv(tmp_path / "x.csv", HEADER + body)
    (p,) = check_labels(path)
    assert p.path == path and p.line == line and expected in p.message
    assert f"{path}:{line}:" in str(p)


def test_wrong_header_and_every_line_reported(tmp_path):
    path = _csv(tmp_path / "h.csv", "frame,class,source,azimuth,distance\n0,1,0,30,200,0\n")
    (p,) = check_labels(path)
    assert p.line == 1 and "header" in p.message
    path = _csv(tmp_path / "m.csv", HEADER + "0,x,0,30,200,0\n1,1,0,30,200,0\n2,1,0,30,0,0\n")
    assert [p.line for p in check_labels(path)] == [2, 4]


def test_dataset_collects_everything(tmp_path):
    root = tmp_path
    _clip(root, "s", NAMES[0])
    _clip(root, "s", NAMES[1], channels=1)
    _csv(root / "metadata_dev" / "s" / f"{NAMES[2]}.csv", HEADER + "0,1,0,30,200,0\n60,1,0,30,200,0\n")
    _wav(root / "stereo_dev" / "s" / f"{NAMES[2]}.wav")
    lonely_wav = _wav(root / "stereo_dev" / "s" / f"{NAMES[3]}.wav")
    lonely_csv = _csv(root / "metadata_dev" / "s" / f"{NAMES[4]}.csv")
    _clip(root, "s", "badname")
    report = check_dataset(root, progress=False)
    text = "\n".join(str(p) for p in report.problems)
    assert "2 channels, got 1" in text and NAMES[1] in text
    assert f"{NAMES[2]}.csv:3: frame must be in 0..49" in text
    assert f"{lonely_wav}: has no label file: expected {root / 'metadata_dev' / 's' / NAMES[3]}.csv" in text
    assert f"{lonely_csv}: has no audio file: expected {root / 'stereo_dev' / 's' / NAMES[4]}.wav" in text
    assert "badname.wav: clip name" in text
    assert len(report.problems) == 5
    assert not report.ok


def test_missing_split_folder(tmp_path):
    _clip(tmp_path, "a", NAMES[0])
    report = check_dataset(tmp_path, ["a", "dev-test-tau"], progress=False)
    assert [p.path for p in report.problems] == [
        tmp_path / "stereo_dev" / "dev-test-tau",
        tmp_path / "metadata_dev" / "dev-test-tau",
    ]
    assert not check_dataset(tmp_path / "nothing", progress=False).ok


def test_cli_exit_codes(tmp_path, capsys):
    _clip(tmp_path, "a", NAMES[0])
    assert main(["check-data", str(tmp_path), "--no-progress"]) == 0
    _clip(tmp_path, "b", NAMES[1], sr=48000)
    assert main(["check-data", str(tmp_path), "--splits", "a", "--no-progress"]) == 0
    assert main(["check-data", str(tmp_path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "48000" in out and NAMES[1] in out and "1 problem" in out
