"""Content fingerprints of a dataset's splits (textseld.data.fingerprint): what changes them,
what does not, and that an unchanged rerun reads no file."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from textseld.data import fingerprint as fp

FOLDERS = ["dev-train-a", "dev-train-b"]


def _dataset(root: Path) -> Path:
    for folder in FOLDERS:
        for i in range(3):
            name = f"fold1_room{i + 1}_mix00{i}_deg000_start0000"
            (root / "stereo_dev" / folder).mkdir(parents=True, exist_ok=True)
            (root / "metadata_dev" / folder).mkdir(parents=True, exist_ok=True)
            (root / "stereo_dev" / folder / f"{name}.wav").write_bytes(f"RIFF {folder} {i}".encode())
            (root / "metadata_dev" / folder / f"{name}.csv").write_text(f"0,{i},0,0,0,100,0\n")
    (root / "stereo_dev" / "dev-test").mkdir()
    (root / "stereo_dev" / "dev-test" / "fold4_room1_mix001_deg000_start0000.wav").write_bytes(b"test")
    return root


def _sha(root: Path, folders=FOLDERS) -> str:
    return fp.split_fingerprint(root, folders)[0]["sha256"]


def test_the_record_covers_every_audio_and_label_file_of_the_split_folders_only(tmp_path):
    root = _dataset(tmp_path / "data")
    record, cache = fp.split_fingerprint(root, FOLDERS)
    assert record["files"] == 12 and record["missing"] == [] and record["folders"] == FOLDERS
    assert sorted(cache) == sorted(fp.split_files(root, FOLDERS)[0])
    assert all(k.startswith(("stereo_dev/dev-train-", "metadata_dev/dev-train-")) for k in cache)
    base = record["sha256"]
    # another split's file and a file that is neither audio nor labels change nothing
    (root / "stereo_dev" / "dev-test" / "fold4_room1_mix001_deg000_start0000.wav").write_bytes(b"other")
    (root / "metadata_dev" / "dev-train-a" / "notes.txt").write_text("x")
    assert _sha(root) == base
    # the same files elsewhere: the same record
    assert _sha(shutil.copytree(root, tmp_path / "moved")) == base
    # a missing split folder is part of the record, not an error
    record, _ = fp.split_fingerprint(root, [*FOLDERS, "dev-train-c"])
    assert record["missing"] == ["metadata_dev/dev-train-c", "stereo_dev/dev-train-c"]
    assert record["sha256"] != base


@pytest.mark.parametrize(
    "edit",
    ["label row appended", "events removed", "wav replaced, old mtime", "clip added", "clip removed", "nested file"],
)
def test_every_content_edit_changes_the_fingerprint_also_with_the_old_times(tmp_path, edit):
    root = _dataset(tmp_path / "data")
    out = tmp_path / "fp" / "train.json"
    assert fp.write_fingerprint(out, root, FOLDERS)
    before = json.loads(out.read_text())
    csv = root / "metadata_dev" / "dev-train-a" / "fold1_room1_mix000_deg000_start0000.csv"
    wav = root / "stereo_dev" / "dev-train-b" / "fold1_room2_mix001_deg000_start0000.wav"
    target = {"label row appended": csv, "events removed": csv, "wav replaced, old mtime": wav}.get(edit)
    st = target.stat() if target else None
    time.sleep(0.05)  # past the file system's time-stamp granularity (a few ms on some kernels)
    if edit == "label row appended":
        with csv.open("a") as f:
            f.write("5,1,0,0,0,100,0\n")
    elif edit == "events removed":
        csv.write_text("")
    elif edit == "wav replaced, old mtime":
        wav.write_bytes(b"RIFF dev-train-b 9")  # same size as before
        assert wav.stat().st_size == st.st_size
    elif edit == "clip added":
        (root / "stereo_dev" / "dev-train-a" / "fold1_room9_mix009_deg000_start0000.wav").write_bytes(b"new")
    elif edit == "clip removed":
        csv.unlink()
    elif edit == "nested file":
        (root / "stereo_dev" / "dev-train-a" / "deeper").mkdir()
        (root / "stereo_dev" / "dev-train-a" / "deeper" / "x.WAV").write_bytes(b"x")
    if st is not None:  # the time stamps put back as a copy with -p would
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fp.refresh_fingerprint(out, root, FOLDERS)
    assert json.loads(out.read_text())["sha256"] != before["sha256"]
    assert not fp.refresh_fingerprint(out, root, FOLDERS)  # and then it is stable


def test_an_unchanged_split_is_not_rewritten_and_no_file_is_read_again(tmp_path, monkeypatch):
    root = _dataset(tmp_path / "data")
    out = tmp_path / "fp" / "train.json"
    assert fp.write_fingerprint(out, root, FOLDERS)
    cache_path = fp.hash_cache_path(out)
    assert cache_path.is_file() and cache_path != out
    mtimes = out.stat().st_mtime_ns, cache_path.stat().st_mtime_ns
    read: list[Path] = []
    real = fp._sha256_file
    monkeypatch.setattr(fp, "_sha256_file", lambda p: read.append(p) or real(p))
    # a touch changes the key: that file is read again, but the record stays the same
    os.utime(root / "stereo_dev" / "dev-train-a" / "fold1_room1_mix000_deg000_start0000.wav")
    assert not fp.refresh_fingerprint(out, root, FOLDERS)
    assert [p.name for p in read] == ["fold1_room1_mix000_deg000_start0000.wav"]
    assert out.stat().st_mtime_ns == mtimes[0]
    read.clear()
    assert not fp.refresh_fingerprint(out, root, FOLDERS)
    assert read == []


def test_the_first_run_leaves_a_missing_fingerprint_to_the_rule_and_a_damaged_cache_is_rebuilt(tmp_path):
    root = _dataset(tmp_path / "data")
    out = tmp_path / "fp" / "train.json"
    assert not fp.refresh_fingerprint(out, root, FOLDERS) and not out.exists()
    assert fp.write_fingerprint(out, root, FOLDERS)
    fp.hash_cache_path(out).write_text("{not json")
    assert not fp.refresh_fingerprint(out, root, FOLDERS)  # same record, from rehashed files
    assert json.loads(fp.hash_cache_path(out).read_text())["version"] == fp.CACHE_VERSION
