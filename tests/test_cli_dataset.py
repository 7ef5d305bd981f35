"""The issue's acceptance path: `textseld synthesize-dataset` then `textseld check-data` on a 16-clip dataset."""

from __future__ import annotations

import subprocess
import sys


def _textseld(*args):
    return subprocess.run([sys.executable, "-m", "textseld", *args], capture_output=True, text=True, timeout=300)


def test_synth_then_check_data_pass_on_16_clips(tmp_path):
    out = tmp_path / "synth"
    proc = _textseld(
        "synthesize-dataset",
        "--out",
        str(out),
        "--train-clips",
        "12",
        "--test-clips",
        "4",
        "--seed",
        "3",
        "--threads",
        "2",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    assert len(list((out / "stereo_dev").rglob("*.wav"))) == 16
    assert len(list((out / "metadata_dev").rglob("*.csv"))) == 16
    proc = _textseld("check-data", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and the check really looks: one broken CSV makes it fail, naming file and line
    csv = sorted((out / "metadata_dev" / "dev-test-synth").glob("*.csv"))[0]
    csv.write_text(csv.read_text().rstrip("\n") + "\n3,13,0,10,100,0\n")
    proc = _textseld("check-data", str(out), "--no-progress")
    assert proc.returncode == 1
    assert f"{csv.name}:" in proc.stdout + proc.stderr and "class" in proc.stdout + proc.stderr
